"""`mem check` and `mem doctor` read only what changed since they last ran, and still find what
was changed behind their back (checkcache.py, indexaudit.py)."""

from __future__ import annotations

import json
import marshal
import os
import struct
import time
from pathlib import Path

from memstore.check import check_store
from memstore.checkcache import CACHE_FILE, NAMES_FILE, RACY_NS, CheckCache
from memstore.indexaudit import AUDIT_FILE, SegmentAudit
from memstore.store import Store
from memstore.validate import schema_digest


def _problems(store: Store) -> list[str]:
    return [str(f) for f in store.doctor() if f.severity == "problem"]


def _past_racy_margin() -> None:
    # Files changed within the margin of a check are not kept: let the margin pass.
    time.sleep(RACY_NS / 1e9 + 0.2)


def _rewrite_behind_its_back(path: Path, old: bytes, new: bytes) -> None:
    """Change a file keeping its size and modification time, as a careless tool could."""
    assert len(old) == len(new)
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def test_check_keeps_what_it_found_per_file(store: Store) -> None:
    first = store.add("the first memory", tags=["alpha"])
    second = store.add("the second memory")
    _past_racy_margin()
    assert check_store(store).problems == []
    kept = marshal.loads((store.index.home / CACHE_FILE).read_bytes())["files"]
    assert sorted(kept) == sorted([first.path, second.path])
    assert check_store(store).problems == []  # from what was kept: the same answer


def test_check_finds_a_problem_made_behind_its_back(store: Store) -> None:
    memory = store.add("a memory to break", type="note")
    store.add("a memory left alone")
    _past_racy_margin()
    assert check_store(store).problems == []
    _rewrite_behind_its_back(store.root / memory.path, b"type: note", b"type: NOTE")
    assert [str(p) for p in check_store(store).problems] == [
        f"{memory.path}:4: type: 'NOTE' is not a valid type (a lowercase word: note, decision,"
        " fact, preference, procedure, event or your own, made of letters, digits, '_' and '-')"
    ]


def test_check_sees_files_added_and_removed_since(store: Store) -> None:
    kept = store.add("kept")
    gone = store.add("removed by hand")
    _past_racy_margin()
    assert check_store(store).problems == []
    (store.root / gone.path).unlink()
    stray = store.root / "memories" / "notes.txt"
    stray.write_text("not a memory\n")
    assert [str(p) for p in check_store(store).problems] == [
        "memories/notes.txt:1: not a memory file (.md): move it out of memories/"
    ]
    kept_now = marshal.loads((store.index.home / CACHE_FILE).read_bytes())["files"]
    assert gone.path not in kept_now and kept.path in kept_now


def test_doctor_finds_a_file_changed_behind_the_kept_checks(store: Store) -> None:
    memory = store.add("the original wording here", type="note")
    store.add("another memory")
    _past_racy_margin()
    assert _problems(store) == []
    _rewrite_behind_its_back(store.root / memory.path, b"original", b"replaced")
    # The index's scan cannot see it (same time and size), the kept checks do not trust it.
    assert _problems(store) == [
        "index: the search index does not match the files (1 entries older than their files):"
        " run 'mem doctor --fix' or 'mem reindex' to rebuild it"
    ]
    store.doctor(fix=True)
    assert [hit.id for hit in store.find("replaced")] == [memory.id]


def test_doctor_reads_only_segments_it_has_not_read(store: Store) -> None:
    store.add("first words")
    assert _problems(store) == []
    assert (store.index.home / AUDIT_FILE).is_file()
    with store.index.reading() as ix:
        audit = SegmentAudit(store.index.home)
        blobs = audit.blobs(ix)
        assert audit.read == 0 and len(blobs) == 1
    store.add("second words")
    with store.index.reading() as ix:
        audit = SegmentAudit(store.index.home)
        assert len(audit.blobs(ix)) == 2
        assert audit.read == 1  # the new segment only


def test_doctor_finds_a_segment_damaged_behind_its_back(store: Store) -> None:
    store.add("findable words here")
    assert _problems(store) == []  # every segment read and kept
    state = json.loads((store.index.home / "state.json").read_text())
    for segment in (store.index.home / state["directory"]).glob("*_stored.col"):
        size, stat = segment.stat().st_size, segment.stat()
        segment.write_bytes(b"\xff" * size)
        os.utime(segment, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _problems(store) == [
        "index: the search index is damaged: run 'mem doctor --fix' or 'mem reindex' to rebuild"
        " it (a search would too)"
    ]


def test_doctor_notes_memories_changed_outside_mem(store: Store) -> None:
    memory = store.add("committed text")
    path = store.root / memory.path
    path.write_bytes(path.read_bytes().replace(b"committed text", b"edited by hand"))
    notes = [str(f) for f in store.doctor() if f.severity == "note"]
    assert (
        f"files (note): 1 memory file changed outside mem not committed yet ({memory.path}):"
        " the next 'mem add', 'mem edit' or 'mem rm' commits them"
    ) in notes


def test_links_by_title_resolve_from_kept_names_or_files_read_again(store: Store) -> None:
    store.add("the target text", title="Deploy checklist")
    store.add("see [[Deploy checklist]] and [[Nowhere at all]]")
    _past_racy_margin()
    first = [str(p) for p in check_store(store).problems]
    assert len(first) == 1 and "broken link [[Nowhere at all]]" in first[0]
    assert [str(p) for p in check_store(store).problems] == first  # names kept apart
    (store.index.home / NAMES_FILE).unlink()
    assert [str(p) for p in check_store(store).problems] == first  # files read again


def test_kept_rows_are_used_as_they_are_read(store: Store) -> None:
    memory = store.add("a memory checked once")
    _past_racy_margin()
    check_store(store)
    cache = CheckCache(store.index.home, schema_digest())
    cache.load()
    path = store.root / memory.path
    stat = os.lstat(path)
    row = cache.entries[memory.path]
    assert struct.unpack("<QQqq", row[0]) == (
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    )
    assert cache.get(memory.path, stat) is row  # the tuple as read: nothing built per file
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert cache.get(memory.path, os.lstat(path)) is None


def _doctor_lines(store: Store) -> list[str]:
    return [str(finding) for finding in store.doctor()]


def test_doctor_says_the_same_from_kept_checks_as_from_the_files(store: Store) -> None:
    linked = store.add("see [[nowhere to be found]]", title="Linking")
    copied = store.add("a memory copied by hand", title="Copied")
    folder = store.root / "memories"
    (folder / "stray.txt").write_text("not a memory\n")
    (folder / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    (folder / "zz-copy.md").write_bytes((store.root / copied.path).read_bytes())
    (folder / ".mem-left.md.tmp").write_text("half written")
    (folder / "link.md").symlink_to(store.root / linked.path)
    (folder / ".trash").mkdir()
    (folder / ".trash" / "old.md").write_text("---\nid: [bad\n---\n")
    (folder / ".hidden.md").write_text("---\ntitle: hidden but checked\n---\nbody\n")
    _past_racy_margin()
    read = _doctor_lines(store)  # every file read, the facts kept
    assert any("broken link" in line for line in read)
    assert any("duplicate id" in line for line in read)
    assert any("symbolic link" in line for line in read)
    assert any("stray.txt" in line for line in read)
    kept = _doctor_lines(store)  # from the kept facts
    assert CheckCache(store.index.home, schema_digest()).path.is_file()
    for name in (CACHE_FILE, NAMES_FILE, AUDIT_FILE):
        (store.index.home / name).unlink()
    assert kept == read == _doctor_lines(store)
