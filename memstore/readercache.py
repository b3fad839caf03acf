"""Index segment readers kept open between searches of one process.

Opening a searcher opens every segment afresh: its term table, and the offsets of every
memory's stored fields, read whole (about 5 ms a segment of 20,000 memories). A process that
searches again and again (the search service, the MCP server, a program using the library)
keeps the readers of the segments it has read and opens only the segments a writer added
since. A segment never changes once written except for deletions, so a reader is kept under
the segment's name and its count of deleted memories, and it is used only while that segment
is in the index as the caller holds it (inside `SearchIndex.reading()`, which keeps writers
from deleting its files). Readers of segments gone from the index are closed.

Whoosh's readers are not safe for two threads at once: a search made while another thread
holds the readers opens its own, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whoosh.index import Index as WhooshIndex
    from whoosh.searching import Searcher

# Open segment readers kept at most (about five per 100,000 memories, and a few small ones).
KEPT_READERS = 32

_lock = threading.Lock()
# (index folder, segment name, deleted count) -> an open SegmentReader, least recently used first
_readers: dict[tuple[str, str, int], Any] = {}


@contextlib.contextmanager
def searcher(ix: WhooshIndex, **kwargs: Any) -> Iterator[Searcher]:
    """A searcher over the index as ix holds it, on kept readers where it can."""
    folder = getattr(ix.storage, "folder", None)  # type: ignore[attr-defined]
    if folder is None or not _lock.acquire(blocking=False):
        with ix.searcher(**kwargs) as fresh:
            yield fresh
        return
    try:
        with _kept_searcher(ix, str(folder), **kwargs) as kept:
            yield kept
    finally:
        _lock.release()


@contextlib.contextmanager
def _kept_searcher(ix: WhooshIndex, folder: str, **kwargs: Any) -> Iterator[Searcher]:
    from whoosh.reading import EmptyReader, MultiReader, SegmentReader
    from whoosh.searching import Searcher

    toc = ix._read_toc()  # type: ignore[attr-defined]
    wanted = [(folder, segment.segment_id(), segment.deleted_count()) for segment in toc.segments]
    readers = []
    try:
        for key, segment in zip(wanted, toc.segments, strict=True):
            opened = _readers.pop(key, None)
            if opened is None:
                storage = ix.storage  # type: ignore[attr-defined]
                opened = SegmentReader(storage, toc.schema, segment, generation=toc.generation)
            _readers[key] = opened  # now the most recently used
            readers.append(opened)
    finally:
        _close_unwanted(folder, set(wanted))
    if not readers:
        reader: Any = EmptyReader(toc.schema)
    elif len(readers) == 1:
        reader = readers[0]
    else:
        reader = MultiReader(readers, generation=toc.generation)
    yield Searcher(reader, fromindex=ix, closereader=False, **kwargs)


def _close_unwanted(folder: str, wanted: set[tuple[str, str, int]]) -> None:
    """Close this index's readers of segments it no longer has (and those of an index it
    replaced: a rebuild writes a new folder beside the old), then the least recently used of
    other indexes' beyond KEPT_READERS."""
    parent = os.path.dirname(folder)
    for key in [key for key in _readers if os.path.dirname(key[0]) == parent and key not in wanted]:
        _close(key)
    excess = max(0, len(_readers) - KEPT_READERS)
    for key in [key for key in _readers if key not in wanted][:excess]:
        _close(key)


def _close(key: tuple[str, str, int]) -> None:
    with contextlib.suppress(Exception):  # a reader of files already gone
        _readers.pop(key).close()
