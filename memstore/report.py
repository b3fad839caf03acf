"""How the library tells its caller about progress and problems without printing itself."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol


class Reporter(Protocol):
    """Receives notices, warnings and progress; the CLI prints them, tests collect them."""

    def notice(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def progress(
        self, total: int, label: str
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...


class CollectingReporter:
    """A reporter that keeps what it is told, for library users and tests."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.warnings: list[str] = []

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        yield lambda step: None
