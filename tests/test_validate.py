"""Tests for the front-matter schema check: which problems are found and on which file line."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from memstore import validate
from memstore.memory import FIELD_ORDER
from memstore.validate import schema_path, validate_header

MEMORY_ID = "01jd3x0k1m2n3p4q5r6s7t8v9w"
OTHER_ID = "01jd3x0k1m2n3p4q5r6s7t8v9x"
# In a file the header starts on line 2, after the opening '---'.
FIRST = 2

VALID = f"""\
id: {MEMORY_ID}
title: Use pytest for the web tests
type: decision
tags:
  - web
  - testing
created: 2026-11-21T10:55:17+01:00
source: alice
links:
  - {OTHER_ID}
supersedes: {OTHER_ID}
expires: 2027-01-31
"""


def header(**fields: str | None) -> str:
    """A valid header with some fields' text replaced, emptied ("") or removed (None)."""
    base: dict[str, str | None] = {
        "id": MEMORY_ID,
        "title": "A title",
        "type": "note",
        "tags": "[]",
        "created": "2026-11-21T10:55:17Z",
    }
    base.update(fields)
    lines = []
    for key, value in base.items():
        if value is None:
            continue
        if value.startswith("\n"):  # a block list, already laid out
            lines.append(f"{key}:{value}")
        else:
            lines.append(f"{key}: {value}\n" if value else f"{key}:\n")
    return "".join(lines)


def test_valid_header_has_no_problems() -> None:
    assert validate_header(VALID, FIRST) == []


def test_minimal_header_is_valid() -> None:
    assert validate_header(header(), FIRST) == []


@pytest.mark.parametrize(
    "created",
    [
        "2026-11-21T10:55:17Z",
        "2026-11-21T10:55:17+01:00",
        "2026-11-21T10:55:17-05:30",
        "2026-11-21T10:55:17.250+00:00",
    ],
)
def test_timestamps_with_seconds_and_offset_are_accepted(created: str) -> None:
    assert validate_header(header(created=created), FIRST) == []


@pytest.mark.parametrize(
    "created",
    [
        "2026-13-01",
        "2026-11-21",
        "2026-11-21T10:55Z",
        "2026-11-21T10:55:17",
        "2026-11-21 10:55:17Z",
    ],
)
def test_created_must_be_a_full_timestamp(created: str) -> None:
    problems = validate_header(header(created=created), FIRST)
    assert len(problems) == 1
    line, message = problems[0]
    assert line == 6
    assert message.startswith(f"created: '{created}' is not an ISO 8601 timestamp")


def test_created_message_matches_the_documented_form() -> None:
    assert validate_header(header(created="2026-13-01"), FIRST) == [
        (
            6,
            "created: '2026-13-01' is not an ISO 8601 timestamp with seconds and an offset"
            " (e.g. 2026-11-21T10:55:17+01:00)",
        )
    ]


def test_unknown_keys_are_allowed() -> None:
    text = header() + "project: memstore\nreviewed_by:\n  - bob\nnested: {a: 1, b: [x, y]}\n"
    assert validate_header(text, FIRST) == []


def test_own_type_is_allowed() -> None:
    assert validate_header(header(type="meeting-notes_v2"), FIRST) == []


def test_missing_required_field_is_reported_on_the_first_header_line() -> None:
    assert validate_header(header(created=None), FIRST) == [
        (FIRST, "missing required field 'created'")
    ]


def test_every_missing_required_field_is_named() -> None:
    problems = validate_header("title: Only a title\n", 5)
    assert problems == [
        (5, "missing required field 'id'"),
        (5, "missing required field 'type'"),
        (5, "missing required field 'tags'"),
        (5, "missing required field 'created'"),
    ]


def test_bad_id() -> None:
    assert validate_header(header(id="abc"), FIRST) == [
        (2, "id: 'abc' is not a valid memory id (26 lowercase Crockford base32 characters)")
    ]


@pytest.mark.parametrize(
    "bad_id",
    [
        MEMORY_ID.upper(),  # uppercase
        MEMORY_ID[:-1] + "u",  # u is not in Crockford base32
        MEMORY_ID[:-1],  # too short
    ],
)
def test_ids_outside_the_alphabet_or_length_are_rejected(bad_id: str) -> None:
    problems = validate_header(header(id=bad_id), FIRST)
    assert [line for line, _ in problems] == [2]
    assert "not a valid memory id" in problems[0][1]


