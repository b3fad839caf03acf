"""Reliability: killed processes, concurrent writers, hostile input, and `mem doctor`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pygit2
import pytest

from benchmarks import concurrency, crash
from memstore import gitrepo
from memstore.doctor import has_problems, stale_index_entries
from memstore.errors import InvalidInputError, MemstoreError, RepositoryStateError
from memstore.memory import MAX_FILE_BYTES, parse
from memstore.store import Store
from tests.conftest import Clock, run_mem


def _old(path: Path) -> Path:
    """Make a file look an hour old (by the file system's clock, which stamped it)."""
    old = path.stat().st_mtime - 3600
    os.utime(path, (old, old))
    return path


def _problems(store: Store) -> list[str]:
    return [str(f) for f in store.doctor() if f.severity == "problem"]


# Killed processes


def test_killed_commands_leave_a_store_that_works(tmp_path: Path) -> None:
    """A handful of SIGKILLs at random moments; the benchmark does 200 (benchmarks/crash.py)."""
    tally = crash.crash_runs(
        tmp_path / "crash", runs=4, seed=3, seed_count=20, timing_runs=1, spread=(0.2, 0.6)
    )
    assert tally.problems == []
    assert tally.runs == 4 and tally.kills >= 1


def test_a_change_staged_but_not_committed_is_completed_by_the_next_write(store: Store) -> None:
    """What a process killed between updating .git/index and committing leaves behind."""
    memory = store.add("first version")
    path = store.root / memory.path
    path.write_bytes(memory.to_bytes().replace(b"first version", b"second version"))
    index = store.repo.index
    index.read()
    index.add(memory.path)
    index.write()
    store.add("the next write")
    assert gitrepo.read_committed(store.repo, memory.path) == path.read_bytes()
    assert stale_index_entries(store, store.repo) == []
    assert not gitrepo.pending_changes(store.repo, "memories")


def test_git_lock_file_refuses_the_write_before_anything_is_written(store: Store) -> None:
    lock = store.git_dir / "index.lock"
    lock.write_text("")
    before = sorted((store.root / "memories").rglob("*"))
    with pytest.raises(RepositoryStateError) as caught:
        store.add("blocked by git")
    assert str(caught.value).startswith(f"git's lock file {lock} exists: a git program is working")
    assert sorted((store.root / "memories").rglob("*")) == before
    lock.unlink()
    assert store.add("after the lock").title == "after the lock"


def test_git_locks_of_a_mem_process_killed_while_committing_are_cleared(store: Store) -> None:
    """libgit2's lock files outlive a killed process; they stopped every later write."""
    (store.git_dir / "memstore" / "committing").write_text("99999\n")
    for name in ("index.lock", "refs/heads/main.lock"):
        (store.git_dir / name).write_text("")
    problems = _problems(store)
    assert len(problems) == 2 and all(
        p.endswith(
            "a mem process was killed while committing: the next mem write removes it,"
            " or 'mem doctor --fix'"
        )
        for p in problems
    )
    memory = store.add("after the crash")
    assert gitrepo.read_committed(store.repo, memory.path) is not None
    assert not (store.git_dir / "index.lock").exists()
    assert not (store.git_dir / "refs/heads/main.lock").exists()
    assert "removed index.lock, left by a mem process killed while committing" in (
        store.reporter.notices  # type: ignore[attr-defined]
    )
    assert not (store.git_dir / "memstore" / "committing").exists()


# Concurrent writers


def test_concurrent_writers_lose_nothing_and_searches_answer(tmp_path: Path) -> None:
    """4 writers at once; the benchmark runs 4 x 100 (benchmarks/concurrency.py)."""
    outcome = concurrency.run(tmp_path / "conc", writers=4, adds=3)
    assert outcome.failed_adds == []
    assert outcome.memories == 12 and outcome.commits == 13
    assert outcome.not_found == [] and outcome.problems == []
    assert outcome.finds >= 1 and outcome.failed_finds == []


# Hostile input: sizes


def test_a_huge_body_is_refused_quickly_with_a_message(store: Store) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as caught:
        store.add("lorem ipsum dolor sit amet\n" * 400_000)  # 10.4 MB
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        "the memory is 10.3 MB, over the 1 MB limit: split it, or keep large content in a file"
        " outside the store and mention its path"
    )
    assert store.list() == []


