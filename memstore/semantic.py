"""Meaning: memories and questions embedded by a small offline model (the `semantic` extra).

Word matching cannot tell that "musical instruments" covers a Stratocaster. With the extra
installed (`pip install 'memstore-git[semantic]'`), every memory the index holds gets a vector
from WordLlama's static embeddings (the average of its tokens' vectors; the weights, 256
dimensions, ship inside the `wordllama` package: nothing is downloaded), and a question's first
results take in the memories nearest to it in meaning (see `query.Plan.meaning`).

The vectors live beside the Whoosh segments in the index folder (`.git/memstore/ix-*/`), so
they are never committed, are rebuilt with the index and are kept up to date by the same
writes: each write appends the rows of the memories it indexed (`vectors.f32`, one row of
float32 per memory, and its signs in `vectors.bits`) and their keys (`vectors.key`: the
memory's id and the git blob id of its file). A row whose memory was edited or removed since
is left behind and skipped when read: its key no longer matches what the index holds.
Encrypted memories get vectors like their terms: the index keeps which words an encrypted
memory has (docs/encryption.md), and a static model's vector is a function of those words, so
the vectors say nothing the postings do not.

Without the extra (or with `MEM_SEMANTIC=0`) nothing here is imported beyond this module, and
nothing is written.
The model is loaded once per process, on the first write or question that needs it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The model: WordLlama's "l2_supercat" static embeddings, as the wordllama package ships them.
MODEL = "wordllama-l2_supercat-256 (f32, bits, key)"
DIM = 256
VECTORS = "vectors.f32"
BITS = "vectors.bits"  # the signs of each vector, a 32-byte row: a first pass by Hamming distance
KEYS = "vectors.key"
ID_BYTES = 26  # a ULID
BLOB_BYTES = 20
KEY_BYTES = ID_BYTES + BLOB_BYTES
BIT_BYTES = DIM // 8
# The first pass keeps this many rows per one asked for, at least SHORTLIST_MIN, for exact cosines.
SHORTLIST = 10
SHORTLIST_MIN = 500
# Characters of a memory embedded: the mean of its token vectors settles long before this.
MAX_CHARS = 8000


def available() -> bool:
    """Whether the extra is installed and not turned off (`MEM_SEMANTIC=0`); imports nothing."""
    return os.environ.get("MEM_SEMANTIC", "").strip() != "0" and _installed()


@functools.cache
def _installed() -> bool:
    try:
        return all(importlib.util.find_spec(name) for name in ("wordllama", "numpy", "tokenizers"))
    except ValueError:  # a module set to None in sys.modules: as good as not installed
        return False


class Model:
    """WordLlama's token vectors and tokenizer, read from the installed package's own files.

    Not through `WordLlama.load`: it looks for the tokenizer in the wrong folder and then tries
    to download it, and it imports pydantic and requests, which embedding does not need.
    """

    def __init__(self) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        spec = importlib.util.find_spec("wordllama")
        if spec is None or spec.origin is None:
            raise RuntimeError("the wordllama package is not installed")
        home = Path(spec.origin).parent
        self.tokenizer = Tokenizer.from_file(
            str(home / "tokenizers" / "l2_supercat_tokenizer_config.json")
        )
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        weights = load_file(str(home / "weights" / "l2_supercat_256.safetensors"))
        self.table = np.ascontiguousarray(weights["embedding.weight"], dtype=np.float32)

    def embed(self, texts: list[str]) -> Any:
        """Unit vectors of texts (rows of a float32 array); a text with no tokens gets zeros."""
        import numpy as np

        out = np.zeros((len(texts), DIM), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(
            [text[:MAX_CHARS] for text in texts], add_special_tokens=False
        )
        for row, tokens in enumerate(encoded):
            if tokens.ids:
                out[row] = self.table[tokens.ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@functools.cache
def model() -> Model:
    """The model, loaded once per process."""
    return Model()


def text_of(doc: dict[str, Any]) -> str:
    """What is embedded of an index document: its title (when it is not the first line) and body."""
    title = str(doc.get("title") or "")
    body = str(doc.get("body") or "")
    return body if not title or body.startswith(title) else f"{title}\n{body}"


def record(folder: str | Path, docs: Iterable[dict[str, Any]]) -> None:
    """Append the vectors of the documents just indexed (they need `id`, `blob` and text)."""
    found = rows(docs)
    if found is not None:
        append(folder, found)


def rows(docs: Iterable[dict[str, Any]]) -> tuple[bytes, bytes, bytes] | None:
    """The rows `record` appends for the documents, as bytes of each file; None for none.

    A second process of a rebuild (index.py) makes its documents' rows, and the first appends
    them, so that only one process writes the files.
    """
    docs = [doc for doc in docs if doc.get("id") and doc.get("blob")]
    if not docs or not available():
        return None
    import numpy as np

    vectors = model().embed([text_of(doc) for doc in docs])
    keys = b"".join(_key(str(doc["id"]), str(doc["blob"])) for doc in docs)
    return vectors.astype("<f4").tobytes(), np.packbits(vectors > 0, axis=1).tobytes(), keys


def append(folder: str | Path, found: tuple[bytes, bytes, bytes]) -> None:
    """Append rows made by `rows` to the index folder's files."""
    vectors, bits, keys = found
    folder = Path(folder)
    count = _rows(folder)
    # A write that stopped half-way leaves a longer file of one kind: cut both to whole rows.
    with open(folder / VECTORS, "ab") as out:
        out.truncate(count * DIM * 4)
        out.write(vectors)
    with open(folder / BITS, "ab") as out:
        out.truncate(count * BIT_BYTES)
        out.write(bits)
    with open(folder / KEYS, "ab") as out:
        out.truncate(count * KEY_BYTES)
        out.write(keys)


