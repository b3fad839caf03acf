"""Time `mem find` for keyword queries and questions on a generated store.

    python benchmarks/find_speed.py STORE [--repeat 20] [--cold 10]

STORE is a store made by generate.py (its queries use the generator's vocabulary). For each
query: `Store.find` in this process (catch-up, query and snippets; p50 / p95 of --repeat runs
after one warm-up) and a new `python -m memstore find` process (p50 of --cold runs). To compare
two versions of the code, run it once with each on the PYTHONPATH, each on its own copy of the
store (an index format change rebuilds the index on the first search).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from memstore.store import Store

QUERIES = (
    ("keywords", "deploy staging"),
    ("keywords", "connection postgres"),
    ("keywords", "restart logs"),
    ("keywords", '"connection pool"'),
    ("keywords", "tag:rabbitmq"),
    ("keywords", "ERR_CONNECTION_REFUSED"),
    ("keywords", "fennelgate"),
    ("question", "how did we fix the connection pool errors on staging?"),
    ("question", "what did we decide about the postgres restart last week?"),
    ("question", "why does the deploy to staging fail with a timeout"),
)


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main(argv: list[str] | None = None) -> int:
    """Print one Markdown row per query."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cold", type=int, default=10)
    args = parser.parse_args(argv)

    store = Store(args.store)
    store.find("warmup")
    # The processes cache their bytecode, as an installed package has it: otherwise each would
    # compile memstore again (about 50 ms), which no user pays.
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    print("| query | kind | hits | `Store.find` p50 / p95 (ms) | cold `mem find` p50 (ms) |")
    print("|---|---|---:|---:|---:|")
    for kind, query in QUERIES:
        hits = store.find(query)
        warm = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            store.find(query)
            warm.append(1000 * (time.perf_counter() - started))
        cold = []
        for _ in range(args.cold):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "memstore", "find", query],
                cwd=args.store,
                capture_output=True,
                check=True,
                env=child_env,
            )
            cold.append(1000 * (time.perf_counter() - started))
        cold_text = f"{statistics.median(cold):.1f}" if cold else "-"
        print(
            f"| `{query}` | {kind} | {len(hits)} | {statistics.median(warm):.1f} /"
            f" {percentile(warm, 0.95):.1f} | {cold_text} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