def test_too_many_tags_are_refused_quickly(store: Store) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInputError, match="100000 tags is too many: a memory may have"):
        store.add("tagged", tags=[f"t{n}" for n in range(100_000)])
    assert time.monotonic() - started < 2


def test_oversize_files_written_by_hand_are_skipped_with_a_warning(store: Store) -> None:
    folder = store.root / "memories" / "2026" / "11"
    folder.mkdir(parents=True)
    keep = store.add("a normal memory about zebras")
    big = store.add("a big memory about zebras")
    (store.root / big.path).write_bytes(big.to_bytes() + b"zebra padding\n" * 800_000)
    tags = "  - t\n" * 100_000
    header = f"---\nid: 01m7ysvmb1s4dxapvenrhxwngx\ntitle: many tags\ntags:\n{tags}---\nzebras\n"
    (folder / "many-tags.md").write_text(header)
    started = time.monotonic()
    hits = store.find("zebras")
    problems = store.check()
    assert time.monotonic() - started < 10
    assert [hit.id for hit in hits] == [keep.id]
    messages = {p.path.rsplit("/", 1)[-1]: p.message for p in problems}
    assert messages[big.path.rsplit("/", 1)[-1]].startswith("the file is 10.7 MB, over the 1 MB")
    assert messages["many-tags.md"].startswith("the front-matter is 586 KB, over the 64 KB")
    assert any("skipped, the file is 10.7 MB" in w for w in store.reporter.warnings)  # type: ignore[attr-defined]


def test_text_that_is_not_unicode_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        store.add("broken \udcff text")
    with pytest.raises(InvalidInputError, match="tags: the value is not valid UTF-8 text"):
        store.add("fine text", tags=["bad\udcfftag"])
    assert store.list() == []


def test_limits_match_the_parser() -> None:
    data = b"---\nid: x\n---\n" + b"x" * MAX_FILE_BYTES
    with pytest.raises(MemstoreError, match="over the 1 MB limit of a memory"):
        parse(data, "memories/x.md")


# Hostile input: paths and symbolic links


@pytest.fixture
def outside(tmp_path: Path, store: Store, clock: Clock) -> dict[str, Path]:
    """A valid memory outside the store, and links to it and to its folder inside memories/."""
    elsewhere = Store.init(tmp_path / "elsewhere", clock=clock)
    secret = elsewhere.add("the secret outside word is platypus")
    folder = store.root / "memories" / "2026" / "11"
    folder.mkdir(parents=True, exist_ok=True)
    file_link = folder / "linked-file.md"
    file_link.symlink_to(elsewhere.root / secret.path)
    dir_link = store.root / "memories" / "linked-folder"
    dir_link.symlink_to((elsewhere.root / secret.path).parent)
    return {"file": file_link, "dir": dir_link / Path(secret.path).name, "secret": Path(secret.id)}


def test_symlinks_out_of_the_store_are_never_followed(
    store: Store, outside: dict[str, Path]
) -> None:
    store.add("an ordinary memory")
    assert store.find("platypus") == []
    assert all("platypus" not in item.title for item in store.list())
    for link in (outside["file"], outside["dir"]):
        for ref in (str(link), link.relative_to(store.root).as_posix()):
            with pytest.raises(MemstoreError):
                store.get(ref)
            with pytest.raises(MemstoreError):
                store.remove(ref)
            with pytest.raises(MemstoreError):
                store.edit(ref, lambda path: path.write_text("changed"))
    with pytest.raises(MemstoreError):
        store.get(str(outside["secret"]))
    messages = {p.path: p.message for p in store.check()}
    assert messages["memories/2026/11/linked-file.md"].startswith("symbolic link")
    assert messages["memories/linked-folder"].startswith("symbolic link")
    assert outside["file"].resolve().read_text().endswith("word is platypus\n")  # untouched
    store.add("a write commits no link")
    head = crash.committed_memories(store.root)
    assert not any("linked" in path for path in head)


