"""`.git/index` changed in place: the same bytes libgit2 writes, or the change left to libgit2.

Each case makes a change twice from the same starting index (its bytes and its time put back
in between): once through libgit2 (`Index.add`/`remove`, `Index.write`), once through
`gitindex`; the two files must be equal byte for byte. The real `git` program then checks the
result where it can.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2
import pytest

from memstore import gitindex, gitrepo
from memstore.store import Store
from tests.conftest import Clock

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="the git program is not installed")


def _git(root: Path, *args: str) -> str:
    assert GIT is not None
    done = subprocess.run(
        [GIT, *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


class Repo:
    """A work tree with nested folders, committed, and its index as libgit2 last wrote it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = pygit2.init_repository(str(root), initial_head="main")
        files = {
            ".gitattributes": b"memories/** merge=mem\n",
            "memories/2026/01/a-first.md": b"first\n",
            "memories/2026/01/c-third.md": b"third\n",
            "memories/2026/02/b-second.md": b"second\n",
            "memories/2027/01/d-fourth.md": b"fourth\n",
            "notes.txt": b"not a memory\n",
        }
        for path, data in files.items():
            self.write(path, data)
        index = self.repo.index
        for path in files:
            index.add(path)
        tree = index.write_tree()
        index.write()
        sig = pygit2.Signature("Test Person", "test@example.com", 1_700_000_000, 0)
        self.repo.create_commit("HEAD", sig, sig, "start", tree, [])
        self.age_index()

    @property
    def index_path(self) -> Path:
        return self.root / ".git" / "index"

    def write(self, path: str, data: bytes) -> None:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)

    def age_index(self) -> None:
        """Date the index a minute ahead of its files, so that none is racily clean."""
        newest = max(p.stat().st_mtime_ns for p in self.root.rglob("*") if p.is_file())
        os.utime(self.index_path, ns=(newest + 60 * 10**9, newest + 60 * 10**9))

    def both_ways(self, changes: dict[str, bytes | None]) -> tuple[bytes, bytes, bool]:
        """The index libgit2 writes for changes, the one gitindex writes, and whether gitindex
        did it itself; the work tree must already hold the changed files."""
        before = self.index_path.read_bytes()
        times = self.index_path.stat()
        # A repository opened afresh each time, as by a new mem process: libgit2 keeps the
        # time of the index as it last read or wrote it, and takes racily clean entries by it.
        gitrepo._update_index_with_libgit2(self.fresh(), changes)
        by_libgit2 = self.index_path.read_bytes()
        self.index_path.write_bytes(before)
        os.utime(self.index_path, ns=(times.st_atime_ns, times.st_mtime_ns))
        repo = self.fresh()
        done = gitrepo._update_index_in_place(repo, changes)
        if not done:
            gitrepo._update_index_with_libgit2(repo, changes)
        return by_libgit2, self.index_path.read_bytes(), done

    def fresh(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.root))


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Repo]:
    yield Repo(tmp_path / "repo")


def _tree_extension(data: bytes) -> bytes | None:
    at = data.find(b"TREE")
    if at < 0:
        return None
    (size,) = struct.unpack_from(">I", data, at + 4)
    return data[at + 8 : at + 8 + size]


def test_a_new_file_in_a_known_folder_and_in_a_new_one(work: Repo) -> None:
    work.write("memories/2026/01/b-second-half.md", b"between\n")
    work.write("memories/2026/03/e-fifth.md", b"fifth\n")
    changes = {
        "memories/2026/01/b-second-half.md": b"between\n",
        "memories/2026/03/e-fifth.md": b"fifth\n",
    }
    by_libgit2, ours, done = work.both_ways(changes)
    assert done
    assert ours == by_libgit2
    index = pygit2.Index(str(work.index_path))
    assert [entry.path for entry in index] == sorted(entry.path for entry in index)
    assert len(index) == 8


def test_a_changed_file_and_a_removed_one(work: Repo) -> None:
    work.write("memories/2026/01/c-third.md", b"third, longer now\n")
    (work.root / "memories/2027/01/d-fourth.md").unlink()
    changes = {
        "memories/2026/01/c-third.md": b"third, longer now\n",
        "memories/2027/01/d-fourth.md": None,
        "memories/2027/01/never-there.md": None,
    }
    by_libgit2, ours, done = work.both_ways(changes)
    assert done and ours == by_libgit2


