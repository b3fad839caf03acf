"""A question stays a question whatever its punctuation; only deliberate syntax makes a query."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memstore.errors import QuerySyntaxError
from memstore.memory import new_memory
from memstore.query import is_question
from memstore.store import Store
from tests.conftest import run_mem

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=timezone(timedelta(hours=1)))

MEMORIES = {
    "moma": "We spent Saturday at the Museum of Modern Art (MoMA); the Matisse room was closed",
    "louvre": "The Louvre queue took two hours, so book the museum tickets online next time",
    "budget": "My budget for the Lisbon trip is 1,800 euros, flights included",
    "flights": "Flights to Lisbon leave from gate 12; check in online the day before",
    "cors": "CORS errors on /api came from the missing Vary header; fixed in nginx.conf",
    "csp": "CSP blocks inline scripts on the web admin pages; move them to static files",
    "vary": "The web cache ignores the Vary header unless nginx sends it",
}


@pytest.fixture
def store(tmp_path: Path) -> tuple[Store, dict[str, str]]:
    store = Store.init(tmp_path / "store", clock=lambda: NOW)
    memories = {
        name: new_memory(text, now=NOW - timedelta(days=number + 1))
        for number, (name, text) in enumerate(MEMORIES.items())
    }
    store.add_many(list(memories.values()))
    return store, {memory.id: name for name, memory in memories.items()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Punctuation that sentences use: still questions.
        ("what did I think of the Museum of Modern Art (MoMA)?", True),
        ("my budget - what was it", True),
        ("what did we say about the web (cors setup", True),
        ("which flights + hotels did I book", True),
        ("how long did the queue take ~ two hours?", True),
        # Deliberate syntax: queries.
        ("(web OR cors) AND nginx", False),
        ("(cors nginx) OR vary header", False),
        ('the "vary header" and nginx config', False),
        ("tag:web what did we fix there", False),
        ("what did we fix in cor* last week", False),
        ("web (cors", False),  # a few words: keywords, whose parentheses must pair up
    ],
)
def test_only_deliberate_syntax_turns_a_question_into_a_query(text: str, expected: bool) -> None:
    assert is_question(text) is expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did I go to the Museum of Modern Art (MoMA)?", "moma"),
        ("my budget - what was it", "budget"),
    ],
)
def test_a_question_with_parentheses_or_a_dash_finds_its_memory(
    store: tuple[Store, dict[str, str]], question: str, expected: str
) -> None:
    found, names = store
    hits = found.find(question)
    assert hits, f"{question!r} found nothing"
    assert names[hits[0].id] == expected


def test_unbalanced_parentheses_in_a_question_are_punctuation(
    store: tuple[Store, dict[str, str]],
) -> None:
    found, names = store
    hits = found.find("what did we say about the CORS errors (on the api")
    assert hits and names[hits[0].id] == "cors"


def test_grouped_operators_still_work_as_syntax(store: tuple[Store, dict[str, str]]) -> None:
    found, names = store
    assert sorted(names[hit.id] for hit in found.find("(web OR cors) AND nginx")) == [
        "cors",
        "vary",
    ]
    # The group is kept: without it, AND binds first and `web` alone would match csp.
    assert "csp" in {names[hit.id] for hit in found.find("web OR cors AND nginx")}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("web (cors", "the query 'web (cors' has an unclosed parenthesis: close the group with )"),
        ("web cors)", "the query 'web cors)' has a ) with no ( before it"),
        ("(web OR cors AND nginx", "has an unclosed parenthesis"),
        ("tag:web (cors nginx vary header", "has an unclosed parenthesis"),
    ],
)
def test_a_keyword_query_with_unpaired_parentheses_is_a_usage_error(
    store: tuple[Store, dict[str, str]], query: str, message: str
) -> None:
    found, _ = store
    with pytest.raises(QuerySyntaxError) as raised:
        found.find(query)
    assert message in str(raised.value)
    result = run_mem("--store", str(found.root), "find", query)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("mem: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_a_parenthesis_inside_a_phrase_is_a_word_not_a_group(
    store: tuple[Store, dict[str, str]],
) -> None:
    found, names = store
    assert [names[hit.id] for hit in found.find('"Modern Art (MoMA"')] == ["moma"]