def test_symlinks_through_the_cli(store: Store, outside: dict[str, Path]) -> None:
    base = ("--store", str(store.root))
    for command in ("show", "edit", "rm"):
        result = run_mem(*base, command, str(outside["file"]), env={"EDITOR": "true"})
        assert result.returncode == 1, result
        assert result.stderr.startswith("mem: error: ") and "Traceback" not in result.stderr
    found = run_mem(*base, "find", "platypus")
    assert found.returncode == 0 and found.stdout == ""
    checked = run_mem(*base, "check")
    assert checked.returncode == 1 and "linked-file.md:1: symbolic link" in checked.stdout


@pytest.mark.parametrize(
    "ref",
    ["../../etc/passwd", "memories/../../outside.md", "/etc/passwd", "memories/../.git/HEAD"],
)
def test_paths_that_climb_out_are_refused(store: Store, ref: str) -> None:
    with pytest.raises(MemstoreError) as caught:
        store.get(ref)
    assert "outside the store's memories folder" in str(caught.value) or "no memory file" in str(
        caught.value
    )


# mem doctor


def test_doctor_on_a_healthy_store_finds_no_problem(store: Store) -> None:
    store.add("all is well")
    findings = store.doctor()
    assert not has_problems(findings)
    assert [f.problem for f in findings] == [
        "no git remote: this store is kept on this machine only"
    ]


def test_doctor_fixes_leftovers_of_killed_processes(store: Store, tmp_path: Path) -> None:
    memory = store.add("a memory")
    folder = (store.root / memory.path).parent
    old_temp = folder / ".mem-abc123.tmp"
    old_temp.write_bytes(b"---\nid: half")
    young_temp = folder / ".mem-def456.tmp"
    young_temp.write_bytes(b"")
    stale_dir = store.index.home / "ix-deadbeef"
    stale_dir.mkdir()
    state_temp = store.index.home / ".mem-state1.tmp"
    git_lock = store.git_dir / "index.lock"
    for leftover in (old_temp, state_temp, git_lock):
        leftover.write_bytes(leftover.read_bytes() if leftover.exists() else b"")
        _old(leftover)

    # A git program of another repository does not stop the fix.
    elsewhere = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=tmp_path, stdin=subprocess.PIPE
    )
    try:
        problems = _problems(store)
    finally:
        elsewhere.communicate(b"")
    assert problems[0].startswith("repository: git's lock file .git/index.lock exists (3")
    # Where running programs cannot be listed (no /proc: macOS), the fix is not offered.
    can_tell = Path("/proc/self").is_dir()
    assert problems[0].endswith(
        "so mem cannot commit: if no git program is running in this repository, delete it"
        + ("; 'mem doctor --fix' does" if can_tell else "")
    )
    assert problems[1:] == [
        f"files: 1 temporary file left by interrupted writes ({old_temp.relative_to(store.root)}):"
        " run 'mem doctor --fix' to delete them (searches ignore them)",
        "index: 2 leftovers in .git/memstore from interrupted index updates"
        " (.mem-state1.tmp, ix-deadbeef): run 'mem doctor --fix' to remove them",
    ]
    if not can_tell:
        git_lock.unlink()  # as the message says
    fixed = store.doctor(fix=True)
    assert not has_problems(fixed)
    assert not old_temp.exists() and young_temp.exists() and not stale_dir.exists()
    assert not git_lock.exists() and not state_temp.exists()
    assert _problems(store) == []
    assert store.find("memory")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="running programs are read in /proc")
