"""Property tests: round trips of the file format, the parser and the query language."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from memstore.errors import InvalidInputError, MalformedMemoryError, QuerySyntaxError
from memstore.index import build_schema
from memstore.memory import FIELD_ORDER, KNOWN_TYPES, TYPE_PATTERN, new_memory, parse
from memstore.search import parse_query
from memstore.store import Store
from tests.conftest import Clock

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
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).filter(lambda k: k not in FIELD_ORDER),
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
# Distinct texts: a question-like search shows one copy of a text that is stored twice.
@given(
    word_lists=st.lists(
        st.lists(words, min_size=1, max_size=6), min_size=1, max_size=4, unique_by=" ".join
    )
)
def test_what_is_added_is_found(tmp_path: Path, word_lists: list[list[str]]) -> None:
    root = tmp_path / f"s{abs(hash(str(word_lists)))}"
    store = Store.init(root, clock=Clock())
    added = [store.add(" ".join(ws)) for ws in word_lists]
    for memory, ws in zip(added, word_lists, strict=True):
        found = {hit.id for hit in store.find(" ".join(ws), limit=0)}
        assert memory.id in found


# Hostile input: structured fuzzing (HYPOTHESIS_PROFILE=thorough runs 10,000 cases of each;
# benchmarks/fuzz.py reports the counts).

yaml_atoms = st.sampled_from(
    [
        "",
        " ",
        "  ",
        "-",
        "- ",
        ":",
        ": ",
        "#",
        "'",
        '"',
        "[",
        "]",
        "{",
        "}",
        ",",
        "|",
        ">",
        "&a",
        "*a",
        "!!int",
        "!!str",
        "?",
        "%",
        "@",
        "`",
        "\t",
        "\\",
        "\r",
        "\ufeff",
        "\x85",
        "\u2028",
        "yes",
        "no",
        "null",
        "~",
        "1e3",
        "0x1f",
        "2026-11-21",
        "2026-11-21T10:00:00Z",
        "id",
        "title",
        "tags",
        "type",
        "created",
        "source",
        "links",
        "supersedes",
        "expires",
        "01m7ysvmb1s4dxapvenrhxwngx",
        "---",
        "...",
        "é",
        "\U0001f600",
    ]
)
header_lines = st.lists(st.lists(yaml_atoms, max_size=6).map("".join), max_size=12)


@given(lines=header_lines, body=st.text(max_size=40), crlf=st.booleans())
@example(lines=["yes:", "yes:"], body="", crlf=False)  # repeated keys that are not text
@example(lines=["\t"], body="", crlf=False)  # a tab line was kept before a new key: unreadable
@example(lines=["--- "], body="", crlf=False)  # a closing fence with a trailing space
@example(lines=[" ?"], body="", crlf=False)  # a null key
@example(lines=["\ufefftags:"], body="", crlf=False)  # a BOM kept before a new key: unreadable
@example(lines=["{\\}"], body="", crlf=False)  # a flow mapping after a new key: unreadable
def test_fuzzed_front_matter_parses_validates_and_round_trips(
    lines: list[str], body: str, crlf: bool
) -> None:
    from memstore.validate import validate_header

    nl = "\r\n" if crlf else "\n"
    text = "---" + nl + nl.join(lines) + nl + "---" + nl + body
    try:
        memory = parse(text.encode("utf-8", "surrogatepass"), "memories/x.md")
    except MalformedMemoryError as error:
        assert error.path == "memories/x.md" and error.reason
        return
    problems = validate_header("".join(memory.header_lines or []), 2)
    assert all(isinstance(line, int) and message for line, message in problems)
    assert memory.to_bytes() == memory.raw  # unchanged: written back byte for byte
    try:
        memory.fields["title"] = "a new title"
        rewritten = memory.to_bytes()
    except InvalidInputError:
        return
    assert parse(rewritten, memory.path).fields["title"] == "a new title"


any_text = st.text(max_size=40)
# What a person or an agent types: non-blank text without NUL, a word, a type.
typed_text = st.text(st.characters(blacklist_characters="\x00"), max_size=40).filter(str.strip)
a_word = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Z"), blacklist_characters=","),
    min_size=1,
    max_size=12,
).filter(lambda word: word.lstrip("#"))
a_type = st.one_of(st.sampled_from(KNOWN_TYPES), st.from_regex(TYPE_PATTERN, fullmatch=True))


def mostly(
    usual: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Draw from usual five times in six, and anything at all otherwise."""
    return st.one_of(usual, usual, usual, usual, usual, anything)


