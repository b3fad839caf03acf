"""Property tests: round trips of the file format, the parser and the query language."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstore.errors import InvalidInputError, MalformedMemoryError, QuerySyntaxError
from memstore.index import build_schema, parse_query
from memstore.memory import new_memory, parse
from memstore.store import Store

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)
tags = st.lists(
    st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=12),
    max_size=6,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    texts,
    st.lists(st.text(max_size=20), max_size=3),
)
extra_keys = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).filter(
        lambda k: (
            k
            not in {
                "id",
                "title",
                "type",
                "tags",
                "created",
                "source",
                "links",
                "supersedes",
                "expires",
            }
        )
    ),
    scalars,
    max_size=4,
)


@given(body=texts, title=st.one_of(st.none(), texts), tag_list=tags, extra=extra_keys)
def test_write_then_read_gives_the_same_memory(body, title, tag_list, extra) -> None:
    try:
        memory = new_memory(body, now=NOW, title=title, tags=tag_list, extra=extra)
    except InvalidInputError:
        return  # empty text or title: refused with a message, which is the contract
    data = memory.to_bytes()
    read = parse(data, memory.path)
    assert read.fields == memory.fields
    assert read.body == memory.body
    assert read.to_bytes() == data  # reading and writing again changes nothing


@given(body=texts, new_title=texts, tag_list=tags, extra=extra_keys)
def test_changing_one_field_changes_only_its_lines(body, new_title, tag_list, extra) -> None:
    try:
        memory = new_memory(body, now=NOW, tags=tag_list, extra=extra)
    except InvalidInputError:
        return
    before = memory.to_bytes().decode()
    read = parse(memory.to_bytes(), memory.path)
    read.fields["title"] = new_title
    after = read.to_bytes().decode()
    assert _without_title(before) == _without_title(after)
    untouched = [k for k in memory.fields if k != "title"]
    reread = parse(after.encode(), memory.path)
    assert {k: reread.fields[k] for k in untouched} == {k: memory.fields[k] for k in untouched}
    assert reread.fields["title"] == new_title


def _without_title(text: str) -> list[str]:
    """The file's lines less the title field's block (its key line and continuation lines)."""
    kept, in_title = [], False
    for line in text.splitlines():
        if line.startswith("title:"):
            in_title = True
            continue
        if in_title and (line.startswith((" ", "\t")) or line == ""):
            continue
        in_title = False
        kept.append(line)
    return kept


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        parse(data, "memories/x.md")
    except MalformedMemoryError as error:
        assert str(error).startswith("memories/x.md")


@given(st.text(max_size=30).map(lambda t: "---\n" + t + "\n---\nbody\n"))
def test_any_header_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        memory = parse(text.encode(), "memories/x.md")
    except MalformedMemoryError as error:
        assert error.path == "memories/x.md"
        return
    # Whatever parses, writes back to the same bytes and reads back to the same fields.
    assert memory.to_bytes() == text.encode()
    assert parse(memory.to_bytes(), memory.path).fields == memory.fields


SCHEMA = build_schema()


@given(st.text(max_size=60))
def test_any_query_parses_or_fails_with_a_message(query: str) -> None:
    try:
        parse_query(SCHEMA, query, NOW)
    except QuerySyntaxError as error:
        assert "\n" not in str(error) or "\n" in query


words = st.from_regex(r"[a-z]{4,10}", fullmatch=True)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word_lists=st.lists(st.lists(words, min_size=1, max_size=6), min_size=1, max_size=4))
def test_what_is_added_is_found(tmp_path: Path, word_lists: list[list[str]]) -> None:
    root = tmp_path / f"s{abs(hash(str(word_lists)))}"
    store = Store.init(root)
    added = [store.add(" ".join(ws)) for ws in word_lists]
    for memory, ws in zip(added, word_lists, strict=True):
        found = {hit.id for hit in store.find(" ".join(ws), limit=0)}
        assert memory.id in found
