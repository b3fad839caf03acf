"""Measure how well `mem find` retrieves conversational memory (LongMemEval-style data).

    python benchmarks/recall.py [--data PATH] [--mode session|turn|both] [--limit N] [--kept-only]
                                [--jobs 2] [--json OUT] [--keep DIR] [--no-session|--both-sessions]
                                [--meaning-model minilm [--meaning-cache DIR]]

The data is a JSON list (optionally gzipped) of questions in the LongMemEval shape: each has a
`question`, a `question_date`, a `question_type`, `haystack_sessions` (lists of turns with
`role`, `content` and, on the turns that hold the answer, `has_answer`), `haystack_dates`,
`haystack_session_ids` and `answer_session_ids`.

For each question the sessions are imported into a fresh store through the library
(`Store.add_many` of `new_memory(...)`), with the session's date as `created` and the speaker
written in the text (`user: ...`). Mode `session` makes one memory per session, mode `turn` one
per turn (made one millisecond apart, so that their ids sort in the conversation's order); each
memory records the session it came from in its `session` field, as an agent that stores a
conversation's turns would (`--no-session` leaves the field out). The question is then asked
through `Store.find`, the code path of `mem find`, with the store's clock set to the question's
date, so that relative dates are read from that day.

Relevant memories are the answer sessions (session mode) or the turns marked `has_answer` (turn
mode); abstention questions (ids ending in `_abs`) and questions without any are left out.
Reported per question type and overall: recall_any@1/5/10 (a relevant memory in the top k),
recall_all@10 (all of them), NDCG@10 and MRR (over the top 50), as percentages.

`--both-sessions` runs each mode with the `session` field and without it. Tables name
recall_any@1 hit@1 (the first result is relevant), recall_any@5 R@5 and recall_any@10 R@10.

`--meaning-model minilm` is an experiment: the semantic extra's model (WordLlama) is replaced by
all-MiniLM-L6-v2 (benchmarks/minilm.py, which needs torch and sentence-transformers), every other
rule unchanged; `--meaning-cache DIR` shares its vectors with `semantic_models.py --cache DIR`.
Use fresh stores (not ones kept with the other model).

`--limit N` takes N questions spread evenly over the file (the same ones every run), for quick
iterations. `--keep DIR` keeps the stores under DIR and reuses them on the next run, so that a
change to the query side can be measured without importing again (a change to the index
format rebuilds the kept indexes on their first search).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memstore.memory import Memory, new_memory
from memstore.store import Store

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/longmemeval"
DATA_NAME = "longmemeval_s_sample150.json.gz"
MODES = ("session", "turn")
DEPTH = 50  # hits asked for: MRR counts a first relevant hit down to this rank
KS = (1, 5, 10)
METRICS = ("recall_any@1", "recall_any@5", "recall_any@10", "recall_all@10", "ndcg@10", "mrr")
# How the tables name them: recall_any@1 is hit@1, whether the first result is relevant.
LABELS = {"recall_any@1": "hit@1", "recall_any@5": "R@5", "recall_any@10": "R@10"}


def load(path: Path) -> list[dict[str, Any]]:
    """The questions of a LongMemEval-shaped file (a folder means its one .json(.gz) file)."""
    if path.is_dir():
        found = sorted(path.glob("*.json.gz")) + sorted(path.glob("*.json"))
        if not found:
            raise SystemExit(f"recall.py: no .json or .json.gz file in {path}")
        path = found[0]
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def spread(items: list[Any], count: int) -> list[Any]:
    """count items taken at even steps through items (all of them when count is 0)."""
    if not count or count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def parse_date(text: str) -> datetime:
    """A LongMemEval date such as '2023/05/20 (Sat) 03:00' as an aware UTC datetime."""
    day, _, clock = text.partition(")")
    stamp = day.split("(")[0].strip() + " " + (clock.strip() or "00:00")
    return datetime.strptime(stamp, "%Y/%m/%d %H:%M").replace(tzinfo=UTC)


def memories(
    item: dict[str, Any], mode: str, sessions: bool = True
) -> tuple[list[Memory], list[bool]]:
    """The memories of a question's sessions, and whether each is relevant."""
    made: list[Memory] = []
    relevant: list[bool] = []
    answers = set(item.get("answer_session_ids") or ())
    haystack = zip(
        item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"], strict=True
    )
    for session_id, date, turns in haystack:
        when = parse_date(date)
        lines = [
            (f"{turn['role']}: {turn['content']}", bool(turn.get("has_answer"))) for turn in turns
        ]
        lines = [(text, answer) for text, answer in lines if text.split(":", 1)[1].strip()]
        if not lines:
            continue
        session = str(session_id) if sessions else None
        if mode == "session":
            text = "\n\n".join(text for text, _ in lines)
            made.append(new_memory(text, now=when, session=session))
            relevant.append(session_id in answers)
        else:
            # One millisecond apart, as turns written one after another: the ids (made from the
            # milliseconds) then sort in the conversation's order; `created` keeps the second.
            for place, (text, answer) in enumerate(lines):
                at = when + timedelta(milliseconds=place)
                made.append(new_memory(text, now=at, session=session))
                relevant.append(answer)
    return made, relevant


