"""Shared fixtures: every test runs with git and memstore isolated from the user's own setup."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from memstore.report import CollectingReporter
    from memstore.store import Store

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=10_000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

FIXED_TZ = timezone(timedelta(hours=1))


# What in the user's environment changes what mem, git or the terminal libraries do. Every
# MEM_*, GIT_*, LC_* and XDG_* variable goes too, whatever its name; the tests set what they need.
USER_SETTINGS = frozenset(
    {
        "EDITOR",
        "VISUAL",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
        "LINES",
        "SSH_AUTH_SOCK",
        "SSH_ASKPASS",
        "LANG",
        "LANGUAGE",
    }
)
USER_SETTING_PREFIXES = ("MEM_", "GIT_", "LC_", "XDG_")


def user_settings(environ: Mapping[str, str]) -> list[str]:
    """The names in environ that isolated_env clears."""
    return [
        name for name in environ if name in USER_SETTINGS or name.startswith(USER_SETTING_PREFIXES)
    ]


# Cleared once for the whole run as well, before memstore is imported: a setting read at import
# (MEM_LOCK_TIMEOUT) would otherwise hold for every test.
for _name in user_settings(os.environ):
    del os.environ[_name]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user settings, no global git config, no real data folders, a fixed author."""
    for name in user_settings(os.environ):  # set by an earlier test's own code, or a plugin
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {
        "HOME": str(home),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        # git's messages in English, and UTF-8 for every Python child whatever the locale.
        "LC_ALL": "C",
        "PYTHONUTF8": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "MEM_AUTHOR": "Test Person <test@example.com>",
        "MEM_WATCH": "0",
        # Ranking by words, and writes that do not load a model: tests/test_semantic.py turns
        # the semantic extra (installed by the test extra) on for its own tests.
        "MEM_SEMANTIC": "0",
    }.items():
        monkeypatch.setenv(name, value)
    import pygit2

    levels = (
        pygit2.enums.ConfigLevel.GLOBAL,
        pygit2.enums.ConfigLevel.XDG,
        pygit2.enums.ConfigLevel.SYSTEM,
    )
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    for level in levels:
        pygit2.settings.search_path[level] = str(home)
    yield
    for level, value in saved.items():
        pygit2.settings.search_path[level] = value


class Clock:
    """A clock the test moves by hand.

    Every store a test makes gets one, except a store the test also writes to through the real
    `mem` command, which can only use the machine's clock: such a store keeps the machine's clock
    too, so that both agree, and its test checks nothing that depends on the date.
    """

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=FIXED_TZ)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reporter() -> CollectingReporter:
    from memstore.report import CollectingReporter

    return CollectingReporter()


@pytest.fixture
def store(tmp_path: Path, clock: Clock, reporter: CollectingReporter) -> Store:
    from memstore.store import Store

    return Store.init(tmp_path / "store", clock=clock, reporter=reporter)


def bare(path: Path) -> Path:
    """A bare repository to sync with, its branch named main whatever git's default is."""
    import pygit2

    pygit2.init_repository(str(path), bare=True, initial_head="main")
    return path


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return bare(tmp_path / "remote.git")


def run_mem(
    *args: str, cwd: Path | None = None, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `mem` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "memstore", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def mem_ok(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real `mem` command, which must succeed."""
    result = run_mem(*args, **kwargs)
    assert result.returncode == 0, (
        f"mem {' '.join(args)} exited {result.returncode}: {result.stderr}"
    )
    return result
