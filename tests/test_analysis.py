"""Tests for the code-aware analyzer, on the analyzer itself and through a real Whoosh index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from whoosh import index
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import FileIndex
from whoosh.qparser import QueryParser

from memstore.analysis import text_analyzer

DOCS = {
    "cpp": "Compiling C++ templates is slow",
    "csharp": "Porting C# code to F# modules",
    "plain_c": "Old C code and a note",
    "foobar": "Then call fooBar before the loop",
    "foo_dash_bar": "Install the foo-bar package",
    "foo_then_bar": "foo comes first, much later bar",
    "path": "see src/app.py:42 for details",
    "err": "Chrome says net::ERR_CONNECTION_REFUSED again",
    "err_words": "ERR: the connection was refused",
    "snake": "rename snake_case to camelCase",
    "http": "class HTTPServer2 handles requests",
    "version": "upgrade to v1.2.3 today",
    "old_version": "old release v1.2.4",
    "email": "write to user@example.com",
    "nginx": "reload nginx.conf after edits",
    "api": "GET /api/v1/users returns a list",
    "stem": "Many errors were fixed yesterday",
    "unicode": "Un café naïve à 東京タワー 🚀",
    "oauth": "login with OAuth2 in myApp.js",
}


def _schema() -> Schema:
    analyzer = text_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        body=TEXT(analyzer=analyzer, multitoken_query="phrase", phrase=True, stored=True),
    )


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileIndex]:
    path: Path = tmp_path_factory.mktemp("analysis-index")
    created = index.create_in(str(path), _schema())
    writer = created.writer()
    for doc_id, body in DOCS.items():
        writer.add_document(id=doc_id, body=body)
    writer.commit()
    # Reopen so the analyzer comes back from the pickled schema, as it does in production.
    reopened = index.open_dir(str(path))
    yield reopened
    reopened.close()


def _found(ix: FileIndex, querystring: str) -> set[str]:
    query = QueryParser("body", ix.schema).parse(querystring)
    with ix.searcher() as searcher:
        return {hit["id"] for hit in searcher.search(query, limit=None)}


def _tokens(text: str, mode: str) -> list[tuple[str, int]]:
    return [(t.text, t.pos) for t in text_analyzer()(text, positions=True, mode=mode)]


def _texts(text: str, mode: str = "index") -> list[str]:
    return [t.text for t in text_analyzer()(text, mode=mode)]


@pytest.mark.parametrize(
    ("querystring", "expected"),
    [
        # Odd characters stay atomic, and C++ is not C.
        ("C++", {"cpp"}),
        ("C#", {"csharp"}),
        ("F#", {"csharp"}),
        ("C", {"plain_c"}),
        # camelCase and hyphens: whole token, single part, and phrase over the parts.
        ("foobar", {"foobar"}),
        ("bar", {"foobar", "foo_dash_bar", "foo_then_bar"}),
        ("fooBar", {"foobar", "foo_dash_bar"}),
        ("foo-bar", {"foobar", "foo_dash_bar"}),
        ('"foo bar"', {"foobar", "foo_dash_bar"}),
        ("foo bar", {"foobar", "foo_dash_bar", "foo_then_bar"}),
        # Paths and file names.
        ("src/app.py", {"path"}),
        ("app.py", {"path"}),
        ("py", {"path"}),
        ('"see src/app.py:42 for"', {"path"}),
        ("nginx.conf", {"nginx"}),
        ("nginx", {"nginx"}),
        ("/api/v1/users", {"api"}),
        ("api/v1", {"api"}),
        # Error codes: a phrase over the parts, not just the three words anywhere.
        ("ERR_CONNECTION_REFUSED", {"err"}),
        ("err", {"err", "err_words"}),
        ("connection refused", {"err", "err_words"}),
        # snake_case, camelCase and letter/digit boundaries.
        ("snake_case", {"snake"}),
        ("camelCase", {"snake"}),
        ("camelcase", {"snake"}),
        ("case", {"snake"}),
        ("HTTPServer2", {"http"}),
        ("httpserver2", {"http"}),
        ("http", {"http"}),
        ("server", {"http"}),
        ("oauth2", {"oauth"}),
        ("myapp.js", {"oauth"}),
        ("app", {"path", "oauth"}),
        # Versions and addresses.
        ("v1.2.3", {"version"}),
        ("v1.2.4", {"old_version"}),
        ("user@example.com", {"email"}),
        ("example.com", {"email"}),
        ("users", {"api", "email"}),
        # Stemming of plain words.
        ("error", {"stem"}),
        ("fix", {"stem"}),
        ("fixes", {"stem"}),
        # Unicode letters, composed or decomposed.
        ("café", {"unicode"}),
        ("cafe\u0301", {"unicode"}),
        ("naïve", {"unicode"}),
        ("東京タワー", {"unicode"}),
    ],
)
def test_search_finds_exactly(ix: FileIndex, querystring: str, expected: set[str]) -> None:
    assert _found(ix, querystring) == expected


def test_schema_analyzer_survives_pickling(ix: FileIndex) -> None:
    assert ix.schema["body"].analyzer == text_analyzer()


def test_index_mode_emits_whole_token_and_parts() -> None:
    assert _tokens("fooBar baz", "index") == [("foobar", 0), ("foo", 0), ("bar", 1), ("baz", 2)]
    assert _tokens("see src/app.py:42 for", "index") == [
        ("see", 0),
        ("src/app.py:42", 1),
        ("src", 1),
        ("app", 2),
        ("py", 3),
        ("42", 4),
        ("for", 5),
    ]
    assert _tokens("ERR_CONNECTION_REFUSED", "index") == [
        ("err_connection_refused", 0),
        ("err", 0),
        ("connect", 1),
        ("refus", 2),
    ]


def test_camel_case_run_inside_a_compound_is_also_indexed_joined() -> None:
    assert _tokens("HTTPServer2 x", "index") == [
        ("httpserver2", 0),
        ("http", 0),
        ("server", 1),
        ("httpserver", 1),
        ("2", 2),
        ("x", 3),
    ]


def test_query_mode_emits_only_parts() -> None:
    assert _tokens("fooBar baz", "query") == [("foo", 0), ("bar", 1), ("baz", 2)]
    assert _texts("src/app.py", "query") == ["src", "app", "py"]
    assert _texts("HTTPServer2", "query") == ["http", "server", "2"]
    assert _texts("v1.2.3", "query") == ["v", "1", "2", "3"]
    assert _texts("user@example.com", "query") == ["user", "exampl", "com"]
    assert _texts("/api/v1/users", "query") == ["api", "v", "1", "user"]


@pytest.mark.parametrize("mode", ["index", "query"])
def test_atomic_code_words(mode: str) -> None:
    assert _texts("C++ C# F# objective-c++", mode)[:3] == ["c++", "c#", "f#"]
    assert _texts("C++11", mode) == ["c", "11"]
    assert _texts("objective-c++", "query") == ["object", "c++"]


def test_lowercase_and_stemming_of_alphabetic_tokens_only() -> None:
    assert _texts("HELLO World errors fixed") == ["hello", "world", "error", "fix"]
    # The whole compound keeps its form; its alphabetic parts are stemmed.
    assert _texts("fixed_errors") == ["fixed_errors", "fix", "error"]
    assert _texts("errors2") == ["errors2", "error", "2"]
    # No stop words are removed.
    assert _texts("the and of") == ["the", "and", "of"]


def test_sentence_punctuation_is_not_part_of_tokens() -> None:
    assert _texts("Done. Next, see: foo -- bar.") == ["done", "next", "see", "foo", "bar"]
    assert _texts("__init__") == ["init"]


def test_unicode_letters_and_symbols() -> None:
    # Text written without spaces is cut into overlapping character pairs.
    assert _texts("café naïve 東京タワー") == ["café", "naïv", "東京", "京タ", "タワ", "ワー"]
    assert _texts("cafe\u0301") == ["café"]
    assert _texts("ＦｏｏＢａｒ") == ["foobar", "foo", "bar"]
    assert _texts("🚀 ✨ -- !!! ... ❤️ ?") == []


@pytest.mark.parametrize("mode", ["index", "query"])
def test_chars_point_at_the_source_text(mode: str) -> None:
    text = "call fooBar in src/app.py now"
    tokens = [
        (t.text, t.startchar, t.endchar)
        for t in text_analyzer()(text, positions=True, chars=True, mode=mode)
    ]
    for term, start, end in tokens:
        assert text[start:end].lower() == term
    spans = {(start, end) for _, start, end in tokens}
    assert (5, 8) in spans and (8, 11) in spans  # foo, Bar
    assert (15, 18) in spans and (19, 22) in spans and (23, 25) in spans  # src, app, py
    assert ((5, 11) in spans) == (mode == "index")  # the whole fooBar


def test_long_compound_is_handled() -> None:
    assert len(_texts("a-" * 5000 + "a")) == 5002


def test_highlight_marks_part_inside_camel_case(ix: FileIndex) -> None:
    query = QueryParser("body", ix.schema).parse("bar")
    with ix.searcher() as searcher:
        hit = next(h for h in searcher.search(query) if h["id"] == "foobar")
        marked = hit.highlights("body", text=DOCS["foobar"])
    assert re.search(r'call foo<b class="match term\d+">Bar</b> before', marked), marked


def test_highlight_marks_whole_token(ix: FileIndex) -> None:
    query = QueryParser("body", ix.schema).parse("foobar")
    with ix.searcher() as searcher:
        hit = next(iter(searcher.search(query)))
        marked = hit.highlights("body", text=DOCS["foobar"])
    assert re.search(r'call <b class="match term\d+">fooBar</b> before', marked), marked
