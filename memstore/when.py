"""Dates given on the command line: ISO dates and times, or ages like 7d, 2w, 3m, 1y."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from memstore.errors import InvalidInputError

_AGE = re.compile(r"^(\d+)\s*([hdwmy])$")
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_when(text: str, *, end: bool, now: datetime | None = None) -> datetime:
    """A moment from text; a bare date means its start (or its end, with end=True)."""
    now = now or datetime.now().astimezone()
    value = text.strip().lower()
    match = _AGE.match(value)
    if match:
        amount, unit = int(match[1]), match[2]
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
        ) from None
    if end and len(text.strip()) == 10:
        moment = datetime.combine(moment.date(), time.max)
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)
