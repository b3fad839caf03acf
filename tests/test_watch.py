"""The change journal of large stores, with a real watcher process and real inotify events."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memstore import watch
from memstore.store import Store

pytestmark = pytest.mark.skipif(not watch.supported(), reason="inotify is Linux-only")


@pytest.fixture
def watched(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("MEM_WATCH", "1")
    home = store.git_dir / "memstore"
    yield store
    monkeypatch.setenv("MEM_WATCH", "0")
    stop_all(home)


def stop_all(home: Path) -> None:
    """Stop every watcher this test started, also one a busy machine started late."""
    deadline = time.monotonic() + 20
    while running := watch.reap():
        assert time.monotonic() < deadline, f"watcher processes left running: {running}"
        watch.stop(home)
        time.sleep(0.05)


def wait_for_watcher(store: Store, other_than: str | None = None) -> watch.Journal:
    home = store.git_dir / "memstore"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        journal = watch.live_journal(home)
        if journal is not None and journal.generation != other_than:
            return journal
        time.sleep(0.05)
    raise AssertionError("the watcher did not start")


def edit_in_place_keeping_an_old_mtime(path: Path, old: str, new: str) -> None:
    """Rewrite a file in place and set its mtime an hour back: a scan by mtime cannot see it."""
    stat = path.stat()
    with open(path, "r+", encoding="utf-8") as handle:
        text = handle.read().replace(old, new)
        handle.seek(0)
        handle.write(text)
        handle.truncate()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3600 * 10**9))


def settle(journal: watch.Journal, before: int) -> None:
    """Wait until the watcher has journaled something past `before`."""
    deadline = time.monotonic() + 10
    while journal.size() <= before and time.monotonic() < deadline:
        time.sleep(0.02)


def test_search_uses_the_journal_instead_of_a_scan(watched: Store) -> None:
    store = watched
    memory = store.add("the watcher sees alpha")
    store.find("alpha")  # full scan; starts the watcher
    journal = wait_for_watcher(store)
    store.find("alpha")  # full scan again, now tied to the journal
    state = store.index._load_state()
    assert state is not None and state.watch_generation == journal.generation

    # Only the journal can tell this file changed, so finding it proves the journal was read.
    before = journal.size()
    edit_in_place_keeping_an_old_mtime(store.root / memory.path, "alpha", "omega")
    settle(journal, before)
    assert [h.id for h in store.find("omega")] == [memory.id]
    assert store.find("alpha") == []


def test_new_and_removed_folders_through_the_journal(watched: Store) -> None:
    store = watched
    store.add("anchor memory")
    store.find("anchor")
    journal = wait_for_watcher(store)
    store.find("anchor")
    before = journal.size()
    folder = store.root / "memories" / "1999" / "12"
    folder.mkdir(parents=True)
    (folder / "old.md").write_text(
        "---\nid: 01jjjjjjjjjjjjjjjjjjjjjjjj\ntitle: Party\ntype: event\ntags: []\n"
        "created: 1999-12-31T23:59:59Z\n---\nmillennium celebration\n"
    )
    settle(journal, before)
    assert [h.title for h in store.find("millennium")] == ["Party"]
    before = journal.size()
    shutil.rmtree(store.root / "memories" / "1999")
    settle(journal, before)
    assert store.find("millennium") == []


def test_the_watcher_stops_and_searches_fall_back_to_the_scan(
    watched: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = watched
    memory = store.add("fallback beta")
    store.find("beta")
    wait_for_watcher(store)
    monkeypatch.setenv("MEM_WATCH", "0")
    home = store.git_dir / "memstore"
    # The add and the first find may each have started a watcher; on a busy machine the second
    # can take the lock only after the first is stopped, so stop until none is left.
    stop_all(home)
    assert watch.live_journal(home) is None
    path = store.root / memory.path
    path.write_text(path.read_text().replace("beta", "gamma"))
    assert [h.id for h in store.find("gamma")] == [memory.id]


def test_only_one_watcher_runs(watched: Store) -> None:
    store = watched
    store.add("one watcher")
    store.find("watcher")
    first = wait_for_watcher(store)
    home = store.git_dir / "memstore"
    holder = (home / watch.LOCK_FILE).read_text()
    running = watch.reap()
    watch.start(store.root)
    (second,) = watch.reap() - running
    # The second one must see the first one's lock and exit, leaving the first in place.
    deadline = time.monotonic() + 30
    while second in watch.reap():
        assert time.monotonic() < deadline, "a second watcher kept running beside the first"
        time.sleep(0.02)
    assert watch.live_journal(home) == first
    assert (home / watch.LOCK_FILE).read_text() == holder


def test_wanted_follows_size_and_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEM_WATCH")
    assert not watch.wanted(100) and watch.wanted(watch.AUTO_MIN_FILES)
    monkeypatch.setenv("MEM_WATCH", "0")
    assert not watch.wanted(10**6)
    monkeypatch.setenv("MEM_WATCH", "1")
    assert watch.wanted(1)


def test_journal_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b"memories/a.md\nmemories/b")
    journal = watch.Journal("g", path)
    lines, end = journal.read(0)
    assert lines == ["memories/a.md"] and end == len(b"memories/a.md\n")
    with open(path, "ab") as handle:
        handle.write(b".md\n")
    assert journal.read(end) == (["memories/b.md"], path.stat().st_size)


def test_a_burst_of_edits_is_all_seen_by_the_very_next_search(watched: Store) -> None:
    store = watched
    memories = [store.add(f"burst memory number {n} says before") for n in range(40)]
    store.find("burst")
    journal = wait_for_watcher(store)
    store.find("burst")
    state = store.index._load_state()
    assert state is not None and state.watch_generation == journal.generation
    # Pause the watcher so that the events wait in the kernel's queue, as on a busy machine, and
    # let it go on only after the search has started.
    pid = int((store.git_dir / "memstore" / watch.LOCK_FILE).read_text().split()[0])

    def go_on() -> None:
        with contextlib.suppress(ProcessLookupError):  # too slow to answer: killed and reaped
            os.kill(pid, signal.SIGCONT)

    searching = threading.Event()

    def go_on_once_the_search_waits() -> None:
        # The search's barrier file is the sign that it has started and waits for the watcher.
        for _ in range(1000):
            if searching.is_set() or list(memories_folder.glob(watch.BARRIER_PREFIX + "*")):
                break
            time.sleep(0.01)
        go_on()

    memories_folder = store.root / "memories"
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Thread(target=go_on_once_the_search_waits)
    try:
        for memory in memories:
            edit_in_place_keeping_an_old_mtime(
                store.root / memory.path, "says before", "says after"
            )
        resume.start()
        found = {h.id for h in store.find("after", limit=0)}
    finally:
        searching.set()
        if resume.is_alive():
            resume.join()  # no thread outlives the test
        go_on()
    assert found == {m.id for m in memories}
    assert not list((store.root / "memories").glob(".mem-barrier-*"))


def test_a_watcher_of_another_version_is_replaced(watched: Store) -> None:
    store = watched
    store.add("versioned watcher")
    store.find("versioned")
    journal = wait_for_watcher(store)
    home = store.git_dir / "memstore"
    ready = home / watch.READY_FILE
    ready.write_text(f"{journal.generation}\n")  # what a watcher of an older version writes
    assert watch.live_journal(home) is None  # not used, and stopped
    store.find("versioned")  # scans, and starts a watcher of this version
    assert wait_for_watcher(store, other_than=journal.generation).generation


def test_a_watcher_that_does_not_answer_is_replaced(watched: Store) -> None:
    store = watched
    store.add("silent watcher")
    store.find("silent")
    journal = wait_for_watcher(store)
    store.find("silent")
    home = store.git_dir / "memstore"
    pid = int((home / watch.LOCK_FILE).read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        assert [h.title for h in store.find("silent")] == ["silent watcher"]
        assert time.monotonic() - start < watch.BARRIER_WAIT + 5
    finally:
        with contextlib.suppress(ProcessLookupError):  # it was killed, as it should be
            os.kill(pid, signal.SIGCONT)
    assert wait_for_watcher(store, other_than=journal.generation).generation


def test_a_search_that_finds_no_change_leaves_the_index_state_alone(watched: Store) -> None:
    store = watched
    memory = store.add("the watcher sees alpha")
    store.find("alpha")
    wait_for_watcher(store)
    store.find("alpha")  # tied to the journal now
    state_file = store.git_dir / "memstore" / "state.json"
    written = state_file.stat().st_ino, state_file.read_bytes()
    # Each search leaves a barrier marker in the journal, and nothing else changed: the state
    # file (written durably, with an fsync) is not written again for that.
    for _ in range(3):
        assert [h.id for h in store.find("alpha")] == [memory.id]
    assert (state_file.stat().st_ino, state_file.read_bytes()) == written
    # A real change is still seen, and recorded.
    edit_in_place_keeping_an_old_mtime(store.root / memory.path, "alpha", "omega")
    assert [h.id for h in store.find("omega")] == [memory.id]
    assert state_file.read_bytes() != written[1]


def test_a_memstore_folder_where_mem_runs_does_not_stand_in_for_the_install(
    watched: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resident process runs this install's code, not a `memstore` package in the folder a
    command was run from (a source checkout, or a project with such a folder)."""
    project = tmp_path / "project"
    (project / "memstore").mkdir(parents=True)
    marker = tmp_path / "imported"
    (project / "memstore" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"
    )
    monkeypatch.chdir(project)
    watched.add("a memory to search")
    watched.find("memory")
    wait_for_watcher(watched)
    assert not marker.exists()
