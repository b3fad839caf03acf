"""The bulk segment writer writes the files Whoosh's own writer writes for the same documents."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from whoosh import index as whoosh_index

from memstore import bulkwrite
from memstore.analysis import index_positions, text_analyzer
from memstore.index import blob_id, build_schema, document, sealed_document
from memstore.memory import parse

# Words of every kind the analyzer tells apart: code words, scripts, forms NFKC folds.
WORDS = [
    *("deploy", "the", "nginx.conf", "fooBar", "src/app.py", "C++", "C#", "naïve", "café"),
    *("東京タワー", "デプロイ", "Привет", "мир", "ERR_CONNECTION_REFUSED", "v1.2.3", "OAuth2"),
    *("myApp.js", "user@example.com", "HTTPServer2", "snake_case", "retry", "retries"),
    *("retrying", "cache", "Cache", "CACHE", "a", "an", "is", "of", "to", "42", "1e9", "🚀"),
    *("ß", "straße", "ﬁle", "ＡＢＣ", "e\u0301clair", "x--y", "a/b/c:d", "done."),
]


def _memory_file(rng: random.Random, number: int) -> tuple[str, bytes]:
    """A memory file with a random choice of every field, and its path."""
    memory_id = f"01h{number:023d}"[:26]
    lines = ["---", f"id: {memory_id}"]
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
    lines.append(f"title: {title!r}" if rng.random() < 0.9 else "title: ''")
    if rng.random() < 0.7:
        lines.append(f"type: {rng.choice(['note', 'decision', 'Fix', 'how-to'])}")
    tags = rng.sample(["web", "Bug", "db", "ops", "日本", "a b", "x,y"], rng.randint(0, 4))
    if tags:
        lines.append("tags:")
        lines.extend(f"  - {tag!r}" for tag in tags)
    if rng.random() < 0.8:
        day = f"20{rng.randint(20, 27)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        lines.append(f"created: {day}T10:0{rng.randint(0, 9)}:00+0{rng.randint(0, 5)}:00")
    if rng.random() < 0.3:
        lines.append(f"source: {rng.choice(['alice', 'Bob', 'claude-code'])}")
    if rng.random() < 0.2:
        lines.append("session: s-1234")
    if rng.random() < 0.2:
        lines.append("expires: 2027-01-01")
    if rng.random() < 0.2:
        lines.append("supersedes:\n  - 01habcdefabcdefabcdefabcdef")
    if rng.random() < 0.2:
        lines.append("links:\n  - 01habcdefabcdefabcdefabcdeg")
    lines.append("---")
    size = rng.choice([0, 0, 1, 5, 40, 200, 1500])
    body = " ".join(rng.choice(WORDS) for _ in range(size))
    if rng.random() < 0.2:
        body += "\n\nSee [[Other memory]] and [a link](01habcdefabcdefabcdefabcdeh)."
    path = f"memories/2026/0{number % 3 + 1}/m-{number}.md"
    return path, ("\n".join(lines) + "\n" + body + ("\n" if body else "")).encode()


def _documents(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for number in range(count):
        path, data = _memory_file(rng, number)
        doc = document(parse(data, path), blob_id(data))
        if number % 17 == 5:  # an encrypted memory: indexed, but no text in stored fields
            doc["path"] += ".age"
            doc = sealed_document(doc)
        docs.append(doc)
    # A word in more than one block of postings (128 a block), with weights that differ.
    for number, doc in enumerate(docs):
        if number % 5:
            doc["body"] += " blockword" * (1 + number % 3)
    return docs


def _whoosh_files(folder: Path, docs: list[dict[str, Any]]) -> tuple[dict[str, bytes], str]:
    folder.mkdir()
    ix = whoosh_index.create_in(str(folder), build_schema())
    writer = ix.writer(compound=False)
    segid = writer.newsegment.segid
    for doc in docs:
        writer.add_document(**doc)
    writer.commit(merge=False)
    ix.close()
    return {path.name: path.read_bytes() for path in folder.iterdir()}, segid


def _bulk_files(folder: Path, docs: list[dict[str, Any]], segid: str) -> dict[str, bytes]:
    schema = build_schema()
    folder.mkdir()
    whoosh_index.create_in(str(folder), schema).close()
    builder = bulkwrite.SegmentBuilder(folder, schema, segid=segid)
    for doc in docs:
        builder.add(doc)
    bulkwrite.write_toc(folder, schema, [builder.finish()])
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_same_files_and_bytes_as_whoosh(tmp_path: Path) -> None:
    docs = _documents(300, seed=7)
    assert any(not doc["body"] for doc in docs) and any(
        doc.get("_stored_title") == "" for doc in docs
    )
    expected, segid = _whoosh_files(tmp_path / "whoosh", docs)
    found = _bulk_files(tmp_path / "bulk", docs, segid)
    assert sorted(found) == sorted(expected)
    assert {name for name in found if name.endswith((".pst", ".trm", ".col"))}
    for name, data in expected.items():
        assert found[name] == data, name


def test_one_document_and_an_empty_one(tmp_path: Path) -> None:
    path, data = (
        "memories/2026/01/empty.md",
        b"---\nid: 01h00000000000000000000000\ntitle: ''\n---\n",
    )
    docs = [document(parse(data, path), blob_id(data))]
    expected, segid = _whoosh_files(tmp_path / "whoosh", docs)
    assert _bulk_files(tmp_path / "bulk", docs, segid) == expected


def test_an_index_of_bulk_segments_searches(tmp_path: Path) -> None:
    docs = _documents(60, seed=3)
    schema = build_schema()
    ix = whoosh_index.create_in(str(tmp_path), schema)
    segments = []
    for part in (docs[:25], docs[25:]):
        builder = bulkwrite.SegmentBuilder(tmp_path, schema)
        for doc in part:
            builder.add(doc)
        steps: list[int] = []
        segments.append(builder.finish(steps.append))
        assert sum(steps) == len(part)  # the progress it tells adds up to its documents
    bulkwrite.write_toc(tmp_path, schema, segments)
    with ix.searcher() as searcher:
        assert searcher.doc_count() == 60
        assert {doc["path"] for doc in searcher.all_stored_fields()} == {
            doc["path"] for doc in docs
        }
        hits = searcher.documents(id=docs[40]["id"])
        assert [hit["path"] for hit in hits] == [docs[40]["path"]]
    ix.close()


def _analyzer_positions(text: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for token in text_analyzer()(text, positions=True, mode="index"):
        found[token.text].append(token.pos)
    return dict(found)


@given(
    st.lists(st.sampled_from(list("aZ9_-./@:+# \n東京ßé\u0301🚀") + WORDS), max_size=30).map(
        "".join
    )
)
def test_index_positions_are_the_analyzers(text: str) -> None:
    found = index_positions(text)
    assert found == _analyzer_positions(text)
    assert list(found) == list(_analyzer_positions(text))  # in the same order too


@pytest.mark.parametrize("text", ["", "fooBar fooBar x", "myApp.js myapp", " ".join(WORDS)])
def test_index_positions_examples(text: str) -> None:
    assert index_positions(text) == _analyzer_positions(text)


def test_rejects_a_field_it_does_not_know(tmp_path: Path) -> None:
    schema = build_schema()
    folder = tmp_path / "ix"
    folder.mkdir()
    whoosh_index.create_in(str(folder), schema).close()
    builder = bulkwrite.SegmentBuilder(folder, schema)
    with pytest.raises(ValueError, match="no field named 'colour'"):
        builder.add({"path": "memories/x.md", "colour": "red"})
    with pytest.raises(ValueError, match="_title_boost: the bulk writer does not weight"):
        builder.add({"path": "memories/x.md", "title": "red", "_title_boost": 2.0})
    builder.cancel()  # closes its temporary files and removes their folder
    assert [path.name for path in folder.iterdir() if path.is_dir()] == []
