"""Import rate: a JSONL file of synthetic memories imported into a fresh store, phase by phase.

    python benchmarks/import_rate.py [--count 10000] [--seed 42] [--out DIR] [--keep]

The lines are the generator's memories (benchmarks/generate.py) as `mem import` reads them:
title, body, tags, type, created, source, no id. The run imports them into an empty store with
`Store.import_memories`, then imports the same file again (which must add nothing), and prints
memories per second with the time of each phase: reading and checking the lines, writing the
files (with one `sync` for all), the git commit, and updating the search index. The phases are
timed by wrapping the functions that do them, so the figures are the real code's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import build_memories  # noqa: E402
from memstore import gitrepo  # noqa: E402
from memstore.report import CollectingReporter  # noqa: E402
from memstore.store import Store  # noqa: E402


class TimingReporter(CollectingReporter):
    """Records how long each progress-reporting phase took."""

    def __init__(self) -> None:
        super().__init__()
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        start = time.perf_counter()
        try:
            yield lambda step: None
        finally:
            self.phases[label] = self.phases.get(label, 0.0) + time.perf_counter() - start


def timed(owner: Any, name: str, totals: dict[str, float], label: str) -> None:
    """Replace owner.name by a wrapper adding its time to totals[label]."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def write_jsonl(path: Path, count: int, seed: int) -> None:
    memories, _ = build_memories(count, seed)
    with path.open("w", encoding="utf-8") as out:
        for memory in memories:
            line = {key: memory.fields[key] for key in ("title", "tags", "type", "created")}
            if memory.fields.get("source"):
                line["source"] = memory.fields["source"]
            line["body"] = memory.body
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="mem-import-rate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / "memories.jsonl"
        start = time.perf_counter()
        write_jsonl(source, args.count, args.seed)
        print(f"generated {args.count} lines in {time.perf_counter() - start:.1f} s")
        reporter = TimingReporter()
        store = Store.init(work / "store", reporter=reporter)
        totals: dict[str, float] = {}
        timed(gitrepo, "commit_files", totals, "git commit")
        timed(store.index, "record", totals, "indexing")
        start = time.perf_counter()
        result = store.import_memories(source)
        total = time.perf_counter() - start
        assert not result.problems, result.problems[:3]
        added = len(result.added)
        print(f"imported {added} memories in {total:.1f} s: {added / total:.0f} memories/s")
        phases = {
            "read, check, look up (reading)": reporter.phases.get("reading", 0.0),
            "write files + sync (writing)": reporter.phases.get("writing", 0.0),
            "git commit (one commit)": totals.get("git commit", 0.0),
            "search index update": totals.get("indexing", 0.0),
        }
        phases["other"] = total - sum(phases.values())
        for name, seconds in phases.items():
            print(f"  {name:32} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
        start = time.perf_counter()
        again = store.import_memories(source)
        print(
            f"second import: {len(again.added)} new, {again.present} already present,"
            f" {time.perf_counter() - start:.1f} s"
        )
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
