"""Time `mem find --as-of` on a generated store: the first search at a point in history (which
builds that commit's index) and repeated ones, against a normal search, side by side.

    python benchmarks/asof.py STORE [--edits 200] [--repeat 20] [--base REV]

STORE is a store made by generate.py. The script first adds history on top of it (--edits
commits, each editing, removing or adding one memory, through `Store`), so it changes STORE:
run it on a copy. The point searched is the generated commit, so the as-of index differs from
the current one by what those commits changed. It prints that commit: pass it as --base to run
again on the same store without adding more history (to compare two versions of memstore).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memstore import history
from memstore.store import Store

QUERIES = ("deploy staging", "connection postgres", "restart logs", "tag:rabbitmq")


def make_history(store: Store, edits: int, seed: int = 7) -> str:
    """Commit edits, removals and additions on top of HEAD; return the commit before them."""
    rng = random.Random(seed)
    base = str(store.repo.head.target)
    listed = store.list(limit=0)
    for number in range(edits):
        item = listed[rng.randrange(len(listed))]
        kind = number % 4
        try:
            if kind == 3:
                store.remove(item.id)
                listed.remove(item)
            elif kind == 2:
                store.add(f"note {number}: restart the staging deploy after the postgres upgrade")
            else:
                store.update(item.id, body=f"Edited {number}: connection pool restart logs")
        except Exception:  # a memory removed earlier in the run
            continue
    return base


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def timed_cpu(action: object) -> tuple[float, float]:
    """Wall-clock and processor time: on a loaded machine the second says more."""
    started, cpu = time.perf_counter(), time.process_time()
    action()  # type: ignore[operator]
    return time.perf_counter() - started, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--base", help="the commit to search at; the history is not made again")
    args = parser.parse_args(argv)
    moment = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]

    def clock() -> datetime:
        moment[0] += timedelta(seconds=1)
        return moment[0]

    store = Store(args.store, clock=clock)
    if args.base:
        base = args.base
    else:
        started = time.perf_counter()
        base = make_history(store, args.edits)
        print(f"history: {args.edits} commits in {time.perf_counter() - started:.1f} s")
    print(f"searching at {base}")
    cache = store.index.home / history.CACHE_DIR
    assert store.repo is not None  # pygit2 loaded before the first timing, not inside it
    for query in QUERIES:
        shutil.rmtree(cache, ignore_errors=True)
        store.find(query)  # warm the normal index
        first, first_cpu = timed_cpu(lambda q=query: store.find(q, as_of=base))
        normal = [timed(lambda q=query: store.find(q)) for _ in range(args.repeat)]
        again = [timed(lambda q=query: store.find(q, as_of=base)) for _ in range(args.repeat)]
        n50, a50 = statistics.median(normal), statistics.median(again)
        print(
            f"{query!r}: first --as-of {first * 1000:.0f} ms (cpu {first_cpu * 1000:.0f} ms);"
            f" repeated --as-of p50 {a50 * 1000:.1f} ms vs normal p50 {n50 * 1000:.1f} ms"
            f" ({a50 / n50:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