def test_the_cache_tree_is_kept_and_invalidated_along_the_changed_path(work: Repo) -> None:
    before = _tree_extension(work.index_path.read_bytes())
    assert before is not None and b"2027\x001 1\n" in before  # valid: a count and an id
    work.write("memories/2026/02/f-sixth.md", b"sixth\n")
    by_libgit2, ours, done = work.both_ways({"memories/2026/02/f-sixth.md": b"sixth\n"})
    assert done and ours == by_libgit2
    after = _tree_extension(ours)
    assert after is not None
    assert after.startswith(b"\x00-1 1\nmemories\x00-1 2\n2026\x00-1 2\n")  # along the path
    assert b"02\x00-1 0\n" in after
    assert b"01\x002 0\n" in after and b"2027\x001 1\n" in after  # elsewhere: left valid


@needs_git
def test_an_index_written_by_git_with_its_cache_tree(work: Repo) -> None:
    _git(work.root, "write-tree")  # git's own cache tree, in git's order
    work.age_index()
    work.write("memories/2027/01/a-new.md", b"new\n")
    by_libgit2, ours, done = work.both_ways({"memories/2027/01/a-new.md": b"new\n"})
    assert done and ours == by_libgit2


def test_a_racily_clean_entry_unchanged_is_kept(work: Repo) -> None:
    # The index is as old as its files: libgit2 looks at each again, and finds them unchanged.
    oldest = min(p.stat().st_mtime_ns for p in (work.root / "memories").rglob("*.md"))
    os.utime(work.index_path, ns=(oldest, oldest))
    work.write("memories/2026/01/b-between.md", b"between\n")
    by_libgit2, ours, done = work.both_ways({"memories/2026/01/b-between.md": b"between\n"})
    assert done and ours == by_libgit2


def test_a_racily_clean_entry_that_changed_is_left_to_libgit2(work: Repo) -> None:
    # Edited after the index was written, same size: libgit2 smudges its size to 0, so that
    # git looks at its content again.
    edited = work.root / "memories/2026/01/a-first.md"
    recorded = edited.stat().st_mtime_ns  # as the index has it
    os.utime(work.index_path, ns=(recorded, recorded))
    edited.write_bytes(b"FIRST\n")
    work.write("memories/2026/01/b-between.md", b"between\n")
    by_libgit2, ours, done = work.both_ways({"memories/2026/01/b-between.md": b"between\n"})
    assert not done and ours == by_libgit2
    at = ours.index(b"memories/2026/01/a-first.md\0") - gitindex.ENTRY_FIXED
    assert struct.unpack_from(">I", ours, at + 36) == (0,)  # smudged: the size is 0


def test_an_lf_file_under_autocrlf_is_written_in_place(work: Repo) -> None:
    config = work.fresh().config
    config["core.autocrlf"] = "true"  # converts CRLF on the way in: an LF file has none
    work.write("memories/2026/01/b-between.md", b"between\n")
    by_libgit2, ours, done = work.both_ways({"memories/2026/01/b-between.md": b"between\n"})
    assert done and ours == by_libgit2


@pytest.mark.parametrize(
    ("data", "setting"),
    [
        (b"line one\r\nline two\r\n", ("core.autocrlf", "true")),  # git stores it with LF
        (b"$Id: something $\n", None),  # the ident filter, when asked for, would change it
        (b"between\n", ("core.safecrlf", "true")),  # libgit2 may refuse the file
        (b"between\n", ("core.ignorecase", "true")),
    ],
)
def test_a_file_git_filters_could_change_is_left_to_libgit2(
    work: Repo, data: bytes, setting: tuple[str, str] | None
) -> None:
    if setting is not None:
        config = work.fresh().config
        config[setting[0]] = setting[1]
    else:
        work.write(".gitattributes", b"*.md ident\n")
    work.write("memories/2026/01/b-between.md", data)
    by_libgit2, ours, done = work.both_ways({"memories/2026/01/b-between.md": data})
    assert not done and ours == by_libgit2