def _key(memory_id: str, blob: str) -> bytes:
    return memory_id.encode("ascii", "replace")[:ID_BYTES].ljust(ID_BYTES) + bytes.fromhex(blob)


def _rows(folder: Path) -> int:
    try:
        vectors = os.path.getsize(folder / VECTORS) // (DIM * 4)
        bits = os.path.getsize(folder / BITS) // BIT_BYTES
        keys = os.path.getsize(folder / KEYS) // KEY_BYTES
    except OSError:
        return 0
    return min(vectors, bits, keys)


def kept(folder: str | Path) -> bool:
    """Whether the index folder keeps vectors."""
    return (Path(folder) / KEYS).exists()


def nearest(folder: str | Path, text: str, count: int) -> list[tuple[str, str, float]]:
    """The count rows nearest to text: (memory id, blob id, cosine), nearest first.

    Rows left behind by edits are among them; the caller checks each key against the index.
    Reading every vector costs a page fault per 4 KB of them (about 100 ms at 100,000
    memories): the signs of the vectors (32 bytes a row, read whole) pick a shortlist by Hamming
    distance, and only the shortlist's vectors are read for exact cosines.
    """
    import numpy as np

    folder = Path(folder)
    rows = _rows(folder)
    if not rows or not available():
        return []
    question = model().embed([text])[0]
    count = min(count, rows)
    shortlist = min(rows, max(SHORTLIST_MIN, SHORTLIST * count))
    if shortlist < rows:
        bits = np.fromfile(folder / BITS, dtype="<u8", count=rows * BIT_BYTES // 8)
        mine = np.packbits(question > 0).view("<u8")
        apart = np.bitwise_count(bits.reshape(rows, BIT_BYTES // 8) ^ mine).sum(axis=1, dtype="u2")
        picked = np.sort(np.argpartition(apart, shortlist - 1)[:shortlist])
    else:
        picked = np.arange(rows)
    matrix = np.memmap(folder / VECTORS, dtype="<f4", mode="r", shape=(rows, DIM))
    scores = np.asarray(matrix[picked]) @ question
    best = np.argpartition(-scores, count - 1)[:count]
    best = best[np.argsort(-scores[best])]
    top = picked[best]
    keys = np.asarray(np.memmap(folder / KEYS, dtype="u1", mode="r", shape=(rows, KEY_BYTES))[top])
    found = []
    for row, close in zip(keys, scores[best].tolist(), strict=True):
        raw = row.tobytes()
        memory_id = raw[:ID_BYTES].decode("ascii", "replace").rstrip()
        found.append((memory_id, raw[ID_BYTES:].hex(), close))
    return found