def test_tag_with_space_points_at_the_list_item() -> None:
    text = header(tags="\n  - web\n  - web bug\n")
    assert validate_header(text, FIRST) == [
        (7, "tags[1]: 'web bug' must not contain spaces or commas")
    ]


def test_tag_with_comma_is_rejected() -> None:
    # In a block list a comma is part of the tag; in a flow list [a,b] it separates tags.
    problems = validate_header(header(tags="\n  - web,bug\n  - ok\n"), FIRST)
    assert problems == [(6, "tags[0]: 'web,bug' must not contain spaces or commas")]


def test_repeated_tag_points_at_the_repeat() -> None:
    text = header(tags="\n  - web\n  - bug\n  - web\n")
    assert validate_header(text, FIRST) == [(8, "tags[2]: 'web' is listed more than once")]


def test_empty_tag() -> None:
    text = header(tags="\n  - web\n  - ''\n")
    assert validate_header(text, FIRST) == [(7, "tags[1]: must not be empty")]


def test_tags_written_as_text_are_not_a_list() -> None:
    problems = validate_header(header(tags="web, bug"), FIRST)
    assert len(problems) == 1
    assert problems[0][0] == 5
    assert problems[0][1].startswith("tags: must be a list")


def test_unquoted_boolean_tag_says_to_quote_it() -> None:
    text = header(tags="\n  - web\n  - yes\n")
    assert validate_header(text, FIRST) == [
        (7, "tags[1]: yes is read as a boolean; put it in quotes")
    ]


def test_quoted_boolean_tag_is_a_string() -> None:
    assert validate_header(header(tags="\n  - 'yes'\n"), FIRST) == []


def test_empty_title() -> None:
    assert validate_header(header(title="''"), FIRST) == [(3, "title: must not be empty")]
    assert validate_header(header(title=""), FIRST) == [(3, "title: must not be empty")]
    assert validate_header(header(title="'   '"), FIRST) == [(3, "title: must not be empty")]


def test_numeric_title_says_to_quote_it() -> None:
    assert validate_header(header(title="2026"), FIRST) == [
        (3, "title: 2026 is read as a number; put it in quotes")
    ]


def test_bad_type() -> None:
    problems = validate_header(header(type="Decision"), FIRST)
    assert len(problems) == 1
    assert problems[0][0] == 4
    assert problems[0][1].startswith("type: 'Decision' is not a valid type")


def test_supersedes_accepts_one_id_or_a_list() -> None:
    assert validate_header(header() + f"supersedes: {OTHER_ID}\n", FIRST) == []
    assert validate_header(header() + f"supersedes:\n  - {OTHER_ID}\n", FIRST) == []


def test_supersedes_bad_item_points_at_the_item() -> None:
    text = header() + f"supersedes:\n  - {OTHER_ID}\n  - nope\n"
    assert validate_header(text, FIRST) == [
        (
            9,
            "supersedes[1]: 'nope' is not a valid memory id"
            " (26 lowercase Crockford base32 characters)",
        )
    ]


def test_supersedes_of_the_wrong_type() -> None:
    problems = validate_header(header() + "supersedes: {a: 1}\n", FIRST)
    assert problems == [
        (7, "supersedes: must be a memory id or a list of memory ids, not a mapping")
    ]


def test_bad_link() -> None:
    text = header() + "links:\n  - nope\n"
    problems = validate_header(text, FIRST)
    assert [line for line, _ in problems] == [8]
    assert problems[0][1].startswith("links[0]: 'nope' is not a valid memory id")


@pytest.mark.parametrize("expires", ["2027-01-31", "2027-01-31T00:00:00Z"])
def test_expires_date_or_timestamp(expires: str) -> None:
    assert validate_header(header(expires=expires), FIRST) == []


def test_bad_expires() -> None:
    problems = validate_header(header(expires="next week"), FIRST)
    assert len(problems) == 1
    assert problems[0][0] == 7
    assert problems[0][1].startswith("expires: 'next week' is not an ISO date or timestamp")


def test_empty_source() -> None:
    assert validate_header(header(source="''"), FIRST) == [(7, "source: must not be empty")]


