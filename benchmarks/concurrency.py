"""Several processes adding memories to one store at once; none may be lost.

    python benchmarks/concurrency.py [--writers 4] [--adds 100] [--out /tmp/membench/concurrent]

Each writer is a shell-like loop of real `mem add` processes, one after the other, all writers
at the same time on one store; meanwhile a reader runs `mem find` over and over. The writers
queue on the store's write lock (`MEM_LOCK_TIMEOUT`, raised here so that no writer gives up).
Afterwards it checks: every `mem add` succeeded, the store has writers × adds memories and as
many commits (plus the one that created the store), `mem find` finds each of them by its own
word, `mem check` and `mem doctor` report no problem, and every `mem find` made during the
writes answered. The test suite runs the same function smaller (tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """What happened in one concurrent run."""

    writers: int
    adds: int
    failed_adds: list[str] = field(default_factory=list)
    memories: int = 0
    commits: int = 0
    not_found: list[str] = field(default_factory=list)
    finds: int = 0
    failed_finds: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _mem(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memstore", "--store", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MEM_LOCK_TIMEOUT": os.environ.get("MEM_LOCK_TIMEOUT", "600")},
    )


def word(writer: int, number: int) -> str:
    """The unique word of one memory: letters only, so the analyzer keeps it whole."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"conc{letters[writer % 26]}{letters[number // 26 % 26]}{letters[number % 26]}word"


def run(root: Path, writers: int, adds: int) -> Outcome:
    """Create a store at root and hammer it; return what was found."""
    from memstore.store import Store

    if root.exists():
        shutil.rmtree(root)
    Store.init(root)
    outcome = Outcome(writers, adds)
    done = threading.Event()
    lock = threading.Lock()

    def writer(number: int) -> None:
        for item in range(adds):
            result = _mem(root, "add", f"writer {number} item {item} {word(number, item)}")
            if result.returncode != 0:
                with lock:
                    outcome.failed_adds.append(f"{number}/{item}: {result.stderr.strip()}")

    def reader() -> None:
        while not done.is_set():
            result = _mem(root, "find", "writer", timeout=60)
            with lock:
                outcome.finds += 1
                if result.returncode != 0:
                    outcome.failed_finds.append(result.stderr.strip())

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    watcher = threading.Thread(target=reader)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    outcome.seconds = time.perf_counter() - started

    store = Store.open(root)
    outcome.memories = len(store.list())
    outcome.commits = len(store.log())
    for number in range(writers):
        for item in range(adds):
            if not store.find(word(number, item)):
                outcome.not_found.append(word(number, item))
    checked = _mem(root, "check")
    if checked.returncode != 0:
        outcome.problems.append(f"mem check: {checked.stdout.strip()[:300]}")
    doctor = _mem(root, "doctor", "--json")
    if doctor.returncode != 0:
        outcome.problems.append(f"mem doctor: {doctor.stdout.strip()[:500]}")
    expected = writers * adds
    if outcome.memories != expected:
        outcome.problems.append(f"{outcome.memories} memories, expected {expected}")
    if outcome.commits != expected + 1:
        outcome.problems.append(f"{outcome.commits} commits, expected {expected + 1}")
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--adds", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("/tmp/membench/concurrent"))
    options = parser.parse_args(argv)
    os.environ.setdefault("MEM_AUTHOR", "concurrency <concurrency@example.invalid>")
    outcome = run(options.out, options.writers, options.adds)
    print(json.dumps(outcome.__dict__, indent=1))
    broken = outcome.failed_adds or outcome.not_found or outcome.failed_finds or outcome.problems
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