def test_blob_ids_are_git_s_unless_a_filter_could_change_the_bytes() -> None:
    assert gitindex.blob_id(b"hello\n") == pygit2.hash(b"hello\n").raw
    assert gitindex.blob_id(b"") == pygit2.hash(b"").raw
    assert (
        gitindex.blob_id(b"lone\rcarriage return\n") == pygit2.hash(b"lone\rcarriage return\n").raw
    )
    assert gitindex.blob_id(b"windows\r\n") is None
    assert gitindex.blob_id(b"$Id$\n") is None


def _layout_as_parsed(work: Repo) -> tuple[object, object] | None:
    """The layout noted after the last in-place write, and the one a full walk finds."""
    data = work.index_path.read_bytes()
    stamp = work.index_path.stat()
    noted = gitindex._remembered(work.root / ".git" / "memstore" / gitindex.LAYOUT, data, stamp)
    walked = gitindex._parse(data, memoryview(data), stamp)
    if noted is None:
        return None
    return (
        (list(noted.offsets), noted.end, sorted(noted.odd), noted.count),
        (list(walked.offsets), walked.end, sorted(walked.odd), walked.count),
    )


def test_the_layout_noted_after_each_write_is_the_one_a_walk_finds(work: Repo) -> None:
    (work.root / ".git" / "memstore").mkdir()
    newest = max(p.stat().st_mtime_ns for p in (work.root / "memories").rglob("*.md"))
    os.utime(work.index_path, ns=(newest, newest))  # not ahead of the clock: some are racy
    steps: list[dict[str, bytes | None]] = [
        {"memories/2026/01/b-between.md": b"between\n"},
        {"memories/2026/01/a-first.md": b"first, and longer\n"},  # before the other entries
        {"memories/2027/01/d-fourth.md": None, "memories/2026/03/e.md": b"e\n"},
        {".gitattributes": b"memories/** merge=mem\n*.age -text\n"},
    ]
    for step in steps:
        for path, data in step.items():
            if data is None:
                (work.root / path).unlink()
            else:
                work.write(path, data)
        assert gitrepo._update_index_in_place(work.fresh(), step)
        found = _layout_as_parsed(work)
        assert found is not None
        noted, walked = found
        assert noted == walked
    # A file dated ahead of the clock is as new as any index written before then: noted as
    # racily clean, and checked again by each write, which leaves it to libgit2 once it changed.
    future = work.root / "memories/2026/03/g.md"
    work.write("memories/2026/03/g.md", b"g\n")
    ahead = work.index_path.stat().st_mtime_ns + 3600 * 10**9
    os.utime(future, ns=(ahead, ahead))
    assert gitrepo._update_index_in_place(work.fresh(), {"memories/2026/03/g.md": b"g\n"})
    work.write("memories/2026/03/h.md", b"h\n")
    assert gitrepo._update_index_in_place(work.fresh(), {"memories/2026/03/h.md": b"h\n"})
    found = _layout_as_parsed(work)
    assert found is not None and found[0] == found[1] and found[0][2]  # one racily clean
    future.write_bytes(b"G\n")
    os.utime(future, ns=(ahead, ahead))
    work.write("memories/2026/03/i.md", b"i\n")
    assert not gitrepo._update_index_in_place(work.fresh(), {"memories/2026/03/i.md": b"i\n"})
    gitrepo._update_index_with_libgit2(work.fresh(), {"memories/2026/03/i.md": b"i\n"})
    future.write_bytes(b"g\n")  # as the index has it again (its size is 0 there now)
    os.utime(future, ns=(ahead, ahead))
    # As new as the index: noted as racily clean, and checked again by the next write.
    path = "memories/2026/03/e.md"
    recorded = (work.root / path).stat().st_mtime_ns
    work.write("memories/2026/03/f.md", b"f\n")
    assert gitrepo._update_index_in_place(work.fresh(), {"memories/2026/03/f.md": b"f\n"})
    os.utime(work.index_path, ns=(recorded, recorded))
    assert _layout_as_parsed(work) is None  # another time: the note is not for this file
    assert gitrepo._update_index_in_place(work.fresh(), {"memories/2026/03/f.md": b"f\n"})
    # A write by libgit2 leaves the note behind: it is not used for that file.
    gitrepo._update_index_with_libgit2(work.fresh(), {"memories/2026/03/f.md": b"f\n"})
    assert _layout_as_parsed(work) is None


