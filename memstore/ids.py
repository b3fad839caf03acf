"""Memory ids: ULIDs in lowercase Crockford base32, unique without coordination, sorted by time."""

from __future__ import annotations

import os
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 26
# The file name carries the id's last characters: random bits, so names never collide in practice.
SHORT_ID_LENGTH = 8


def new_id(now_ms: int | None = None) -> str:
    """Return a new id: 48 bits of milliseconds then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def time_of(memory_id: str) -> int | None:
    """The milliseconds since the epoch an id was made at; None if it is not an id."""
    if len(memory_id) != ID_LENGTH or not looks_like_id_prefix(memory_id):
        return None
    value = 0
    for char in memory_id[:10].lower():
        value = value * 32 + ALPHABET.index(char)
    return value


def looks_like_id_prefix(text: str) -> bool:
    """Tell whether text could be the start of an id."""
    return 0 < len(text) <= ID_LENGTH and all(c in ALPHABET for c in text.lower())
