"""Property: random concurrent work on 3 replicas, synced in any order, converges losing nothing.

Kept small here (each example makes a remote and three stores); benchmarks/sync_scenarios.py
runs a thousand of the same scenarios.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sync_scenario import (
    BASE_TAGS,
    LINES,
    MEMORIES,
    NEW_TAGS,
    REPLICAS,
    Op,
    Scenario,
    run,
)

replica = st.integers(0, REPLICAS - 1)
memory = st.integers(0, MEMORIES - 1)


@st.composite
def operation(draw: st.DrawFn) -> Op:
    kind = draw(st.sampled_from(["add", "line", "title", "tag_add", "tag_remove", "delete"]))
    value = {
        "tag_add": st.sampled_from(NEW_TAGS),
        "tag_remove": st.sampled_from(BASE_TAGS),
    }.get(kind, st.integers(0, 10**6).map(str))
    return Op(draw(replica), kind, draw(memory), draw(st.integers(0, LINES - 1)), draw(value))


@st.composite
def scenario(draw: st.DrawFn) -> Scenario:
    ops: list[Op] = []
    seen: set[tuple[int, str, int, int]] = set()
    for number, op in enumerate(draw(st.lists(operation(), min_size=1, max_size=7))):
        key = (op.replica, op.kind, op.memory, op.line if op.kind == "line" else 0)
        if op.kind in ("line", "title") and key in seen:
            continue  # a second edit of the same line by the same replica replaces the first
        seen.add(key)
        value = op.value if op.kind.startswith("tag") else f"r{op.replica}-{op.kind}-{number}"
        ops.append(Op(op.replica, op.kind, op.memory, op.line, value))
    syncs = draw(st.lists(replica, max_size=4))
    rounds = [draw(st.permutations(range(REPLICAS))) for _ in range(2)]
    return Scenario(ops, syncs, [list(r) for r in rounds])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_any_sync_order_converges_and_loses_nothing(case: Scenario) -> None:
    with tempfile.TemporaryDirectory(prefix="memsync-") as folder:
        run(Path(folder), case)
