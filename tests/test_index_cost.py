"""What catching up costs: it follows what changed, not the size of the store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from memstore.store import Store
from tests.conftest import Clock


def test_a_store_copied_with_cp_r_leaves_nothing_pending(
    store: Store, tmp_path: Path, clock: Clock
) -> None:
    added = [store.add(f"memory number {n} about copies") for n in range(6)]
    assert len(store.find("copies", limit=0)) == 6
    assert store.index.pending() == set()
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(store.root), str(copy)], check=True)  # every mtime is new
    copied = Store.open(copy, clock=clock)
    edited = copy / added[0].path
    edited.write_text(edited.read_text(encoding="utf-8") + "\nEdited in the copy.\n")
    assert len(copied.find("copies", limit=0)) == 6
    assert copied.index.pending() == {added[0].path}  # only the file that really changed
    state = json.loads((copied.git_dir / "memstore" / "state.json").read_text())
    assert state["pending"] == [added[0].path]
    assert copied.commit_pending() == [added[0].path]


def flag(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n---\n", "\nconflict: true\n---\n", 1), encoding="utf-8")


def test_conflicts_are_kept_by_the_index_as_files_change(store: Store) -> None:
    first = store.add("first memory in a conflict")
    second = store.add("second memory, fine")
    assert store.conflicts() == []
    state = store.git_dir / "memstore" / "state.json"
    assert json.loads(state.read_text())["conflicts"] == []  # kept in the index's state
    flag(store.root / first.path)
    assert store.conflicts() == [first.path]  # an edit in an editor, seen by catching up
    assert [hit.path for hit in store.find_conflicts()] == [first.path]
    assert store.status().conflicts == [first.path]
    assert json.loads(state.read_text())["conflicts"] == [first.path]
    store.resolve_conflict(first.id)  # a write through memstore
    assert store.conflicts() == []
    (store.root / second.path).unlink()
    flag(store.root / first.path)
    assert store.conflicts() == [first.path]


def test_an_index_that_never_noted_conflicts_learns_them_once(store: Store) -> None:
    memory = store.add("flagged before the index kept conflicts")
    flag(store.root / memory.path)
    store.commit_pending()
    path = store.git_dir / "memstore" / "state.json"
    state = json.loads(path.read_text())
    del state["conflicts"]  # what an index made by an earlier memstore holds
    path.write_text(json.dumps(state))
    assert store.conflicts() == [memory.path]
    assert json.loads(path.read_text())["conflicts"] == [memory.path]


def test_status_compares_only_what_the_index_saw_change(store: Store) -> None:
    kept = store.add("a memory left alone")
    edited = store.add("a memory edited in an editor")
    removed = store.add("a memory removed by hand")
    store.reindex()  # after a rebuild the index does not know what differs from HEAD
    state_file = store.git_dir / "memstore" / "state.json"
    assert json.loads(state_file.read_text())["pending_known"] is False
    assert store.status().pending == []
    assert json.loads(state_file.read_text())["pending_known"] is True  # git status, once
    path = store.root / edited.path
    path.write_text(path.read_text(encoding="utf-8") + "\nMore.\n", encoding="utf-8")
    (store.root / removed.path).unlink()
    new = store.root / "memories" / "2031" / "01" / "by-hand.md"
    new.parent.mkdir(parents=True)
    new.write_bytes((store.root / kept.path).read_bytes().replace(kept.id.encode(), b"x" * 26))
    expected = sorted([edited.path, removed.path, "memories/2031/01/by-hand.md"])
    assert store.status().pending == expected
    path.write_text(path.read_text(encoding="utf-8").replace("\nMore.\n", ""), encoding="utf-8")
    assert store.status().pending == sorted([removed.path, "memories/2031/01/by-hand.md"])
    store.commit_pending()
    assert store.status().pending == []