def _kept(item: dict[str, Any], mode: str, keep: str, sessions: bool) -> bool:
    folder = Path(keep) / (mode if sessions else f"{mode}-no-session") / item["question_id"]
    return (folder / ".git" / "relevant.json").exists()


def rank_metrics(ranks: list[int], total: int) -> dict[str, float]:
    """Metrics of one question from the 1-based ranks of its relevant hits."""
    found = sorted(ranks)
    out = {f"recall_any@{k}": float(any(r <= k for r in found)) for k in KS}
    out["recall_all@10"] = float(sum(r <= 10 for r in found) == total)
    dcg = sum(1 / math.log2(r + 1) for r in found if r <= 10)
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(total, 10) + 1))
    out["ndcg@10"] = dcg / ideal
    out["mrr"] = 1 / found[0] if found else 0.0
    return out


def run_question(task: tuple[dict[str, Any], str, str | None, bool]) -> dict[str, Any] | None:
    """Import one question's sessions into a fresh store and ask it; None if it has no target."""
    item, mode, keep, sessions = task
    if str(item["question_id"]).endswith("_abs"):
        return None  # an abstention question: the answer is not in the sessions
    made, relevant = memories(item, mode, sessions)
    total = sum(relevant)
    if not total:
        return None
    asked = parse_date(item["question_date"])

    def clock() -> datetime:
        return asked

    started = time.perf_counter()
    if keep:
        root = Path(keep) / (mode if sessions else f"{mode}-no-session") / item["question_id"]
        scratch = None
    else:
        scratch = tempfile.mkdtemp(prefix="recall-")
        root = Path(scratch) / "store"
    try:
        kept = (root / ".git" / "relevant.json").exists()
        if kept:
            store = Store(root, clock=clock)
            targets = set(json.loads((root / ".git" / "relevant.json").read_text()))
        else:
            if root.exists():
                shutil.rmtree(root)
            store = Store.init(root, clock=clock)
            store.add_many(made)
            targets = {m.id for m, yes in zip(made, relevant, strict=True) if yes}
            if keep:
                (root / ".git" / "relevant.json").write_text(json.dumps(sorted(targets)))
        imported = time.perf_counter() - started
        started = time.perf_counter()
        hits = store.find(item["question"], limit=DEPTH)
        asked_s = time.perf_counter() - started
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    ranks = [i for i, hit in enumerate(hits, 1) if hit.id in targets]
    return {
        "question_id": item["question_id"],
        "question_type": item["question_type"],
        "mode": mode,
        "sessions": sessions,
        "memories": len(made),
        "relevant": total,
        "ranks": ranks,
        "import_s": round(imported, 3),
        "find_s": round(asked_s, 4),
        **rank_metrics(ranks, total),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean metrics (as percentages) per question type and overall."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["question_type"]].append(row)
        groups["overall"].append(row)
    table: dict[str, dict[str, float]] = {}
    for name in sorted(groups, key=lambda n: (n == "overall", n)):
        members = groups[name]
        table[name] = {"n": len(members)}
        for metric in METRICS:
            table[name][metric] = round(100 * sum(r[metric] for r in members) / len(members), 1)
    return table


def markdown(mode: str, table: dict[str, dict[str, float]]) -> str:
    """The summary of one mode as a Markdown table."""
    lines = [
        f"### {mode} mode",
        "",
        "| question type | n | " + " | ".join(LABELS.get(m, m) for m in METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for name, values in table.items():
        cells = " | ".join(f"{values[m]:.1f}" for m in METRICS)
        label = f"**{name}**" if name == "overall" else name
        lines.append(f"| {label} | {values['n']:.0f} | {cells} |")
    return "\n".join(lines)


def override(pairs: list[str]) -> dict[str, Any]:
    """Set memstore.query settings from NAME=VALUE pairs (inherited by the forked workers)."""
    from memstore import query

    done: dict[str, Any] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if not hasattr(query, name):
            raise SystemExit(f"recall.py: memstore.query has no setting {name!r}")
        value = ast.literal_eval(text)
        if isinstance(getattr(query, name), frozenset):
            value = frozenset(value)
        setattr(query, name, value)
        done[name] = value if not isinstance(value, frozenset) else sorted(value)
    return done


def use_minilm(cache: Path | None) -> None:
    """For experiments: memstore.semantic's model replaced by all-MiniLM-L6-v2 (minilm.py).

    Loaded lazily, in each worker process (after the fork), on one thread.
    """
    import functools

    import minilm

    from memstore import semantic

    semantic.MODEL = minilm.NAME  # an index built with the other model is rebuilt
    semantic.DIM = minilm.DIM
    semantic.BIT_BYTES = minilm.DIM // 8

    @functools.cache
    def model() -> Any:
        return minilm.Embedder(cache, threads=1)

    semantic.model = model  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="file or folder")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--limit", type=int, default=0, help="N questions spread evenly")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--json", type=Path, help="write the results (with per question) here")
    parser.add_argument("--keep", help="keep stores in this folder and reuse them")
    parser.add_argument(
        "--kept-only",
        action="store_true",
        help="with --keep: ask only the questions whose stores are kept already",
    )
    parser.add_argument(
        "--no-session",
        dest="sessions",
        action="store_const",
        const="without",
        default="with",
        help="leave out the memories' session field",
    )
    parser.add_argument(
        "--both-sessions",
        dest="sessions",
        action="store_const",
        const="both",
        help="run each mode with the session field and without it",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="for experiments: override a setting of memstore.query (a Python literal)",
    )
    parser.add_argument(
        "--meaning-model",
        choices=("wordllama", "minilm"),
        default="wordllama",
        help="for experiments: the semantic extra's model (minilm needs torch)",
    )
    parser.add_argument("--meaning-cache", type=Path, help="minilm: vectors kept in this folder")
    args = parser.parse_args(argv)
    settings = override(args.set)
    if args.meaning_model == "minilm":
        use_minilm(args.meaning_cache)
        settings["meaning_model"] = "minilm"

    items = spread(load(args.data), args.limit)
    modes = MODES if args.mode == "both" else (args.mode,)
    variants = {"with": (True,), "without": (False,), "both": (True, False)}[args.sessions]
    tasks = [
        (item, mode, args.keep, sessions)
        for sessions in variants
        for mode in modes
        for item in items
    ]
    if args.keep and args.kept_only:
        tasks = [task for task in tasks if _kept(*task)]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with multiprocessing.get_context("fork").Pool(max(1, args.jobs)) as pool:
        for done, row in enumerate(pool.imap_unordered(run_question, tasks, chunksize=1), 1):
            if row is not None:
                rows.append(row)
            if sys.stderr.isatty():
                print(f"\r{done}/{len(tasks)}", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    if sys.stderr.isatty():
        print(file=sys.stderr)

    result: dict[str, Any] = {
        "data": str(args.data),
        "questions": len(items),
        "settings": settings,
        "sessions": args.sessions,
        "modes": {},
    }
    for sessions in variants:
        for mode in modes:
            name = mode if sessions else f"{mode}-no-session"
            report(
                result, name, [r for r in rows if r["mode"] == mode and r["sessions"] == sessions]
            )
    result["seconds"] = round(seconds, 1)
    print(f"{len(items)} questions, {len(modes)} mode(s), {args.jobs} job(s): {seconds:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def report(result: dict[str, Any], mode: str, rows: list[dict[str, Any]]) -> None:
    """Print one mode's table and add it to result."""
    mine = sorted(rows, key=lambda r: r["question_id"])
    table = summarize(mine)
    result["modes"][mode] = {
        "summary": table,
        "import_s": round(sum(r["import_s"] for r in mine), 1),
        "find_ms_mean": round(1000 * sum(r["find_s"] for r in mine) / max(1, len(mine)), 1),
        "per_question": mine,
    }
    print(markdown(mode, table))
    print()
    print(
        f"import {result['modes'][mode]['import_s']} s in total (all workers);"
        f" Store.find {result['modes'][mode]['find_ms_mean']} ms mean per question"
    )
    print()


if __name__ == "__main__":
    sys.exit(main())
