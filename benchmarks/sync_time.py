"""Time `mem sync` of one new memory against a local bare remote, on a large store.

    python benchmarks/sync_time.py [--count 10000] [--root /tmp/memsync-bench] [--repeat 10]

Generates a store with benchmarks/generate.py (reused when present), pushes it to a bare remote
next to it and clones it a second time. Then, `--repeat` times each:

- push: `mem add` one memory (not timed), then a timed `mem --store S sync` process: commit
  nothing, fetch (nothing new), push one commit;
- merge: one memory added in the other clone and synced there (not timed), one added here, then
  a timed `mem sync`: fetch one commit, merge (a merge commit), check out one file, push, and
  bring the index up to date.

Prints p50 and p95 in milliseconds of the whole `mem` process (Python start-up included).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


CPU: list[float] = []  # CPU time (user + system) of the last mem process, in ms


def mem(*args: str) -> float:
    """Run mem; return the wall time in ms (and note its CPU time in CPU)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "memstore", *args], capture_output=True, text=True
    )
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    if result.returncode != 0:
        raise SystemExit(f"mem {' '.join(args)} failed: {result.stderr}")
    return elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--root", type=Path, default=Path("/tmp/memsync-bench"))
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("MEM_AUTHOR", "sync bench <bench@example.invalid>")
    os.environ.setdefault("MEM_WATCH", "0")
    import pygit2

    store = args.root / f"s{args.count}"
    remote = args.root / f"s{args.count}-remote.git"
    other = args.root / f"s{args.count}-other"
    if not store.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "generate.py"),
                "--count",
                str(args.count),
                "--out",
                str(store),
            ],
            check=True,
        )
    if not remote.exists():
        pygit2.clone_repository(str(store), str(remote), bare=True)
        repo = pygit2.Repository(str(store))
        if "origin" not in [r.name for r in repo.remotes]:
            repo.remotes.create("origin", str(remote))
        mem("--store", str(store), "sync")  # builds the index; fetch, nothing to push
    if not other.exists():
        mem("clone", str(remote), str(other))
    mem("--store", str(store), "sync")
    mem("--store", str(other), "sync")

    push: list[float] = []
    merge: list[float] = []
    push_cpu: list[float] = []
    merge_cpu: list[float] = []
    for number in range(args.repeat):
        mem("--store", str(store), "add", f"sync timing memory {time.time_ns()} {number}")
        push.append(mem("--store", str(store), "sync"))
        push_cpu.append(CPU[-1])
    mem("--store", str(other), "sync")
    for number in range(args.repeat):
        mem("--store", str(other), "add", f"from the other clone {time.time_ns()} {number}")
        mem("--store", str(other), "sync")
        mem("--store", str(store), "add", f"from this clone {time.time_ns()} {number}")
        merge.append(mem("--store", str(store), "sync"))
        merge_cpu.append(CPU[-1])
    python = [mem("--help") for _ in range(5)]
    print(f"store: {args.count} memories ({store}); remote {remote}; {args.repeat} runs each")
    for label, values, cpu in (
        ("push one new memory", push, push_cpu),
        ("merge one in, push one out", merge, merge_cpu),
    ):
        print(
            f"mem sync, {label}: p50 {statistics.median(values):.0f} ms,"
            f" p95 {percentile(values, 0.95):.0f} ms, max {max(values):.0f} ms;"
            f" CPU time p50 {statistics.median(cpu):.0f} ms"
        )
    print(f"(mem --help, the start-up floor: p50 {statistics.median(python):.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