def _rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Change an index file's content (without its checksum), then checksum it again."""
    import hashlib

    body = change(path.read_bytes()[:-20])
    path.write_bytes(body + hashlib.sha1(body).digest())


@pytest.mark.parametrize(
    "how",
    ["unknown extension", "version 3", "conflict", "locked", "bad checksum", "file as folder"],
)
def test_what_it_does_not_handle_is_left_to_libgit2(work: Repo, how: str) -> None:
    path, data = "memories/2026/01/b-between.md", b"between\n"
    if how == "unknown extension":  # optional (upper case): libgit2 reads past it
        _rewrite(work.index_path, lambda body: body + b"ZZZZ" + struct.pack(">I", 2) + b"hi")
    elif how == "version 3":
        _rewrite(work.index_path, lambda body: body[:4] + struct.pack(">I", 3) + body[8:])
    elif how == "conflict":
        index = work.fresh().index
        ours = index["memories/2026/01/c-third.md"]
        theirs = pygit2.IndexEntry(ours.path, work.fresh().create_blob(b"theirs\n"), ours.mode)
        index.add_conflict(None, ours, theirs)
        index.write()
    elif how == "locked":
        (work.root / ".git" / "index.lock").write_bytes(b"")
    elif how == "bad checksum":
        raw = bytearray(work.index_path.read_bytes())
        raw[-1] ^= 0xFF
        work.index_path.write_bytes(bytes(raw))
    elif how == "file as folder":
        path, data = "notes.txt/inside.md", b"inside\n"
        (work.root / "notes.txt").unlink()
    work.age_index()
    work.write(path, data)
    before = work.index_path.read_bytes()
    assert not gitrepo._update_index_in_place(work.fresh(), {path: data})
    assert work.index_path.read_bytes() == before  # nothing written
    lock = work.root / ".git" / "index.lock"
    assert lock.exists() == (how == "locked")  # someone else's lock is left alone


def test_tree_cache_round_trip_and_invalidation() -> None:
    leaf = gitindex.TreeCache(b"12", 3, b"\x01" * 20)
    month = gitindex.TreeCache(b"2026", 4, b"\x02" * 20, [leaf])
    other = gitindex.TreeCache(b"2025", 7, b"\x03" * 20)
    root = gitindex.TreeCache(b"", 11, b"\x04" * 20, [gitindex.TreeCache(b"m", 11, b"\x05" * 20)])
    root.children[0].children = [other, month]
    data = root.to_bytes()
    parsed, end = gitindex._read_tree(data, 0, len(data))
    assert end == len(data) and parsed.to_bytes() == data
    parsed.invalidate(b"m/2026/12/new.md")
    assert parsed.count == -1 and parsed.children[0].count == -1
    month_node = parsed.children[0].children[1]
    assert month_node.count == -1 and month_node.children[0].count == -1
    assert parsed.children[0].children[0].count == 7  # another path: still valid
    assert b"12\x00-1 0\n" in parsed.to_bytes() and b"\x01" * 20 not in parsed.to_bytes()


@needs_git
def test_git_sees_a_clean_work_tree_and_a_sound_repository_after_adds(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store.init(tmp_path / "s", clock=clock)
    for number in range(3):
        store.add(f"note {number} about the index written in place")
    memory = store.add("one more, then edited")
    store.update(memory.id, body="one more, edited in place")
    store.remove(store.list()[0].id)
    assert _git(store.root, "status", "--porcelain") == ""
    assert _git(store.root, "diff", "--cached", "--stat") == ""
    _git(store.root, "fsck", "--strict", "--no-progress")
    entries = _git(store.root, "ls-files", "-s").splitlines()
    tree = _git(store.root, "ls-tree", "-r", "HEAD").splitlines()
    assert [line.split()[1] for line in entries] == [line.split()[2] for line in tree]