def test_problems_are_sorted_by_line() -> None:
    text = header(id="abc", tags="\n  - a b\n", created="yesterday")
    problems = validate_header(text, FIRST)
    assert [line for line, _ in problems] == [2, 6, 7]
    assert problems[0][1].startswith("id:")
    assert problems[1][1].startswith("tags[0]:")
    assert problems[2][1].startswith("created:")


def test_first_line_offsets_every_line() -> None:
    text = header(id="abc")
    assert validate_header(text, 10)[0][0] == 10
    assert validate_header(header(title="''"), 10)[0][0] == 11


def test_comments_and_blank_lines_count_as_lines() -> None:
    text = "# written by hand\n\n" + header(type="Bad")
    problems = validate_header(text, FIRST)
    assert [line for line, _ in problems] == [6]


def test_duplicate_key_is_reported_on_the_second_occurrence() -> None:
    text = header() + "title: Another title\n"
    assert validate_header(text, FIRST) == [
        (7, "duplicate field 'title' (also on line 3); only the last one counts")
    ]


def test_problem_in_a_duplicated_key_points_at_the_one_that_counts() -> None:
    text = header() + "type: Bad\n"
    problems = validate_header(text, FIRST)
    assert [line for line, _ in problems] == [7, 7]
    assert problems[0][1].startswith("duplicate field 'type'")
    assert problems[1][1].startswith("type: 'Bad' is not a valid type")


def test_repeated_merge_keys_are_not_duplicates() -> None:
    # Every '<<' key of a mapping is merged, so writing two is not a mistake.
    text = header() + "a: &a {x: 1}\nb: &b {y: 2}\n<<: *a\n<<: *b\n"
    assert validate_header(text, FIRST) == []


def test_yaml_syntax_error_is_one_problem_on_its_line() -> None:
    text = f"id: {MEMORY_ID}\ntitle: a: b\ntype: note\n"
    problems = validate_header(text, FIRST)
    assert len(problems) == 1
    assert problems[0][0] == 3
    assert problems[0][1].startswith("invalid YAML:")


def test_unclosed_quote_points_where_it_opens_not_at_the_end() -> None:
    text = f"id: {MEMORY_ID}\ntitle: 'unclosed\ntype: note\ntags: []\n"
    problems = validate_header(text, FIRST)
    assert len(problems) == 1
    assert problems[0][0] == 3


def test_tab_indentation_is_explained() -> None:
    problems = validate_header(f"id: {MEMORY_ID}\n\ttitle: x\n", FIRST)
    assert problems == [
        (3, "invalid YAML: a tab cannot be used here (indent and separate with spaces)")
    ]


def test_control_character_is_one_problem() -> None:
    problems = validate_header(f"id: {MEMORY_ID}\ntitle: bell\x07\n", FIRST)
    assert problems == [(3, "invalid YAML: character U+0007 is not allowed in a YAML file")]


def test_bad_explicit_tag_value_is_one_problem() -> None:
    problems = validate_header(header() + "count: !!int many\n", FIRST)
    assert len(problems) == 1
    assert problems[0][1].startswith("invalid YAML value:")


@pytest.mark.parametrize(
    ("text", "line", "kind"),
    [("- a\n- b\n", 2, "a list"), ("# note\njust text\n", 3, "a string")],
)
def test_header_that_is_not_a_mapping(text: str, line: int, kind: str) -> None:
    assert validate_header(text, FIRST) == [
        (line, f"front-matter must be a mapping of 'field: value' lines, not {kind}")
    ]


@pytest.mark.parametrize("text", ["", "\n", "# nothing here\n"])
def test_empty_header(text: str) -> None:
    problems = validate_header(text, FIRST)
    assert len(problems) == 1
    assert problems[0][0] == FIRST
    assert problems[0][1].startswith("front-matter is empty")


def test_crlf_header_lines_are_counted_once() -> None:
    text = header(type="Bad").replace("\n", "\r\n")
    assert [line for line, _ in validate_header(text, FIRST)] == [4]


def test_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["id", "title", "type", "tags", "created"]
    assert schema["additionalProperties"] is True


def test_every_schema_property_is_described() -> None:
    schema = validate.load_schema()
    undescribed = [
        name for name, spec in schema["properties"].items() if not spec.get("description")
    ]
    assert undescribed == []
    assert tuple(schema["properties"]) == FIELD_ORDER


def test_schema_is_read_once() -> None:
    assert validate.load_schema() is validate.load_schema()
