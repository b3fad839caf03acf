"""What the duplicate check costs `mem add`: cold processes with and without it, and alone.

    python benchmarks/generate.py --count 10000 --out /tmp/membench/s10k --index
    python benchmarks/duplicate_check.py /tmp/membench/s10k [--repeat 12]

Each round adds three memories (so the store grows by 3 × (repeat + 1)): one with `mem add`
(the CLI, which checks for duplicates), and two with `Store.add` in a new Python process, with
`check_duplicates` on and off; the first round is a warm-up. Then `Store.duplicates` is timed in
one process. Times are p50 / p90 in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
ADD = (
    "import sys; from pathlib import Path; from memstore.store import Store; "
    "Store(Path(sys.argv[1])).add(sys.argv[2], check_duplicates=sys.argv[3] == '1')"
)


def text(number: int, tag: str) -> str:
    return (
        f"{tag} note {number}: the {WORDS[number % 9]} deploy of the billing service needs a"
        f" retry policy and {WORDS[(number * 7) % 9]} checks"
    )


def timed_run(args: list[str]) -> float:
    start = time.perf_counter()
    # Without PYTHONDONTWRITEBYTECODE: an installed package's bytecode is cached.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode:
        raise SystemExit(done.stderr)
    return elapsed


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):.0f} / {ordered[int(0.9 * len(ordered))]:.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeat", type=int, default=12)
    args = parser.parse_args(argv)
    store = str(args.store)
    cli: list[float] = []
    checked: list[float] = []
    unchecked: list[float] = []
    for number in range(args.repeat + 1):
        a = timed_run(
            [sys.executable, "-m", "memstore", "--store", store, "add", text(number, "cli")]
        )
        b = timed_run([sys.executable, "-c", ADD, store, text(number, "check-on"), "1"])
        c = timed_run([sys.executable, "-c", ADD, store, text(number, "check-off"), "0"])
        if number:
            cli.append(a)
            checked.append(b)
            unchecked.append(c)
    print(f"mem add, cold process:                        {summary(cli)}")
    print(f"Store.add, cold process, duplicate check on:  {summary(checked)}")
    print(f"Store.add, cold process, duplicate check off: {summary(unchecked)}")
    from memstore.store import Store

    opened = Store(args.store)
    alone = []
    for number in range(35):
        start = time.perf_counter()
        opened.duplicates(text(number + 1000, "probe"))
        alone.append((time.perf_counter() - start) * 1000)
    print(f"Store.duplicates in process, warm (n=30):      {summary(alone[5:])}")


if __name__ == "__main__":
    main()
