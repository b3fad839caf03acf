"""What the search index holds, path by path, read at the cost of what changed (`mem doctor`).

`mem doctor` compares the index with the files: every indexed path and the blob id it was read
from. Reading the stored fields of every document takes seconds at 100,000 memories. Whoosh
never rewrites a segment's files: a write adds segments, merges some into a new one, or marks
documents deleted in the table of contents. So the paths and blobs of each segment are kept in
`.git/memstore/audit.cache`, beside the names, inodes, sizes, modification and change times of
the segment's files; a segment whose files are the ones recorded is not read again (its
deletions are read from the table of contents each time). A segment whose files were written
since, even with their old size and modification time put back, has another change time, and
is read again, which fails as it did before if they were damaged.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import atomic

if TYPE_CHECKING:
    from whoosh.index import Index as WhooshIndex

AUDIT_FILE = "audit.cache"
AUDIT_FORMAT = 1


class SegmentAudit:
    """Indexed paths and blobs per segment, kept between runs of `mem doctor`."""

    def __init__(self, home: Path) -> None:
        self.path = home / AUDIT_FILE
        self.kept: dict[str, Any] = {}
        self.seen: dict[str, Any] = {}
        self.read = 0  # segments read in full (not kept), for tests and benchmarks
        try:
            raw = marshal.loads(self.path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return
        if isinstance(raw, dict) and raw.get("format") == AUDIT_FORMAT:
            segments = raw.get("segments")
            self.kept = segments if isinstance(segments, dict) else {}

    def blobs(self, ix: WhooshIndex) -> dict[str, str]:
        """Every path the open index holds, with its blob id; raises what a damaged index does."""
        folder = Path(ix.storage.folder)  # type: ignore[attr-defined]
        names = os.listdir(folder)
        found: dict[str, str] = {}
        with ix.reader() as reader:
            for leaf, _ in reader.leaf_readers():
                segment = leaf.segment()
                if segment is None:  # not a segment of files: read it as it is
                    docs = _read_docs(leaf)
                else:
                    segment_id = segment.segment_id()
                    files = _files(folder, names, segment_id)
                    entry = self.kept.get(segment_id)
                    if entry is not None and entry.get("files") == files:
                        docs = entry["docs"]
                    else:
                        docs = _read_docs(leaf)
                        self.read += 1
                    self.seen[segment_id] = {"files": files, "docs": docs}
                if len(docs) != leaf.doc_count_all():
                    raise ValueError("segment document count does not match its stored fields")
                if not leaf.has_deletions():
                    found.update({path: blob for path, blob in docs})
                    continue
                for number, (path, blob) in enumerate(docs):
                    if not leaf.is_deleted(number):
                        found[path] = blob
        return found

    def save(self) -> None:
        """Keep what was read for the segments seen (segments gone are forgotten)."""
        if self.seen == self.kept:
            return
        data = {"format": AUDIT_FORMAT, "segments": self.seen}
        with contextlib.suppress(OSError):  # a store that cannot be written: read again
            atomic.write_atomic(self.path, marshal.dumps(data), 0o600, durable=False)


def _files(folder: Path, names: list[str], segment_id: str) -> list[list[Any]]:
    """The segment's files with their inodes, sizes, modification and change times."""
    prefix = f"{segment_id}."
    found: list[list[Any]] = []
    for name in sorted(n for n in names if n.startswith(prefix)):
        stat = os.stat(folder / name)
        found.append([name, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns])
    return found


def _read_docs(leaf: Any) -> list[list[str]]:
    """Path and blob of every document of a segment by number, deleted ones included."""
    docs: list[list[str]] = []
    for number in range(leaf.doc_count_all()):
        fields = leaf.stored_fields(number)
        docs.append([fields["path"], fields.get("blob", "")])
    return docs
