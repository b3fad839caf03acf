"""Freshness: whether a memory is past its `expires` date, and how old it is.

An `expires` date (`2027-01-31`) lasts to the end of that day in the store clock's time zone; a
timestamp (`2027-01-31T09:00:00+01:00`) is compared as it is. An expired memory stays where it
is and is still found, but it is marked and ranked below current ones, the way a superseded
memory is ranked below its successor (`links.order_after_successors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from typing import Any, TypeVar

from memstore.memory import parse_timestamp
from memstore.results import Listed
from memstore.when import age

Item = TypeVar("Item", bound=Listed)
DATE_LENGTH = 10  # 2027-01-31


def expiry(expires: Any, now: datetime) -> datetime | None:
    """The moment a memory expires (a date alone: the end of that day), or None."""
    if expires is None or expires == "":
        return None
    text = str(expires).strip()
    moment = parse_timestamp(text)
    if moment is None:
        return None
    if len(text) == DATE_LENGTH:
        return datetime.combine(moment.date(), time.max, now.tzinfo)
    return moment


def is_expired(expires: Any, now: datetime) -> bool:
    """Tell whether a memory with this `expires` value is past it at now."""
    moment = expiry(expires, now)
    return moment is not None and moment < now


def mark(items: list[Item], now: datetime) -> list[Item]:
    """Fill in each item's `expired` and `age` from its `expires` and `created` fields."""
    for item in items:
        item.expired = is_expired(item.expires, now)
        item.age = age(parse_timestamp(item.created), now)
    return items


def expired_last(items: Sequence[Item]) -> list[Item]:
    """Current items first, then expired ones, each group in its order."""
    return [i for i in items if not i.expired] + [i for i in items if i.expired]


def describe(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A memory's JSON (`Memory.to_dict`) with `expired` and `age` added."""
    data["expired"] = is_expired(data.get("expires"), now)
    data["age"] = age(parse_timestamp(data.get("created")), now)
    return data
