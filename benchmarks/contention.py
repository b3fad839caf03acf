"""Replicas syncing at once through one git smart-HTTP server: do they converge, with no edit lost?

    python benchmarks/contention.py [--replicas 8] [--rounds 5] [--root /tmp/mem-contention]

Starts git's smart HTTP (`git http-backend` behind basic authentication, tests/servers.py) on
localhost with one bare repository, and clones it into `--replicas` stores. Each replica runs in
its own process and, `--rounds` times at once with the others: adds two memories (one only it
will remove later, one everyone may edit), appends a line of its own to a shared memory of
another replica, adds a tag to one, removes one of its own earlier memories, and runs `mem sync`
(`Store.sync`). A sync whose push is rejected because the server moved retries by itself, after a
random backoff (for up to `memstore.sync.RETRY_SECONDS`); a sync that still fails is counted and
left to the next round. Then every replica syncs
twice more in turn, and the script checks that:

- all replicas hold the same commit and identical files;
- every line appended and every tag added is there, every memory added and not removed is there,
  every removed memory is gone; no memory is flagged with a conflict (appends merge cleanly).

Prints rounds, syncs, retries (extra push attempts), failed syncs and the wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import HttpGitServer, bare_repository  # noqa: E402

TOKEN = "contention-token"


def replica(args: tuple[int, str, int, int, str]) -> dict[str, Any]:
    """One replica's rounds; returns what it did, for the checks."""
    number, root, rounds, replicas, url = args
    from memstore.errors import SyncError
    from memstore.store import Store

    os.environ.update(MEM_GIT_TOKEN=TOKEN, MEM_GIT_USERNAME="bench", MEM_WATCH="0")
    store = Store(Path(root) / f"r{number}")
    rng = random.Random(number)
    done: dict[str, Any] = {
        "appended": [],  # (memory id, line)
        "tagged": [],  # (memory id, tag)
        "kept": [],  # ids of memories added and not removed
        "removed": [],
        "syncs": 0,
        "attempts": 0,
        "failed": 0,
        "errors": [],
        "sync_seconds": 0.0,
        "longest": 0.0,  # the slowest sync, in seconds
        "most": 0,  # the most tries one successful sync took
    }
    private: list[str] = []
    for round_ in range(rounds):
        mine = store.add(f"private note {number}.{round_}", title=f"Private {number}.{round_}")
        shared = store.add(
            f"shared note {number}.{round_}\nfirst line", title=f"Shared {number}.{round_}"
        )
        private.append(mine.id)
        done["kept"] += [mine.id, shared.id]
        others = [m for m in store.list() if m.title.startswith("Shared ")]
        if others:
            target = rng.choice(others)
            line = f"appended by {number} in round {round_}"
            memory = store.get(target.id)
            store.update(target.id, body=memory.body.rstrip("\n") + f"\n{line}\n")
            done["appended"].append((target.id, line))
            tagged = rng.choice(others)
            tag = f"r{number}-round{round_}"
            store.update(tagged.id, tags=sorted({*store.get(tagged.id).tags, tag}))
            done["tagged"].append((tagged.id, tag))
        if round_ >= 1 and len(private) > 1:
            gone = private.pop(0)
            store.remove(gone)
            done["removed"].append(gone)
            done["kept"].remove(gone)
        started = time.perf_counter()
        try:
            result = store.sync()
            done["attempts"] += result.attempts
            done["most"] = max(done["most"], result.attempts)
        except SyncError as error:
            done["failed"] += 1
            done["errors"].append(str(error))
        done["syncs"] += 1
        took = time.perf_counter() - started
        done["sync_seconds"] += took
        done["longest"] = max(done["longest"], took)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", type=Path, default=Path("/tmp/mem-contention"))
    options = parser.parse_args()
    shutil.rmtree(options.root, ignore_errors=True)
    options.root.mkdir(parents=True)
    os.environ.update(MEM_GIT_TOKEN=TOKEN, MEM_GIT_USERNAME="bench", MEM_WATCH="0")
    os.environ.setdefault("MEM_AUTHOR", "Bench <bench@example.com>")
    server = HttpGitServer(options.root / "server", {"bench": TOKEN})
    (options.root / "server").mkdir()
    bare_repository(options.root / "server" / "memories.git")
    server.start()
    url = server.url("memories.git")
    from memstore.store import Store
    from memstore.sync import RETRY_SECONDS

    first = Store.init(options.root / "r0", remote=url)
    first.sync()
    for number in range(1, options.replicas):
        Store.clone(url, options.root / f"r{number}")
    started = time.perf_counter()
    jobs = [
        (n, str(options.root), options.rounds, options.replicas, url)
        for n in range(options.replicas)
    ]
    with multiprocessing.get_context("spawn").Pool(options.replicas) as pool:
        results = pool.map(replica, jobs)
    concurrent = time.perf_counter() - started
    stores = [Store(options.root / f"r{n}") for n in range(options.replicas)]
    settle = 0
    for _ in range(2):
        for store in stores:
            store.sync()
            settle += 1
    elapsed = time.perf_counter() - started
    heads = {str(Store(s.root).repo.head.target) for s in stores}
    files = [
        {
            p.relative_to(s.root).as_posix(): p.read_bytes()
            for p in (s.root / "memories").rglob("*.md")
        }
        for s in stores
    ]
    problems = []
    if len(heads) != 1:
        problems.append(f"{len(heads)} different heads")
    if any(f != files[0] for f in files):
        problems.append("the replicas' files differ")
    final = Store(stores[0].root)
    present = {m.id: m for m in final.list()}
    for result in results:
        for memory_id, line in result["appended"]:
            if memory_id in present and line not in final.get(memory_id).body:
                problems.append(f"lost the line {line!r} of {memory_id}")
        for memory_id, tag in result["tagged"]:
            if memory_id in present and tag not in present[memory_id].tags:
                problems.append(f"lost the tag {tag} of {memory_id}")
        problems += [f"lost {i}" for i in result["kept"] if i not in present]
        problems += [f"{i} came back" for i in result["removed"] if i in present]
    flagged = final.conflicts()
    if flagged:
        problems.append(f"{len(flagged)} memories flagged with a conflict")
    syncs = sum(r["syncs"] for r in results)
    attempts = sum(r["attempts"] for r in results)
    failed = sum(r["failed"] for r in results)
    print(f"server: git http-backend over http://127.0.0.1 ({server.requests} requests)")
    print(
        f"replicas: {options.replicas}, rounds: {options.rounds},"
        f" memories at the end: {len(present)}"
    )
    print(
        f"concurrent syncs: {syncs}, push attempts: {attempts}"
        f" ({attempts - (syncs - failed)} retries"
        f" after a rejected push), syncs that gave up after {RETRY_SECONDS:.0f} s: {failed}"
    )
    mean = sum(r["sync_seconds"] for r in results) / max(syncs, 1)
    print(
        f"mean sync: {mean:.2f} s, slowest: {max(r['longest'] for r in results):.1f} s,"
        f" most tries: {max(r['most'] for r in results)}; concurrent part: {concurrent:.1f} s;"
        f" settling syncs: {settle}; total: {elapsed:.1f} s"
    )
    for message in sorted({e for r in results for e in r["errors"]}):
        print(f"  a sync failed: {message}")
    print(
        "converged, nothing lost" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems[:20])
    )
    server.stop()
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