def test_doctor_leaves_a_git_lock_while_git_runs_in_the_store(store: Store) -> None:
    store.add("a memory")
    git_lock = store.git_dir / "index.lock"
    git_lock.write_bytes(b"")
    _old(git_lock)
    running = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=store.root, stdin=subprocess.PIPE
    )
    try:
        [problem] = _problems(store)
        store.doctor(fix=True)
    finally:
        running.communicate(b"")
    assert problem.endswith("if no git program is running in this repository, delete it")
    assert git_lock.exists()


def test_doctor_rebuilds_a_damaged_index(store: Store) -> None:
    store.add("findable words here")
    state = json.loads((store.index.home / "state.json").read_text())
    for segment in (store.index.home / state["directory"]).iterdir():
        segment.write_bytes(b"garbage")
    assert _problems(store) == [
        "index: the search index is damaged: run 'mem doctor --fix' or 'mem reindex' to rebuild"
        " it (a search would too)"
    ]
    store.doctor(fix=True)
    assert _problems(store) == []
    assert [hit.title for hit in store.find("findable")] == ["findable words here"]


def test_doctor_finds_an_index_that_missed_a_change(store: Store) -> None:
    memory = store.add("the original wording")
    path = store.root / memory.path
    mtime = path.stat().st_mtime
    path.write_bytes(path.read_bytes().replace(b"original wording", b"replaced phrasing"))
    os.utime(path, (mtime - 30, mtime - 30))  # set back in time: the scan cannot see it
    assert _problems(store) == [
        "index: the search index does not match the files (1 entries older than their files):"
        " run 'mem doctor --fix' or 'mem reindex' to rebuild it"
    ]
    store.doctor(fix=True)
    assert [hit.id for hit in store.find("phrasing")] == [memory.id]


def test_doctor_repairs_git_index_left_behind_head(store: Store) -> None:
    """The state a process killed after committing but before updating .git/index left."""
    memory = store.add("version one")
    index = store.repo.index
    index.read()
    old_entry = index[memory.path]
    store.update(memory.id, body="version two")
    index.read()
    index.add(pygit2.IndexEntry(memory.path, old_entry.id, old_entry.mode))
    index.write()
    problems = _problems(store)
    assert len(problems) == 1 and problems[0].startswith(
        "repository: 1 memory file staged in .git/index differently from HEAD"
    )
    store.doctor(fix=True)
    assert _problems(store) == []
    if shutil.which("git"):
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=store.root, capture_output=True, text=True
        )
        assert status.returncode == 0 and status.stdout == "", status.stderr


def test_doctor_reports_repository_states(store: Store, tmp_path: Path) -> None:
    store.add("something")
    head = gitrepo.read_head(store.git_dir)
    (store.git_dir / "MERGE_HEAD").write_text(f"{head}\n")
    assert any("a merge, rebase or cherry-pick is in progress" in p for p in _problems(store))
    (store.git_dir / "MERGE_HEAD").unlink()
    store.repo.set_head(pygit2.Oid(hex=head))
    assert any("HEAD is detached" in p for p in _problems(store))
    store.repo.set_head("refs/heads/main")
    store.repo.config["branch.main.remote"] = "origin"
    store.repo.config["branch.main.merge"] = "refs/heads/main"
    assert _problems(store) == [
        "repository: branch main follows the remote 'origin', which does not exist: add it"
        " ('git remote add origin URL') or stop following it ('git branch --unset-upstream')"
    ]
    bare = pygit2.init_repository(str(tmp_path / "remote.git"), bare=True)
    store.repo.remotes.create("origin", bare.path)
    store.repo.remotes["origin"].push(["refs/heads/main:refs/heads/main"])
    store.add("not pushed yet")
    findings = store.doctor()
    assert not has_problems(findings)
    assert "1 commit not pushed to origin/main" in [f.problem for f in findings]
    del store.repo.config["branch.main.remote"]  # mem sync sets no upstream: origin is used
    assert "1 commit not pushed to origin/main" in [f.problem for f in store.doctor()]


