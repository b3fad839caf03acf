"""Random concurrent work on several replicas of one store, synced in a random order.

Shared by the property test (tests/test_sync_property.py, driven by hypothesis) and the benchmark
(benchmarks/sync_scenarios.py, driven by a seeded random source). A scenario: a first replica makes
a store with a few memories and pushes it to a bare remote; the others clone it; every replica
then works on its own (adds, edits body lines in the file as an editor would, edits titles, adds
and removes tags, deletes); then replicas sync in a random order, then everyone syncs twice (in a
random order each round). `check` says what must hold afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pygit2

from memstore import gitrepo
from memstore.memory import parse
from memstore.merge import has_conflict
from memstore.report import CollectingReporter
from memstore.store import Store

REPLICAS = 3
MEMORIES = 3
LINES = 5
BASE_TAGS = ("alpha", "beta")
NEW_TAGS = ("gamma", "delta")


@dataclass(frozen=True)
class Op:
    """One operation on one replica: kind, the memory (index) and an argument."""

    replica: int
    kind: str  # add, line, title, tag_add, tag_remove, delete
    memory: int = 0
    line: int = 0
    value: str = ""


@dataclass
class Scenario:
    ops: list[Op]
    syncs: list[int]  # replicas syncing before the final rounds
    rounds: list[list[int]] = field(default_factory=list)  # two permutations of the replicas


class TickClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def body_lines(memory: int) -> list[str]:
    return [f"memory {memory} original line {n}" for n in range(LINES)]


def setup(root: Path) -> tuple[list[Store], list[str]]:
    """A bare remote and REPLICAS stores synced with it; returns them and the memory ids."""
    remote = root / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")
    clock = TickClock()
    first = Store.init(root / "r0", remote=str(remote), clock=clock, reporter=CollectingReporter())
    ids = [
        first.add("\n".join(body_lines(n)), title=f"Memory {n}", tags=list(BASE_TAGS)).id
        for n in range(MEMORIES)
    ]
    first.sync()
    stores = [first]
    for number in range(1, REPLICAS):
        stores.append(
            Store.clone(
                str(remote), root / f"r{number}", clock=clock, reporter=CollectingReporter()
            )
        )
    return stores, ids


def apply(stores: list[Store], ids: list[str], ops: list[Op]) -> dict[str, list[str]]:
    """Run the operations; returns the ids added per replica (as 'added')."""
    deleted: set[tuple[int, int]] = set()
    added: list[str] = []
    for op in ops:
        store = stores[op.replica]
        if op.kind == "add":
            added.append(store.add(f"added {op.value}\nsecond line {op.value}").id)
            continue
        if (op.replica, op.memory) in deleted:
            continue
        memory = store.get(ids[op.memory])
        if op.kind == "line":
            lines = memory.body.splitlines()
            lines[op.line] = op.value
            data = memory.raw or b""
            text = data.decode()
            new = text[: len(text) - len(memory.body)] + "\n".join(lines) + "\n"
            (store.root / memory.path).write_text(new)  # as an editor would
        elif op.kind == "title":
            store.update(ids[op.memory], title=op.value)
        elif op.kind == "tag_add":
            store.update(ids[op.memory], tags=[*memory.tags, op.value])
        elif op.kind == "tag_remove":
            store.update(ids[op.memory], tags=[t for t in memory.tags if t != op.value])
        elif op.kind == "delete":
            store.remove(ids[op.memory])
            deleted.add((op.replica, op.memory))
    return {"added": added}


def run(root: Path, scenario: Scenario) -> None:
    """Set up, apply, sync, and check everything that must hold."""
    stores, ids = setup(root)
    outcome = apply(stores, ids, scenario.ops)
    for replica in scenario.syncs:
        stores[replica].sync()
    for round_ in scenario.rounds:
        for replica in round_:
            stores[replica].sync()
    check(stores, ids, scenario.ops, outcome["added"])


def effective(ops: list[Op]) -> list[Op]:
    """The operations that took effect: none on a memory after its replica deleted it."""
    deleted: set[tuple[int, int]] = set()
    kept: list[Op] = []
    for op in ops:
        if op.kind != "add" and (op.replica, op.memory) in deleted:
            continue
        if op.kind == "delete":
            deleted.add((op.replica, op.memory))
        kept.append(op)
    return kept


def check(stores: list[Store], ids: list[str], ops: list[Op], added: list[str]) -> None:
    ops = effective(ops)
    trees = set()
    for store in stores:
        repo = store.repo
        assert repo.state() == pygit2.enums.RepositoryState.NONE
        assert not repo.head_is_detached
        assert gitrepo.pending_changes(repo, "memories") == {}, store.root
        trees.add(str(repo.head.peel(pygit2.Commit).tree_id))
    assert len(trees) == 1, "replicas differ after everyone synced twice"
    store = stores[0]
    files = {}
    for path in (store.root / "memories").rglob("*.md"):
        data = path.read_bytes()
        memory = parse(data, path.name)  # every file is a valid memory
        assert b"<<<<<<<" not in data and b">>>>>>>" not in data
        files.setdefault(memory.id, []).append((data, memory))
    for memory_id in added:
        assert memory_id in files, f"added memory {memory_id} lost"
    for number, memory_id in enumerate(ids):
        mine = [op for op in ops if op.kind != "add" and op.memory == number]
        deletes = [op for op in mine if op.kind == "delete"]
        # A replica's own edits before it deleted the memory are gone with it.
        deleters = {op.replica for op in deletes}
        edits = [op for op in mine if op.kind != "delete" and op.replica not in deleters]
        if deletes and not edits:
            assert memory_id not in files, f"memory {number} deleted everywhere but present"
            continue
        assert memory_id in files, f"memory {number} lost"
        assert len(files[memory_id]) == 1
        data, memory = files[memory_id][0]
        text = data.decode()
        for op in edits:
            if op.kind in ("line", "title"):
                assert op.value in text, f"edit {op} lost"
        tags = set(BASE_TAGS)
        tags -= {op.value for op in edits if op.kind == "tag_remove"}
        tags |= {op.value for op in edits if op.kind == "tag_add"}
        assert set(memory.tags) == tags, (memory.tags, tags)
        clashes = _clashes(edits)
        if clashes:
            assert has_conflict(data), f"memory {number}: a conflict that is not flagged"


def _clashes(edits: list[Op]) -> bool:
    """Whether two replicas changed the same line, or the title, differently."""
    seen: dict[tuple[str, int], set[int]] = {}
    for op in edits:
        if op.kind in ("line", "title"):
            key = (op.kind, op.line if op.kind == "line" else 0)
            seen.setdefault(key, set()).add(op.replica)
    return any(len(replicas) > 1 for replicas in seen.values())


def random_scenario(rng: object, size: int = 8) -> Scenario:
    """A scenario from a random.Random, for the benchmark."""
    import random

    assert isinstance(rng, random.Random)
    ops: list[Op] = []
    used: set[tuple[int, str, int, int]] = set()
    for counter in range(rng.randint(1, size)):
        replica = rng.randrange(REPLICAS)
        kind = rng.choice(["add", "line", "line", "title", "tag_add", "tag_remove", "delete"])
        memory = rng.randrange(MEMORIES)
        line = rng.randrange(LINES)
        value = f"r{replica}-{kind}-{counter}"
        if kind == "tag_add":
            value = rng.choice(NEW_TAGS)
        elif kind == "tag_remove":
            value = rng.choice(BASE_TAGS)
        key = (replica, kind, memory, line if kind == "line" else 0)
        if kind in ("line", "title") and key in used:
            continue  # one edit per replica and line: a second would overwrite the first
        used.add(key)
        ops.append(Op(replica, kind, memory, line, value))
    syncs = [rng.randrange(REPLICAS) for _ in range(rng.randint(0, 4))]
    rounds = []
    for _ in range(2):
        order = list(range(REPLICAS))
        rng.shuffle(order)
        rounds.append(order)
    return Scenario(ops, syncs, rounds)
