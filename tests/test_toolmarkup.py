"""Tool-call markup leaked from a model into a value it saves (memstore/toolmarkup.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memstore.errors import InvalidInputError
from memstore.toolmarkup import check, find_leak, outside_code

ADD = ["text", "title", "tags", "type", "source", "session"]


def tag(name: str) -> str:
    """Markup built from its name, so that no tag is written out whole in this file."""
    return "<" + name + ">"


LEAKED = [
    # A value that ran past its own closing tag, into the next argument.
    ("title", "Deploy notes" + tag("/title"), tag("/title"), ""),
    ("title", "Deploy notes" + tag("/title") + "\nThey go out from main", tag("/title"), None),
    ("text", "Body" + tag("/text") + "\n" + tag("title") + "Deploy", tag("/text"), "title"),
    ("text", "Body" + tag("/TEXT") + tag("tags") + "ops", tag("/TEXT"), "tags"),
    ("tags", "ops" + tag("/tags"), tag("/tags"), ""),
    # Generic tool-call tags, wherever they are outside code.
    ("text", "Body" + tag("/parameter") + "\n" + tag('parameter name="title">x'), None, "title"),
    ("text", "Body\n" + tag("/parameter") + "\n" + tag("parameter=tags") + "\nops", None, "tags"),
    ("text", "Body " + tag('invoke name="add"') + " more", None, None),
    ("text", "Body " + tag("/invoke"), None, None),
    ("text", "Body " + tag("function_calls"), None, None),
    ("text", "Body " + tag("tool_call") + '{"name": "add"}', None, None),
    ("text", "Body " + tag("function=add"), None, None),
    ("text", "Body " + tag("/function"), None, None),
    ("text", "Body " + tag("ant" + "ml:invoke"), None, None),
    ("text", "Body " + tag("/ant" + "ml:function_calls"), None, None),
    ("text", "Body " + tag("x:parameter name='a'"), None, None),
    # An unclosed fence is not code: what follows it is still looked at.
    (
        "text",
        "```bash\nls\n" + tag("/parameter") + "\n" + tag('parameter name="tags"'),
        None,
        "tags",
    ),
]


@pytest.mark.parametrize(("field", "value", "markup", "parameter"), LEAKED)
def test_leaked_markup_is_found(
    field: str, value: str, markup: str | None, parameter: str | None
) -> None:
    leak = find_leak(field, value, ADD)
    assert leak is not None, value
    assert leak.field == field
    if markup is not None:
        assert leak.markup == markup
    if parameter == "":
        assert leak.swallowed == ""
    elif parameter is not None:
        assert leak.parameter == parameter
    assert leak.markup in value


KEPT = [
    "In the head, " + tag("title") + "Billing" + tag("/title") + " names the tab.",
    tag("div") + "a" + tag("/div") + " and " + tag("br") + " and " + tag("/p"),
    "Why " + tag("/title") + " must be escaped",  # mid-sentence, not the end of a value
    "```html\n" + tag("/title") + "\n" + tag("/parameter") + "\n" + tag("invoke") + "\n```\n",
    "~~~\n" + tag("/text") + "\n~~~",
    "Use `" + tag("/title") + "` and ``" + tag('parameter name="x"') + "``.",
    'SVG: <text x="4">Total' + tag("/text"),  # balanced: a tag of the same name opened it
    tag("parameters") + " and " + tag("invoker") + " and " + tag("functions") + " are other tags",
    "a < b and b > c; x</y",
    "The " + tag("/source") + " in mid-line, then words",
]


@pytest.mark.parametrize("value", KEPT)
def test_notes_with_html_xml_or_quoted_markup_are_kept(value: str) -> None:
    assert find_leak("text", value, ADD) is None


def test_only_the_tools_own_parameter_names_count() -> None:
    value = "Body" + tag("/summary")
    assert find_leak("text", value, ADD) is None
    assert find_leak("text", value, [*ADD, "summary"]) is not None


def test_check_names_the_field_and_what_was_swallowed() -> None:
    value = "Deploy notes" + tag("/title") + "\n" + tag("text") + "They go out from main"
    with pytest.raises(InvalidInputError) as refused:
        check("add", {"text": "fine", "title": value, "tags": None}, ADD)
    assert str(refused.value) == (
        "title holds leaked tool-call markup '</title>' followed by 27 characters that look like"
        " the text argument ('<text>They go out from main'): call add again with each value in"
        " its own argument (markup meant for the memory goes in `code`)"
    )
    with pytest.raises(InvalidInputError, match="^tags ends with leaked"):
        check("add", {"tags": ["web", "ops" + tag("/tags")]}, ADD)
    check("add", {"text": "fine", "tags": ["web"], "title": None}, ADD)


def test_a_long_swallowed_text_is_quoted_in_part() -> None:
    value = "x" + tag("/title") + "\n" + "word " * 100
    leak = find_leak("title", value, ADD)
    assert leak is not None and len(leak.swallowed) == 499
    assert "(" + repr("word " * 11 + "word…") + ")" in leak.message("add")


def test_outside_code_keeps_lengths_and_lines() -> None:
    text = "a `b` c\n```\ncode\n```\nd"
    blanked = outside_code(text)
    assert len(blanked) == len(text) and blanked.count("\n") == text.count("\n")
    assert blanked == "a     c\n   \n    \n   \nd"


@given(st.text(alphabet=st.characters(blacklist_characters="<")))
def test_text_without_a_tag_is_never_refused(value: str) -> None:
    assert find_leak("text", value, ADD) is None


@given(st.text(alphabet=st.characters(blacklist_characters="`")))
def test_anything_in_a_closed_code_block_is_kept(code: str) -> None:
    assert find_leak("text", "Example:\n```\n" + code + "\n```\n", ADD) is None
