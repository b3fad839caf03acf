"""Run many random sync scenarios: concurrent work on 3 replicas, random sync orders.

    python benchmarks/sync_scenarios.py [--count 1000] [--seed 0] [--size 8] [--root DIR]

Each scenario is the one the property test runs (tests/sync_scenario.py): a bare remote, three
stores, random adds, body line edits, title edits, tag adds and removes and deletions, a random
prefix of syncs, then two rounds in which everyone syncs (random order each round). After it, all
replicas must have the same tree, no added memory and no edit may be missing, and both sides of
every conflict must be in the memory. Prints how many ran and passed, and the seeds that failed
(rerun one with --seed SEED --count 1). Scenarios run in a tmpfs folder when /dev/shm exists.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sync_scenario import random_scenario, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scenario")
    parser.add_argument("--size", type=int, default=8, help="most operations per scenario")
    parser.add_argument("--root", type=Path, default=None, help="folder for the scenarios")
    args = parser.parse_args()
    os.environ.setdefault("MEM_AUTHOR", "sync bench <bench@example.invalid>")
    os.environ["MEM_WATCH"] = "0"
    root = args.root or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    passed, failed = 0, []
    started = time.monotonic()
    for seed in range(args.seed, args.seed + args.count):
        scenario = random_scenario(random.Random(seed), args.size)
        folder = Path(tempfile.mkdtemp(prefix="memsync-", dir=root))
        try:
            run(folder, scenario)
            passed += 1
        except Exception:
            failed.append(seed)
            print(f"seed {seed} failed: {scenario}", file=sys.stderr)
            traceback.print_exc()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        done = seed - args.seed + 1
        if done % 50 == 0:
            spent = time.monotonic() - started
            print(f"{done} scenarios, {passed} passed, {spent:.0f} s", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"scenarios run: {args.count}, passed: {passed}, failed: {len(failed)}"
        f" {failed[:20]}; {elapsed:.0f} s ({elapsed / max(args.count, 1):.2f} s each)"
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
