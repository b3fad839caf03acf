"""A full rebuild shared with a second process: the same index as one process makes, and safe
when either process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memstore.memory import new_memory
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import Clock

QUERIES = [
    "nginx",
    "deploy cache",
    "how did we fix the cache?",
    '"retry the deploy"',
    "tag:web",
    "type:decision",
    "fooBar",
    "src/app.py",
    "東京",
    "café OR naïve",
    "deploy NOT nginx",
    "created:2026",
]
TOPICS = ["nginx cache", "deploy retry", "fooBar in src/app.py", "東京 café", "naïve tests"]


def _fill(store: Store, clock: Clock, count: int = 40) -> None:
    store.add_many(
        new_memory(
            f"Note {n} about {TOPICS[n % 5]}; retry the deploy {'again ' * (n % 4)}"
            f"and {TOPICS[(n * 3) % 5]}.",
            now=clock(),
            title=f"{TOPICS[n % 5].title()} {n}",
            tags=[["web"], ["ops", "db"], []][n % 3],
            type=["note", "decision"][n % 2],
        )
        for n in range(count)
    )
    folder = store.root / "memories" / "2026" / "11"
    # Files the index notes rather than indexes, in the last chunk (the second process's).
    (folder / "zz-malformed.md").write_text("---\nid: [not closed\n---\nbody\n")
    flagged = sorted(folder.glob("*.md"))[-2]
    flagged.write_text(flagged.read_text().replace("---\n", "---\nconflict: true\n", 1))


def _results(store: Store) -> list[list[tuple[str, float, str]]]:
    return [
        [(hit.id, round(hit.score, 6), hit.snippet) for hit in store.find(query, limit=20)]
        for query in QUERIES
    ]


def _rebuild(store: Store, monkeypatch: pytest.MonkeyPatch, processes: int) -> None:
    monkeypatch.setenv("MEM_REINDEX_PROCESSES", str(processes))
    store.reindex()
    assert store.index.processes == processes


def _state(store: Store) -> dict[str, object]:
    return json.loads((store.git_dir / "memstore" / "state.json").read_text())


def test_two_processes_find_what_one_finds(
    store: Store, clock: Clock, reporter: CollectingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store, clock)
    _rebuild(store, monkeypatch, 1)
    one, one_state = _results(store), _state(store)
    _rebuild(store, monkeypatch, 2)
    two, two_state = _results(store), _state(store)
    assert not [warning for warning in reporter.warnings if "second" in warning]
    assert all(one) and two == one
    # What the second process noted of its files is kept as the first notes it.
    assert two_state["skipped"] == one_state["skipped"] and two_state["skipped"]
    assert two_state["conflicts"] == one_state["conflicts"] and two_state["conflicts"]
    folder = store.git_dir / "memstore" / str(two_state["directory"])
    assert len(list(folder.glob("*.trm"))) == 2  # one segment from each process
    assert [path.name for path in folder.iterdir() if path.is_dir()] == []
    assert [finding for finding in store.doctor() if finding.area == "index"] == []


def test_a_second_process_that_cannot_start_leaves_the_work_to_the_first(
    store: Store, clock: Clock, reporter: CollectingReporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store, clock)
    _rebuild(store, monkeypatch, 1)
    expected = _results(store)
    monkeypatch.setenv("PYTHONHOME", str(store.root / "no-python-here"))
    _rebuild(store, monkeypatch, 2)
    assert _results(store) == expected
    assert any("the second indexing process stopped" in w for w in reporter.warnings)


def _child_of(pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                return int(entry.name)
    return None


def _gone(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_killed_mid_way_the_old_index_stays(store: Store, clock: Clock) -> None:
    _fill(store, clock)
    store.reindex()
    before = _state(store)["directory"]
    expected = _results(store)
    main = subprocess.Popen(
        [sys.executable, "-m", "memstore", "--store", str(store.root), "reindex"],
        env={**os.environ, "MEM_REINDEX_PROCESSES": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        helper = None
        while helper is None and main.poll() is None and time.monotonic() < deadline:
            helper = _child_of(main.pid)
        assert helper is not None, "the rebuild started no second process"
        # Held still, the second process keeps the rebuild from finishing: then the first dies.
        os.kill(helper, signal.SIGSTOP)
        main.kill()
        main.wait()
        os.kill(helper, signal.SIGCONT)
        while not _gone(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(helper), "the second process outlived the first"
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
    # The old index is still the one in use, whole; the half-built folder is never used.
    assert _state(store)["directory"] == before
    reopened = Store.open(store.root)
    assert _results(reopened) == expected
    assert len(list((store.git_dir / "memstore").glob("ix-*"))) == 2
    reopened.reindex()  # and the next rebuild clears it away
    assert [path.name for path in (store.git_dir / "memstore").glob("ix-*")] == [
        _state(store)["directory"]
    ]


def test_encrypted_memories_are_rebuilt_by_this_process_alone(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.key_init()
    store.add("a secret about the nginx cache", encrypt=True)
    store.add("a plain note about the nginx cache")
    monkeypatch.setenv("MEM_REINDEX_PROCESSES", "2")
    store.reindex()
    assert store.index.processes == 1
    assert len(store.find("nginx cache")) == 2
