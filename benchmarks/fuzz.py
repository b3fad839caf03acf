"""Run the property and fuzz tests with 10,000 cases each and report how many ran.

    python benchmarks/fuzz.py [--profile thorough] [-k EXPRESSION]

The tests live in tests/test_properties.py; the `thorough` hypothesis profile (tests/conftest.py)
gives each 10,000 examples instead of CI's 60. This runs them under pytest with hypothesis's
statistics and prints, per test, the examples that passed, failed and were discarded, then the
pytest outcome. It exits with pytest's status.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thorough")
    parser.add_argument("-k", dest="expression", default=None, help="pytest -k expression")
    options = parser.parse_args(argv)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:warnings",
        "--hypothesis-show-statistics",
        "tests/test_properties.py",
    ]
    if options.expression:
        command += ["-k", options.expression]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HYPOTHESIS_PROFILE": options.profile},
    )
    elapsed = time.perf_counter() - started
    tallies: dict[str, list[int]] = {}
    current = ""
    for line in result.stdout.splitlines():
        name = re.search(r"tests/test_properties\.py::(\w+)", line)
        if name:
            current = name.group(1)
        counts = re.search(
            r"- (\d+) passing examples, (\d+) failing examples, (\d+) invalid examples", line
        )
        if counts and current:  # one line per phase (reuse, generate, shrink): add them up
            tally = tallies.setdefault(current, [0, 0, 0])
            for position, number in enumerate(counts.groups()):
                tally[position] += int(number)
    for test, (passed, failed, invalid) in tallies.items():
        print(f"{test}: {passed} passed, {failed} failed, {invalid} discarded")
    total = sum(tally[0] for tally in tallies.values())
    tail = result.stdout.strip().splitlines()[-1:] or [result.stderr.strip()]
    print(f"{total} cases passed in all, {elapsed:.0f} s; pytest: {tail[0]}")
    if result.returncode != 0:
        print(result.stdout[-5000:])
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
