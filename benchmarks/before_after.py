"""Cold `mem` commands of two installations, alternated run by run on one store.

    python benchmarks/before_after.py --before OLD/bin/mem --after NEW/bin/mem --store S \
        [--runs 40] [--out FILE]

For a change that must not make commands slower (a refactor, a new dependency): install the two
versions into two virtual environments (a regular install, not editable), generate a store
(`generate.py --index`), and compare. Runs alternate before/after so that load from other
processes on the machine falls on both alike; the report gives p50 and p95 per command and the
after/before ratio. `mem add` runs write real commits to the store: use a scratch copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

COMMANDS = (
    ("find, rare word", ["find", "quokkaflux"]),
    ("find, two words", ["find", "connection pool"]),
    ("find, tag", ["find", "tag:postgres"]),
    ("find, question", ["find", "how did we fix the login timeout?"]),
    ("add", ["add", "a note added by the benchmark"]),
)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the `mem` of the old version")
    parser.add_argument("--after", required=True, help="the `mem` of the new version")
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "MEM_STORE": str(args.store.resolve()), "NO_COLOR": "1"}
    rows = []
    for label, words in COMMANDS:
        samples: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.warmup):
            for mem in (args.before, args.after):
                timed([mem, *words], env)
        for _ in range(args.runs):
            for name, mem in (("before", args.before), ("after", args.after)):
                samples[name].append(timed([mem, *words], env))
        b50, a50 = statistics.median(samples["before"]), statistics.median(samples["after"])
        b95, a95 = percentile(samples["before"], 0.95), percentile(samples["after"], 0.95)
        rows.append(
            f"| {label} | {b50:.0f} / {b95:.0f} | {a50:.0f} / {a95:.0f} | {a50 / b50:.2f} |"
        )
        print(rows[-1], flush=True)
    report = "\n".join(
        [
            f"Cold commands on {args.store.name}, {args.runs} alternated runs each, ms (p50 / p95)",
            "",
            "| command | before | after | after / before (p50) |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