def test_doctor_cli_exit_status_json_and_fix(store: Store) -> None:
    store.add("one memory")
    base = ("--store", str(store.root))
    healthy = run_mem(*base, "doctor")
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stderr.endswith("no problems found\n")
    (store.index.home / "ix-0badf00d").mkdir()
    (store.root / "memories" / "stray.txt").write_text("not a memory")
    sick = run_mem(*base, "doctor", "--json")
    assert sick.returncode == 1
    report = json.loads(sick.stdout)
    assert report["ok"] is False
    assert {
        (f["area"], f["fixable"]) for f in report["findings"] if f["severity"] == "problem"
    } == {
        ("files", False),
        ("index", True),
    }
    fixed = run_mem(*base, "doctor", "--fix")
    assert fixed.returncode == 1  # the stray file needs a person
    assert "ix-0badf00d): fixed" in fixed.stdout
    assert fixed.stderr.endswith("1 problem left, 1 fixed\n")
    (store.root / "memories" / "stray.txt").unlink()
    assert run_mem(*base, "doctor").returncode == 0


@pytest.mark.parametrize(
    "header, message",
    [
        ("x: !!int abc", "invalid value in the front-matter: invalid literal for int()"),
        ("!!int", "invalid value in the front-matter: string index out of range"),
        ("a: &a [x, x]\nb: [*a, *a, *a]", "YAML anchors and aliases (&name, *name) are not"),
        ("a: &a [*a]", "YAML anchors and aliases (&name, *name) are not allowed"),
    ],
)
def test_hostile_yaml_is_skipped_and_searches_still_work(
    store: Store, header: str, message: str
) -> None:
    """PyYAML raised ValueError or IndexError here, which failed every search of the store."""
    kept = store.add("a memory about otters")
    hostile = store.root / "memories" / "hostile.md"
    hostile.write_text(f"---\n{header}\n---\notters\n")
    assert [hit.id for hit in store.find("otters")] == [kept.id]
    assert any(message in p.message for p in store.check() if p.path == "memories/hostile.md")


def _lock_holder(path: Path) -> int | None:
    """The pid a memstore lock file names: its last exclusive holder."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def test_a_search_holds_writers_off_the_segments_it_reads(store: Store) -> None:
    """A writer's merge deleted segment files a search was about to read (a TypeError)."""
    from memstore import search
    from memstore.results import Filters

    for number in range(3):
        store.add(f"memory number {number}")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    write_lock = store.git_dir / "memstore" / "write.lock"
    index_lock = store.index.home / "index.lock"
    writer: subprocess.Popen[bytes] | None = None
    try:
        with store.index.reading() as ix:
            writer = subprocess.Popen(
                [*crash.mem_command(), "--store", str(store.root), "add", "memory number 3"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # The writer takes the store's write lock (its pid goes into the file), then needs
            # the index: from then on, only this reader's lock can keep it from finishing.
            deadline = time.monotonic() + 60
            while _lock_holder(write_lock) != writer.pid:
                assert writer.poll() is None, "the writer finished while a search was reading"
                assert time.monotonic() < deadline, "the writer never took the write lock"
                time.sleep(0.01)
            with pytest.raises(subprocess.TimeoutExpired):
                writer.wait(timeout=2)  # it finishes in milliseconds if nothing holds it off
            assert _lock_holder(index_lock) != writer.pid
            hits = search.search(ix, "memory", Filters(), 0, lambda p: None, ("", ""), now)
            assert len(hits) == 3
        assert writer.wait(timeout=60) == 0
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
    assert len(store.find("memory", limit=0)) == 4
