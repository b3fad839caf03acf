"""mem sync against real bare remotes, with several clones in temporary folders."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2
import pytest

from memstore import gitrepo
from memstore.errors import (
    AuthenticationError,
    ConflictError,
    NoRemoteError,
    RemoteUnreachableError,
    SyncConflictError,
    UnrelatedHistoryError,
)
from memstore.memory import parse
from memstore.merge import has_conflict
from memstore.report import CollectingReporter
from memstore.store import Store
from memstore.sync import PROGRESS_MIN_OBJECTS, make_callbacks, read_state
from tests.conftest import Clock, bare, mem_ok, run_mem


@pytest.fixture
def pair(tmp_path: Path, remote: Path, clock: Clock) -> tuple[Store, Store]:
    first = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    first.add("The deploy runs on Tuesdays\nline two\nline three\nline four", tags=["ops"])
    first.sync()
    second = Store.clone(str(remote), tmp_path / "b", clock=clock)
    return first, second


def clean(store: Store) -> None:
    """The repository is in a normal state and the work tree matches HEAD."""
    repo = store.repo
    assert repo.state() == pygit2.enums.RepositoryState.NONE
    assert not repo.head_is_detached
    assert repo.status() == {}


def replace_in_file(store: Store, ref: str, old: str, new: str) -> None:
    path = store.root / store.get(ref).path
    path.write_text(path.read_text().replace(old, new))


def test_init_with_remote_push_and_clone(pair: tuple[Store, Store], remote: Path) -> None:
    first, second = pair
    assert [m.title for m in second.list()] == ["The deploy runs on Tuesdays"]
    assert second.remotes() == [("origin", str(remote))]
    attributes = (second.root / ".gitattributes").read_text()
    assert attributes == "memories/** merge=mem\n*.md.age -text diff=age\n"
    assert "merge-driver %O %A %B %P" in second.repo.config["merge.mem.driver"]
    clean(first)
    clean(second)


def test_both_sides_add_and_everyone_converges(pair: tuple[Store, Store]) -> None:
    first, second = pair
    one = first.add("Written on the first laptop")
    two = second.add("Written on the second laptop")
    assert first.sync().sent == 1
    result = second.sync()
    assert result.received == 1 and result.sent == 2  # its commit and the merge
    first.sync()
    for store in pair:
        clean(store)
        assert {m.id for m in store.list()} >= {one.id, two.id}  # the index caught up
    assert first.repo.head.target == second.repo.head.target


def test_edits_in_an_editor_are_committed_and_merged(pair: tuple[Store, Store]) -> None:
    first, second = pair
    memory = first.list()[0]
    replace_in_file(first, memory.id, "line two", "line two, edited in an editor")
    replace_in_file(second, memory.id, "line four", "line four, edited elsewhere")
    first.sync()
    result = second.sync()
    assert result.committed_pending == [memory.path]
    assert result.conflicts == []
    first.sync()
    for store in pair:
        body = store.get(memory.id).body
        assert "line two, edited in an editor" in body and "line four, edited elsewhere" in body
        clean(store)


def test_true_conflict_is_flagged_listed_and_resolved(pair: tuple[Store, Store]) -> None:
    first, second = pair
    memory = first.list()[0]
    first.update(memory.id, title="Deploys on Tuesday mornings")
    second.update(memory.id, title="Deploys on Tuesdays and Thursdays")
    replace_in_file(first, memory.id, "line three", "line three from the first")
    replace_in_file(second, memory.id, "line three", "line three from the second")
    first.sync()
    result = second.sync()
    assert result.conflicts == [memory.path]
    first.sync()
    for store in pair:
        clean(store)
        data = (store.root / memory.path).read_bytes()
        text = data.decode()
        assert has_conflict(data) and "<<<<<<<" not in text
        for part in ("line three from the first", "line three from the second"):
            assert part in text
        assert "Deploys on Tuesday mornings" in text and "Tuesdays and Thursdays" in text
        assert store.status().conflicts == [memory.path]
        assert [h.id for h in store.find_conflicts()] == [memory.id]
        assert [h.id for h in store.find_conflicts("deploys")] == [memory.id]
        assert any("unresolved sync conflict" in p.message for p in store.check())
    with pytest.raises(ConflictError, match="conflict block"):
        first.resolve_conflict(memory.id)
    resolved = first.resolve_conflict(memory.id, keep="2")
    assert "conflict" not in resolved.fields
    assert resolved.title == "Deploys on Tuesdays and Thursdays"
    first.sync()
    second.sync()
    assert second.status().conflicts == [] and second.check() == []
    assert second.get(memory.id).title == "Deploys on Tuesdays and Thursdays"


def test_an_edit_wins_over_a_deletion(pair: tuple[Store, Store]) -> None:
    first, second = pair
    memory = first.list()[0]
    first.remove(memory.id)
    second.update(memory.id, tags=["ops", "kept"])
    first.sync()
    second.sync()
    first.sync()
    for store in pair:
        assert store.get(memory.id).tags == ["ops", "kept"]
        clean(store)


def test_two_new_files_at_one_path_are_both_kept(pair: tuple[Store, Store]) -> None:
    first, second = pair
    template = (first.root / first.list()[0].path).read_text()
    old_id = first.list()[0].id
    path = "memories/2026/11/hand-made.md"
    for store, new_id in (
        (first, "01m7yrg5w86383ba0y3b4pdmp6"),
        (second, "01m7yrg5w86383ba0y3b4pdmp7"),
    ):
        (store.root / path).write_text(template.replace(old_id, new_id))
        store.sync()
    first.sync()
    ids = {m.id for m in first.list()}
    assert {"01m7yrg5w86383ba0y3b4pdmp6", "01m7yrg5w86383ba0y3b4pdmp7"} <= ids
    assert first.repo.head.target == second.repo.head.target
    clean(first)


def test_unreachable_remote_fails_in_one_line_and_keeps_commits(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store.init(tmp_path / "s", remote=str(tmp_path / "nowhere.git"), clock=clock)
    memory = store.add("kept whatever happens")
    head = store.repo.head.target
    with pytest.raises(RemoteUnreachableError, match="cannot reach origin") as caught:
        store.sync()
    assert "\n" not in str(caught.value) and "commits are kept" in str(caught.value)
    assert store.repo.head.target == head and store.get(memory.id)
    state = read_state(store)
    assert state is not None and state["result"] == "failed"
    assert store.status().last_sync["result"] == "failed"  # type: ignore[index]


def test_no_remote_and_unknown_remote(store: Store, tmp_path: Path) -> None:
    with pytest.raises(NoRemoteError, match="mem remote add origin URL"):
        store.sync()
    store.add_remote("backup", str(bare(tmp_path / "backup.git")))
    with pytest.raises(NoRemoteError, match="no remote named 'origin'"):
        store.sync("origin")
    store.add("goes to the only remote")
    assert store.sync().remote == "backup"


def test_unrelated_history_is_refused(tmp_path: Path, remote: Path, clock: Clock) -> None:
    one = Store.init(tmp_path / "one", remote=str(remote), clock=clock)
    one.add("the remote's memory")
    one.sync()
    other = Store.init(tmp_path / "other", clock=clock)
    other.add("a memory of an unrelated store")
    other.add_remote("origin", str(remote))
    head = other.repo.head.target
    with pytest.raises(UnrelatedHistoryError, match="mem clone"):
        other.sync()
    assert other.repo.head.target == head
    clean(other)


def test_a_fresh_store_adopts_the_remote(tmp_path: Path, remote: Path, clock: Clock) -> None:
    one = Store.init(tmp_path / "one", remote=str(remote), clock=clock)
    memory = one.add("already on the remote")
    one.sync()
    fresh = Store.init(tmp_path / "fresh", remote=str(remote), clock=clock)
    fresh.sync()
    assert fresh.get(memory.id).body == "already on the remote\n"
    clean(fresh)


def test_a_conflict_outside_memories_stops_without_changes(pair: tuple[Store, Store]) -> None:
    first, second = pair
    for store, text in ((first, "ours\n"), (second, "theirs\n")):
        (store.root / "notes.txt").write_text(text)
        gitrepo.commit_files(store.repo, {"notes.txt": text.encode()}, "notes", store.clock())
    first.sync()
    head = second.repo.head.target
    with pytest.raises(SyncConflictError, match="notes.txt"):
        second.sync()
    assert second.repo.head.target == head
    clean(second)


def test_credentials_are_offered_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEM_GIT_TOKEN", "secret-token")
    (Path.home() / ".git-credentials").write_text("https://alice:stored@example.com\n")
    callbacks = make_callbacks(CollectingReporter())
    allowed = pygit2.enums.CredentialType.USERPASS_PLAINTEXT
    url = "https://example.com/alice/memories.git"
    first = callbacks.credentials(url, None, allowed)
    assert first.credential_tuple == ("x-access-token", "secret-token")
    second = callbacks.credentials(url, None, allowed)
    assert second.credential_tuple == ("alice", "stored")
    with pytest.raises(AuthenticationError, match="MEM_GIT_TOKEN"):
        callbacks.credentials(url, None, allowed)


def replacing(words: str) -> str:
    """An editor command that replaces "second" with words (the same on Linux and macOS)."""
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]);"
        f" p.write_text(p.read_text().replace('second', {words!r}))"
    )
    return shlex.join([sys.executable, "-c", code])


def test_cli_sync_status_remote_and_resolve(tmp_path: Path, remote: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_mem("init", str(a), "--remote", str(remote)).returncode == 0
    added = run_mem("--store", str(a), "add", "shared memory\nsecond line", "--json")
    assert added.returncode == 0, added.stderr
    memory_id = json.loads(added.stdout)["id"]
    synced = run_mem("--store", str(a), "sync")
    assert synced.returncode == 0 and "synced with origin" in synced.stderr
    assert run_mem("clone", str(remote), str(b)).returncode == 0
    listed = mem_ok("--store", str(b), "remote", "list")
    assert listed.stdout == f"origin\t{remote}\n"
    for store, words in ((a, "from a"), (b, "from b")):
        edited = run_mem("--store", str(store), "edit", memory_id, env={"EDITOR": replacing(words)})
        assert edited.returncode == 0, edited.stderr
        assert any(words in f.read_text() for f in (store / "memories").rglob("*.md"))
    assert run_mem("--store", str(a), "sync").returncode == 0
    result = run_mem("--store", str(b), "sync", "--json")
    assert result.returncode == 0, result.stderr
    conflicts = json.loads(result.stdout)["conflicts"]
    assert len(conflicts) == 1
    status = mem_ok("--store", str(b), "status")
    assert "conflicts: 1" in status.stdout and "last sync:" in status.stdout
    found = mem_ok("--store", str(b), "find", "--conflicts")
    assert memory_id in found.stdout
    check = run_mem("--store", str(b), "check")
    assert check.returncode == 1 and "unresolved sync conflict" in check.stdout
    refused = run_mem("--store", str(b), "resolve", memory_id)
    assert refused.returncode == 1 and refused.stderr.startswith("mem: error: ")
    assert run_mem("--store", str(b), "resolve", memory_id, "--keep", "both").returncode == 0
    assert run_mem("--store", str(b), "check").returncode == 0
    failing = run_mem("--store", str(b), "sync", "--remote", "nope")
    assert failing.returncode == 1 and failing.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_plain_git_pull_uses_the_merge_driver(pair: tuple[Store, Store]) -> None:
    first, second = pair
    memory = first.list()[0]
    first.update(memory.id, title="Title from the first")
    second.update(memory.id, title="Title from the second")
    first.sync()
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@e",
        "HOME": str(Path.home()),
        "PATH": __import__("os").environ["PATH"],
    }
    pulled = subprocess.run(
        ["git", "pull", "--no-rebase", "--no-edit", "origin", "main"],
        cwd=second.root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    data = (second.root / memory.path).read_bytes()
    assert has_conflict(data) and b"<<<<<<<" not in data
    assert b"Title from the first" in data and b"Title from the second" in data
    parse(data, memory.path)
    assert second.repo.state() == pygit2.enums.RepositoryState.NONE


class RecordingReporter(CollectingReporter):
    """Keeps the progress bars it was asked to draw."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[tuple[int, str]] = []
        self.steps = 0

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        self.bars.append((total, label))

        def advance(step: int) -> None:
            self.steps += step

        yield advance


