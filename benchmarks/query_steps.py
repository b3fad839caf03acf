"""Where an in-process search's time goes, step by step, on a generated store.

    python benchmarks/query_steps.py STORE [--repeat 7]

For each query of benchmarks/floor.py it times, in one process, p50 / p95 in ms:

- `Store.find`: what the library and the search service run (catching up, query, ranking,
  snippets, successors);
- `search.search`: the same on an index already caught up;
- the top 10 (or the question's candidate pool) alone, in five ways: as memstore finds it
  (`search._top`: bulk scoring where it is worth it, else Whoosh with every match scored in
  full), by bulk scoring (`bulkscore.top`, "-" where the query is not of its shape), by
  Whoosh's default walk (block-quality skipping and matcher replacement, `terms=` as the plan
  asks), the same with block-quality skipping turned off, and counting every match
  (`limit=None`);

and how many memories the query matches, how many blocks Whoosh skipped, and whether its matcher
supports block quality at all. It changes nothing in the store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import queries  # noqa: E402

from memstore import (
    bulkscore,  # noqa: E402
    search,  # noqa: E402
)
from memstore import query as questions  # noqa: E402
from memstore.results import Filters  # noqa: E402
from memstore.store import Store  # noqa: E402


def timed(call: Any, repeat: int) -> tuple[float, float]:
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from whoosh import collectors

    store = Store.open(args.store)
    meta = json.loads((args.store / ".git" / "membench.json").read_text())
    now = datetime.now()
    rows = []
    # Store.find catches up under the index's lock, which reading() below holds shared: time it
    # first, on its own.
    finds = {
        q.mem: timed(lambda t=q.mem: store.find(t, limit=11), args.repeat) for q in queries(meta)
    }
    with store.index.reading() as ix, ix.searcher(weighting=questions.weighting()) as searcher:
        for query in queries(meta):
            text = query.mem
            plan = search.plan_query(ix.schema, text, now, searcher.reader())
            if plan.question:
                plan.query = questions.expand(plan, searcher, store.read_body, None)
            pool = plan.pool(11) or 11

            def whoosh(
                quality: bool = True,
                terms: bool = plan.min_match > 1,
                plan: Any = plan,
                pool: int = pool,
            ) -> Any:
                collector = collectors.TopCollector(pool, usequality=quality)
                if terms:
                    collector = collectors.TermsCollector(collector)
                searcher.search_with_collector(plan.query, collector)
                return collector

            def everything(plan: Any = plan) -> Any:
                return searcher.search(plan.query, limit=None)

            def memstore(plan: Any = plan, pool: int = pool) -> Any:
                return search._top(searcher, plan.query, pool, None, plan.min_match > 1)

            def bulk(plan: Any = plan, pool: int = pool) -> Any:
                return bulkscore.top(searcher, plan.query, pool, None)

            top = whoosh()
            inner = getattr(top, "child", top)
            row = {
                "kind": query.kind,
                "query": text,
                "find": finds[text],
                "search": timed(
                    lambda t=text: search.search(
                        ix, t, Filters(), 11, store.read_body, ("", ""), now
                    ),
                    args.repeat,
                ),
                "top": timed(memstore, args.repeat),
                "bulk": timed(bulk, args.repeat) if bulk() is not None else None,
                "whoosh": timed(whoosh, args.repeat),
                "no skipping": timed(lambda: whoosh(quality=False), args.repeat),
                "all matches": timed(everything, args.repeat),
                "matches": len(everything()),
                "skipped": inner.skipped_times,
                "quality": bool(inner.matcher is not None and inner._use_block_quality()),
            }
            rows.append(row)
    names = ["find", "search", "top", "bulk", "whoosh", "no skipping", "all matches"]
    print("| kind | query | matches | " + " | ".join(names) + " | blocks skipped | supports |")
    print("|---" * (len(names) + 5) + "|")
    for row in rows:
        cells = " | ".join(
            f"{row[n][0]:.1f} / {row[n][1]:.1f}" if row[n] is not None else "-" for n in names
        )
        print(
            f"| {row['kind']} | `{row['query']}` | {row['matches']} | {cells} |"
            f" {row['skipped']} | {'yes' if row['quality'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
