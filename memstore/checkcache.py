"""What checking found in each memory file, kept by the file's identity on disk.

`mem check` and `mem doctor` read, parse and validate every memory file: minutes at 100,000
memories. What a plain file's check finds depends on its bytes and its path only, so it is kept
in `.git/memstore/check.cache` (private, never committed) beside the file's inode, size,
modification time and change time, as git's own index keeps a file's stat. A file whose stat is
the one recorded is not read again. The change time cannot be set back by a program (`touch -d`
and `os.utime` set it to now), so an edit made behind memstore's back is seen, even one that
restores the old size and modification time. As in git, a file changed within the file system's
clock margin of the check is not recorded (it could change again within the same tick), and an
unreadable or unknown cache is simply rebuilt. It is written with marshal (plain tuples,
strings and bytes; five times faster to load than JSON at 100,000 files), never executed.

Encrypted files are not kept: what a check finds in them depends on the identity at hand.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
from pathlib import Path
from typing import Any

from memstore import atomic

CACHE_FILE = "check.cache"
# Other names of each memory (titles, aliases): only checking links needs them, and most stores
# have none, so they are kept apart and read only then.
NAMES_FILE = "check-names.cache"
# Bump when what is kept for a file, or how a file is checked, changes.
CACHE_FORMAT = 4
# Files changed this close to the moment of a check are not recorded (coarse file-system clocks).
RACY_NS = 2_000_000_000

# A kept row: (signature, blob, id, indexable, problems or None, links or None). Rows are kept
# and handed out as the tuples marshal reads, never turned into anything per file: at 100,000
# files building a dict per file took as long as the stat calls.
Row = tuple[Any, ...]


# Packed in 32 bytes: a fifth of the memory of a tuple of four integers (20 MB at 100,000
# files), read back faster, and compared as one string.
_SIGNATURE = struct.Struct("<QQqq")


def signature(stat: os.stat_result) -> bytes:
    """What tells that a file is the one checked: inode, size, modification and change times."""
    return _SIGNATURE.pack(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class CheckCache:
    """The facts checking found per file, valid while the file's signature is the same.

    Facts found afresh are a dict: problems (line, message), id (None when the file does not
    parse), blob, indexable, links (link_lines) and names. Facts kept are a Row, whose other
    names are kept apart (see names()).
    """

    def __init__(self, home: Path, salt: str) -> None:
        self.path = home / CACHE_FILE
        self.names_path = home / NAMES_FILE
        self.salt = salt  # what else the facts depend on (the schema): another one starts afresh
        self.entries: dict[str, Row] = {}
        self.token = ""
        self.kept: list[str] = []  # paths whose kept row held, in the order they were asked for
        self.found: dict[str, tuple[Row, list[str] | None]] = {}  # rows found afresh, names
        self.started_ns = 0
        self._names: dict[str, list[str]] | None = None
        self._names_read = False

    @property
    def hits(self) -> int:
        """How many files were not read again."""
        return len(self.kept)

    def load(self) -> None:
        """Read the kept facts, and note the file system's time before any file is read."""
        self.started_ns = atomic.files_now_ns(self.path.parent) if self.path.parent.is_dir() else 0
        raw = _read(self.path)
        if (
            isinstance(raw, dict)
            and raw.get("format") == CACHE_FORMAT
            and raw.get("salt") == self.salt
            and isinstance(raw.get("files"), dict)
        ):
            self.entries = raw["files"]
            self.token = str(raw.get("token", ""))

    def get(self, path: str, stat: os.stat_result) -> Row | None:
        """The row kept for path, or None when the file is not the one it was found in."""
        row = self.entries.get(path)
        if row is None or row[0] != _SIGNATURE.pack(
            stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
        ):
            return None
        self.kept.append(path)
        return row

    def put(self, path: str, stat: os.stat_result, facts: dict[str, Any]) -> None:
        """Keep facts found in path, unless the file changed too close to now to be sure."""
        if not self.started_ns:
            return
        limit = self.started_ns - RACY_NS
        if stat.st_mtime_ns >= limit or stat.st_ctime_ns >= limit:
            return
        row = (
            signature(stat),
            facts["blob"],
            facts["id"],
            facts["indexable"],
            facts["problems"] or None,
            facts.get("links") or None,
        )
        self.found[path] = (row, facts.get("names"))

    def names(self) -> dict[str, list[str]] | None:
        """The other names kept for each file; None when they cannot be read (then the files
        must be read again for them)."""
        if not self._names_read:
            self._names_read = True
            raw = _read(self.names_path)
            if isinstance(raw, dict) and self.token and raw.get("token") == self.token:
                names = raw.get("names")
                self._names = names if isinstance(names, dict) else None
        return self._names

    def save(self) -> None:
        """Write the facts of the files seen in this check (files gone are forgotten)."""
        # Every kept row held (each path is asked for once) and nothing new: nothing to write.
        if not self.started_ns or (not self.found and len(self.kept) == len(self.entries)):
            return
        import secrets

        kept_names = self.names() or {}
        files: dict[str, Row] = {}
        names: dict[str, list[str]] = {}
        entries = self.entries
        for path in self.kept:
            other = kept_names.get(path)
            if other is None and entries[path][2] is not None:
                continue  # its names are lost: read it again next time
            if other:
                names[path] = other
            files[path] = entries[path]
        for path, (row, other) in self.found.items():
            if other is None:
                other = kept_names.get(path)
                if other is None and row[2] is not None:
                    continue
            if other:
                names[path] = other
            files[path] = row
        token = secrets.token_hex(8)
        head = {"format": CACHE_FORMAT, "salt": self.salt, "token": token}
        with contextlib.suppress(OSError):  # a store that cannot be written: check again
            # The names first: the facts name the token of the names that go with them.
            atomic.write_atomic(
                self.names_path, marshal.dumps({"token": token, "names": names}), 0o600, False
            )
            atomic.write_atomic(self.path, marshal.dumps({**head, "files": files}), 0o600, False)


def _read(path: Path) -> Any:
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
