"""Three-way merges of memory files: examples and properties (symmetry, validity, nothing lost)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from memstore.memory import new_memory, parse
from memstore.merge import (
    conflict_blocks,
    has_conflict,
    merge_lines,
    merge_memory,
    resolve_memory,
)

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
BODY = "".join(f"line {n} of the text\n" for n in range(6))


def make(
    body: str = BODY, title: str = "Base title", tags: tuple[str, ...] = ("web", "db")
) -> bytes:
    memory = new_memory(
        body, now=NOW, title=title, tags=tags, memory_id="01m7yrg5w86383ba0y3b4pdmp6"
    )
    return memory.to_bytes()


def edit(data: bytes, *, body: str | None = None, title: str | None = None, tags=None) -> bytes:
    memory = parse(data, "m.md")
    if body is not None:
        memory.body = body
    if title is not None:
        memory.fields["title"] = title
    if tags is not None:
        memory.fields["tags"] = list(tags)
    return memory.to_bytes()


def lines_replaced(body: str, changes: dict[int, str]) -> str:
    lines = body.splitlines(keepends=True)
    for number, text in changes.items():
        lines[number] = text + "\n"
    return "".join(lines)


def test_separate_edits_merge_cleanly_even_on_adjacent_lines() -> None:
    base = make()
    ours = edit(base, body=lines_replaced(BODY, {1: "ours on line one"}))
    theirs = edit(base, body=lines_replaced(BODY, {2: "theirs on line two"}), title="New title")
    result = merge_memory(base, ours, theirs)
    assert not result.conflict
    merged = parse(result.data, "m.md")
    assert merged.title == "New title"
    assert merged.body == lines_replaced(BODY, {1: "ours on line one", 2: "theirs on line two"})
    assert "conflict" not in merged.fields


def test_tags_merge_as_sets_with_adds_and_removes() -> None:
    base = make(tags=("web", "db"))
    ours = edit(base, tags=["web", "db", "cache"])
    theirs = edit(base, tags=["db", "auth"])
    merged = parse(merge_memory(base, ours, theirs).data, "m.md")
    assert sorted(merged.tags) == ["auth", "cache", "db"]


def test_a_true_conflict_keeps_both_sides_in_a_flagged_valid_file() -> None:
    base = make()
    ours = edit(base, body=lines_replaced(BODY, {3: "ours says this"}), title="Ours")
    theirs = edit(base, body=lines_replaced(BODY, {3: "theirs says that"}), title="Theirs")
    result = merge_memory(base, ours, theirs)
    assert result.conflict and has_conflict(result.data)
    text = result.data.decode()
    assert "ours says this" in text and "theirs says that" in text
    assert "title: Ours" in text and "title: Theirs" in text
    assert "<<<<<<<" not in text and ">>>>>>>" not in text
    merged = parse(result.data, "m.md")
    assert merged.fields["conflict"] is True and merged.title == "Ours"
    blocks = conflict_blocks(merged.body)
    assert [b.what for b in blocks] == ["body", "title"]
    assert blocks[0].versions == ["ours says this\n", "theirs says that\n"]


def test_resolve_keeps_the_chosen_version_and_clears_the_flag() -> None:
    base = make()
    ours = edit(base, body=lines_replaced(BODY, {3: "ours says this"}), title="Ours")
    theirs = edit(base, body=lines_replaced(BODY, {3: "theirs says that"}), title="Theirs")
    merged = merge_memory(base, ours, theirs).data
    second = parse(resolve_memory(merged, "2"), "m.md")
    assert second.title == "Theirs" and "theirs says that" in second.body
    assert "ours says this" not in second.body and "conflict" not in second.fields
    both = parse(resolve_memory(merged, "both"), "m.md")
    assert "ours says this\ntheirs says that\n" in both.body and both.title == "Ours"
    assert not has_conflict(resolve_memory(merged, "1"))


def test_edit_against_nothing_and_identical_sides() -> None:
    base = make()
    ours = edit(base, title="Changed")
    assert merge_memory(base, ours, base).data == ours
    assert merge_memory(base, base, ours).data == ours
    assert merge_memory(base, ours, ours).data == ours


def test_both_appended_lines_are_both_kept_without_a_conflict() -> None:
    base = make()
    ours = edit(base, body=BODY + "added by ours\n")
    theirs = edit(base, body=BODY + "added by theirs\n")
    result = merge_memory(base, ours, theirs)
    assert not result.conflict
    assert parse(result.data, "m.md").body == BODY + "added by ours\nadded by theirs\n"


def test_files_that_are_not_memories_still_merge_without_markers() -> None:
    base = b"no header\nline\n"
    result = merge_memory(base, b"no header\nours\n", b"no header\ntheirs\n")
    assert b"ours" in result.data and b"theirs" in result.data and result.conflict


# Properties

TOKENS = st.integers(min_value=0, max_value=10**6)


@st.composite
def side(draw: st.DrawFn, label: str) -> dict[str, object]:
    lines = draw(st.dictionaries(st.integers(0, 5), TOKENS, max_size=4))
    appended = draw(st.lists(TOKENS, max_size=2))
    title = draw(st.none() | TOKENS)
    added = draw(st.sets(st.sampled_from(["x", "y", "z"]), max_size=2))
    removed = draw(st.sets(st.sampled_from(["web", "db"]), max_size=2))
    return {
        "lines": {n: f"{label}-line-{t}" for n, t in lines.items()},
        "appended": [f"{label}-more-{t}" for t in appended],
        "title": None if title is None else f"{label} title {title}",
        "added": added,
        "removed": removed,
    }


def apply(base: bytes, change: dict[str, object]) -> bytes:
    body = lines_replaced(BODY, change["lines"])  # type: ignore[arg-type]
    body += "".join(f"{text}\n" for text in change["appended"])  # type: ignore[attr-defined]
    tags = [t for t in ("web", "db") if t not in change["removed"]]  # type: ignore[operator]
    tags += sorted(change["added"])  # type: ignore[call-overload]
    return edit(base, body=body, title=change["title"], tags=tags)  # type: ignore[arg-type]


@settings(max_examples=150)
@given(side("a"), side("b"))
def test_merges_are_symmetric_valid_and_lose_nothing(a: dict, b: dict) -> None:
    base = make()
    ours, theirs = apply(base, a), apply(base, b)
    result = merge_memory(base, ours, theirs)
    assert merge_memory(base, theirs, ours) == result
    merged = parse(result.data, "m.md")  # always a valid memory
    text = result.data.decode()
    assert "<<<<<<<" not in text and "=======" not in text
    for change in (a, b):
        for line in change["lines"].values():
            assert line in text
        for line in change["appended"]:
            assert line in text
        if change["title"] is not None:
            assert change["title"] in text
    expected = ({"web", "db"} - a["removed"] - b["removed"]) | a["added"] | b["added"]
    assert set(merged.tags) == expected
    clash = any(n in b["lines"] and b["lines"][n] != line for n, line in a["lines"].items()) or (
        a["title"] is not None and b["title"] is not None and a["title"] != b["title"]
    )
    assert result.conflict == clash
    if result.conflict:
        for keep in ("1", "2", "both"):
            resolved = resolve_memory(result.data, keep)
            assert not has_conflict(resolved)
            parse(resolved, "m.md")


@settings(max_examples=150)
@given(
    st.lists(st.sampled_from(["a\n", "b\n", "c\n", "d\n"]), max_size=8),
    st.lists(st.sampled_from(["a\n", "b\n", "c\n", "x\n"]), max_size=8),
    st.lists(st.sampled_from(["a\n", "b\n", "d\n", "y\n"]), max_size=8),
)
def test_line_merge_is_symmetric_and_keeps_unchanged_sides(
    base: list[str], ours: list[str], theirs: list[str]
) -> None:
    o, a, b = "".join(base), "".join(ours), "".join(theirs)
    merged, conflict = merge_lines(o, a, b)
    assert merge_lines(o, b, a) == (merged, conflict)
    assert merge_lines(o, a, o) == (a, False)
    assert merge_lines(o, o, b) == (b, False)


def test_nested_conflicts_resolve_completely() -> None:
    base = make()
    one = edit(base, body=lines_replaced(BODY, {2: "one"}))
    two = edit(base, body=lines_replaced(BODY, {2: "two"}))
    first = merge_memory(base, one, two).data
    three = edit(base, body=lines_replaced(BODY, {1: "three", 2: "three", 3: "three"}))
    nested = merge_memory(base, first, three)
    assert nested.conflict
    for keep in ("1", "2", "both"):
        resolved = resolve_memory(nested.data, keep)
        assert not has_conflict(resolved) and conflict_blocks(parse(resolved, "m").body) == []


def test_two_new_versions_of_one_memory_merge_without_a_base() -> None:
    ours = make(body="shared first line\nours\n")
    theirs = make(body="shared first line\ntheirs\n", tags=("web", "api"))
    result = merge_memory(None, ours, theirs)
    assert result == merge_memory(None, theirs, ours)
    merged = parse(result.data, "m.md")
    assert "ours" in merged.body and "theirs" in merged.body
    assert set(merged.tags) == {"web", "db", "api"}
