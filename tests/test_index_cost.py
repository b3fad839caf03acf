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
