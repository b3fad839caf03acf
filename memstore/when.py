"""Dates given on the command line: ISO dates and times, or ages like 7d, 2w, 3m, 1y, "3 weeks ago";
and how old something is, in words ("3 days ago")."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from memstore.errors import InvalidInputError

# "7d", "2w", "3 weeks ago", "1 month": the unit is told by its first letter (m is months).
_AGE = re.compile(r"^(\d+)\s*(h|hours?|d|days?|w|weeks?|m|months?|y|years?)(?:\s+ago)?$")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_when(text: str, *, end: bool, now: datetime | None = None) -> datetime:
    """A moment from text; a bare date means its start (or its end, with end=True)."""
    now = now or datetime.now().astimezone()
    value = text.strip().lower()
    match = _AGE.match(value)
    if match:
        amount, unit = int(match[1]), match[2][0]
        delta = (
            timedelta(hours=amount) if unit == "h" else timedelta(days=amount * _UNIT_DAYS[unit])
        )
        return now - delta
    if value in ("today", "yesterday"):
        day = now.date() - timedelta(days=1 if value == "yesterday" else 0)
        return datetime.combine(day, time.max if end else time.min, now.tzinfo)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"cannot read the date {text!r}: use 2026-11-01, 2026-11-01T09:00, or an age like 7d"
            " or '3 weeks ago'"
        ) from None
    if end and len(text.strip()) == 10:
        moment = datetime.combine(moment.date(), time.max)
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def age(moment: datetime | None, now: datetime) -> str:
    """How long before now moment was, in words: "just now", "5 minutes ago", "3 days ago"."""
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in the future"
    for size, unit in ((365 * 86400, "year"), (30 * 86400, "month"), (86400, "day")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"