def test_a_large_push_reports_progress(tmp_path: Path, remote: Path, clock: Clock) -> None:
    reporter = RecordingReporter()
    store = Store.init(tmp_path / "s", remote=str(remote), clock=clock, reporter=reporter)
    files: dict[str, bytes | None] = {
        f"memories/2026/11/note-{n}.md": store_text(n).encode() for n in range(PROGRESS_MIN_OBJECTS)
    }
    gitrepo.commit_files(store.repo, files, "many memories", clock())
    reporter.bars.clear()
    store.sync()
    sending = [total for total, label in reporter.bars if label == "sending"]
    assert len(sending) == 1 and sending[0] > PROGRESS_MIN_OBJECTS


def store_text(number: int) -> str:
    return (
        f"---\nid: 01m7yrg5w86383ba0y3b4p{number:04d}\ntitle: Note {number}\ntype: note\n"
        f"tags: []\ncreated: 2026-11-21T10:00:00Z\n---\nBody {number}\n"
    )


def test_syncs_to_a_local_remote_take_turns(tmp_path: Path, remote: Path, clock: Clock) -> None:
    from memstore.locking import FileLock

    store = Store.init(tmp_path / "s", remote=str(remote), clock=clock)
    store.add("waits for the other sync")
    with FileLock(remote / "memstore-sync.lock").hold(None):
        waited = run_mem("--store", str(store.root), "sync", env={"MEM_LOCK_TIMEOUT": "1"})
    assert waited.returncode == 1
    assert "another mem sync has held" in waited.stderr and "commits are kept" in waited.stderr
    assert run_mem("--store", str(store.root), "sync").returncode == 0


def test_a_clean_line_merge_that_repeats_a_key_is_merged_field_by_field(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    memory = first.list()[0]
    replace_in_file(first, memory.id, "type: note\n", "type: note\nproject: apollo\n")
    path = second.root / memory.path
    text = path.read_text()
    head, body = text.split("\n---\n", 1)
    path.write_text(head + "\nproject: gemini\n---\n" + body)
    first.sync()
    result = second.sync()
    assert result.conflicts == [memory.path]
    merged = parse((second.root / memory.path).read_bytes(), memory.path)
    assert merged.blocks is not None  # each key once
    text = (second.root / memory.path).read_text()
    assert "project: apollo" in text and "project: gemini" in text
