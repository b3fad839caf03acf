"""What searches and listings return: `Listed`, `SearchHit`, and the `Filters` they take.

Plain data, with no import of the index, so that any module can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FRESHNESS = ("expires", "expired", "age")


@dataclass
class Listed:
    """A memory as listed: the stored fields, without score or snippet."""

    id: str
    title: str
    path: str
    type: str
    tags: list[str]
    created: str
    # Freshness (freshness.py): the `expires` field as written, whether it is past, and how old
    # the memory is by the store's clock ("3 days ago"). Keyword-only, so that subclasses can
    # add fields without defaults.
    expires: str = field(default="", kw_only=True)
    expired: bool = field(default=False, kw_only=True)
    age: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for name in FRESHNESS:  # added later than the others: they come last
            data[name] = data.pop(name)
        return data


@dataclass
class SearchHit(Listed):
    """One search result, as find returns it: a listed memory with its score and snippet."""

    score: float
    snippet: str
    # Ids of the memories that supersede this one (filled in by Store.find).
    superseded_by: list[str] = field(default_factory=list)


@dataclass
class Filters:
    """Restrictions shared by find and list."""

    tags: list[str] = field(default_factory=list)
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    session: str | None = None  # exactly this `session` field
