"""Memory files parsed, kept by blob id, so that a large `mem diff` need not read them again.

A `mem diff` over a long history reads and parses every memory file the range touches: 10,000
loose objects opened and inflated, 10,000 headers parsed, for each run. A blob id names its
bytes for ever, and what parsing finds in a plain (not encrypted) memory file depends on its
bytes only, so the fields and body parsed from a blob are kept in `.git/memstore/parsed.cache`
(private, never committed; deleting it only costs the next large diff its reads).

It is used only by ranges that touch at least MIN_BLOBS plain files, where loading it costs a
fraction of reading them; smaller ranges read their few blobs, as before, and leave it alone.
It keeps what the last large ranges used, up to twice the size of the latest one. Encrypted
files are never kept (their plaintext stays out of `.git`), nor files that do not parse. The
file is written with marshal (plain dicts, lists and strings), never executed, and stamped with
the parsing code it came from: another version's cache, or a damaged one, is started afresh.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path
from typing import Any

from memstore import atomic

CACHE_FILE = "parsed.cache"
# Bump when what is kept for a blob changes.
CACHE_FORMAT = 1
# Ranges that touch fewer plain memory files read their blobs without the cache.
MIN_BLOBS = 256
# The modules whose code decides what a file parses as (memory.parse, yamlrules.load).
_PARSING_MODULES = ("memory.py", "yamlrules.py")

# What is kept for a blob: the header's fields and the body, as memory.parse gives them.
Entry = tuple[dict[str, Any], str]


class ParsedBlobs:
    """Parsed memory files by blob id (hex), loaded whole from the cache file."""

    def __init__(self, home: Path) -> None:
        self.path = home / CACHE_FILE
        self.entries: dict[str, Entry] = {}
        self.used: dict[str, Entry] = {}  # what this run asked for or parsed, in that order
        self.found = 0  # how many of them were parsed afresh
        self.stamped: str | None = None

    @staticmethod
    def stamp() -> str | None:
        """What the kept entries depend on besides the blobs: the code that parsed them.

        The size and modification time of the parsing modules' files: an upgrade, or an edit
        of a source tree, starts afresh even when nobody bumped CACHE_FORMAT. None when they
        cannot be told (then nothing is kept).
        """
        # By path, not by importing them: a diff read from the cache need not load PyYAML.
        here = os.path.dirname(__file__)
        parts = [str(CACHE_FORMAT)]
        for name in _PARSING_MODULES:
            try:
                found = os.stat(os.path.join(here, name))
            except OSError:
                return None
            parts.append(f"{found.st_size}.{found.st_mtime_ns}")
        return ":".join(parts)

    def load(self) -> None:
        """Read the kept entries; an unreadable, damaged or other version's file keeps none."""
        self.stamped = self.stamp()
        if self.stamped is None:
            return
        try:
            raw = marshal.loads(self.path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return
        if (
            isinstance(raw, tuple)
            and len(raw) == 2
            and raw[0] == self.stamped
            and isinstance(raw[1], dict)
        ):
            self.entries = raw[1]

    def get(self, blob: str) -> Entry | None:
        """The fields and body parsed from blob, when kept."""
        entry = self.entries.get(blob)
        if type(entry) is tuple and len(entry) == 2:
            self.used[blob] = entry
            return entry
        return None

    def put(self, blob: str, fields: dict[str, Any], body: str) -> None:
        """Keep what parsing blob found (a plain memory file that parsed)."""
        self.used[blob] = (fields, body)
        self.found += 1

    def save(self) -> None:
        """Write the entries used by this run, then older ones up to twice as many in all."""
        if not self.found or self.stamped is None:
            return
        kept = dict(self.used)
        room = len(kept)  # older entries kept beside this run's, at most as many
        for blob, entry in self.entries.items():
            if room <= 0:
                break
            if blob not in kept:
                kept[blob] = entry
                room -= 1
        try:
            data = marshal.dumps((self.stamped, kept))
        except ValueError:  # a value marshal cannot write (a header YAML read as a date)
            data = marshal.dumps((self.stamped, _marshallable(kept)))
        with contextlib.suppress(OSError):  # a store that cannot be written: parse again
            atomic.write_atomic(self.path, data, 0o600, False)


def _marshallable(entries: dict[str, Entry]) -> dict[str, Entry]:
    kept = {}
    for blob, entry in entries.items():
        try:
            marshal.dumps(entry)
        except ValueError:
            continue
        kept[blob] = entry
    return kept