def test_any_input_to_new_memory_round_trips_or_is_refused() -> None:
    """Surrogates, control characters, YAML syntax: refused with a message, or stored intact.

    Most draws are valid, so the round trip is what runs: a strategy of anything at all had 297
    of 300 inputs refused (by the type alone), and the round trip almost never ran.
    """
    outcomes = {"stored": 0, "refused": 0}

    @given(
        body=mostly(typed_text, any_text),
        title=st.one_of(st.none(), mostly(typed_text, any_text)),
        tag_list=mostly(st.lists(a_word, max_size=4), st.lists(any_text, max_size=4)),
        kind=mostly(a_type, any_text),
        source=st.one_of(st.none(), any_text),
    )
    def round_trip(
        body: str, title: str | None, tag_list: list[str], kind: str, source: str | None
    ) -> None:
        try:
            memory = new_memory(body, now=NOW, title=title, tags=tag_list, type=kind, source=source)
            data = memory.to_bytes()
        except InvalidInputError as error:
            assert str(error)
            outcomes["refused"] += 1
            event("refused")
            return
        read = parse(data, memory.path)
        assert read.fields == memory.fields and read.body == memory.body
        outcomes["stored"] += 1
        event("stored")

    round_trip()
    assert outcomes["refused"] >= 1, outcomes
    assert outcomes["stored"] >= max(20, sum(outcomes.values()) // 3), outcomes


query_atoms = st.sampled_from(
    [
        "cors",
        "nginx",
        "web",
        "AND",
        "OR",
        "NOT",
        "and",
        "(",
        ")",
        '"',
        "'",
        "*",
        "?",
        "~",
        "^",
        "2",
        ":",
        "tag:",
        "tags:",
        "type:",
        "title:",
        "body:",
        "source:",
        "created:",
        "id:",
        "path:",
        "created:2026",
        "created:>2026-06",
        "created:[2026-01-01 to 2026-03-31]",
        "created:[",
        "to",
        "]",
        "{",
        "}",
        "-",
        "+",
        "\\",
        "/",
        "C++",
        "src/app.py",
        "fooBar",
        "ERR_X",
        "é",
        "\x00",
        "\u2028",
        " ",
        "  ",
        "\t",
        "\n",
        "yesterday",
        "-1d",
        "9999",
    ]
)
queries = st.lists(query_atoms, min_size=1, max_size=8).map(" ".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.one_of(queries, st.text(max_size=40)))
def test_any_query_searches_or_fails_with_a_message(tmp_path: Path, query: str) -> None:
    store = _fuzz_store(tmp_path)
    try:
        store.find(query, limit=3)
    except QuerySyntaxError as error:
        assert str(error)


refs = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.sampled_from(["..", ".", "memories", "2026", "11", "x.md", "/", "~", "linked", "01m7"]),
        max_size=6,
    ).map("/".join),
    st.from_regex(r"0[0-9a-z]{0,27}", fullmatch=True),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=refs)
def test_any_ref_resolves_inside_the_store_or_fails_with_a_message(
    tmp_path: Path, ref: str
) -> None:
    from memstore.errors import MemstoreError

    store = _fuzz_store(tmp_path)
    try:
        path = store.resolve(ref)
    except MemstoreError as error:
        assert str(error)
        return
    full = store.root / path
    assert path.startswith("memories/") and full.is_file() and not full.is_symlink()
    assert full.resolve().is_relative_to((store.root / "memories").resolve())


_FUZZ_STORES: dict[Path, Store] = {}


def _fuzz_store(tmp_path: Path) -> Store:
    """One small store per test, with a link to a memory outside it and a link to a folder."""
    if tmp_path not in _FUZZ_STORES:
        store = Store.init(tmp_path / "fuzz", clock=Clock())
        outside = Store.init(tmp_path / "outside", clock=Clock())
        secret = outside.add("outside the store")
        for text in ("cors nginx web", "fooBar src/app.py C++", "yesterday ERR_X"):
            store.add(text, tags=["web"])
        (store.root / "memories" / "linked.md").symlink_to(outside.root / secret.path)
        (store.root / "memories" / "linked").symlink_to(outside.root / "memories")
        _FUZZ_STORES[tmp_path] = store
    return _FUZZ_STORES[tmp_path]


plain_alphabet = st.sampled_from(list("aZ09_.,:/@+()'- #yesnoxE~!&*[]{}|>%\"`"))


@settings(max_examples=400)
@given(
    value=st.one_of(
        st.text(plain_alphabet, max_size=25),
        st.lists(st.text(plain_alphabet, max_size=12), max_size=3),
    )
)
@example(value="2026-11-21T10:55:17+01:00")
@example(value="190:20:30")  # a sexagesimal integer to YAML 1.1
@example(value="a: b")
def test_the_plain_text_shortcut_writes_what_the_dumper_writes(value: object) -> None:
    from memstore import yamlrules

    assert yamlrules.dump_field("title", value) == yamlrules.dump_field_slowly("title", value)
