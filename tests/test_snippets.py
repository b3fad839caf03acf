"""Snippets (memstore/snippets.py) against Whoosh's own highlighter.

The reference is the path Whoosh's `Hit.highlights` takes for a fragmenter that reads the
whole text again, with the settings memstore's snippets had when Whoosh made them: the field's
analyzer at index time, matched tokens marked and merged, a `ContextFragmenter(maxchars=200,
surround=60, charlimit=0)`, the basic fragment scorer, the top two passages in text order.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh import highlight, index

from memstore import query as questions
from memstore import search, snippets
from memstore.analysis import index_pieces, text_analyzer
from memstore.index import build_schema
from memstore.results import Filters
from memstore.text import lead, one_line

# Plain words, compounds that split into parts, camelCase, code suffixes, CJK runs, numbers.
PIECES = [
    "deploy",
    "Deploying",
    "staging",
    "connection",
    "pool",
    "src/app.py",
    "fooBar",
    "HTTPServer",
    "C++",
    "C#",
    "OAuth2",
    "ERR_CONNECTION_REFUSED",
    "connection_pool",
    "デプロイ",
    "東京",
    "café",
    "2026",
    "v1.2.3",
    "x" * 230,  # one word longer than a passage
]
GLUE = [" ", " ", " ", ". ", ", ", "\n", "\n\n", " - ", "... ", "("]


class Marks(highlight.Formatter):
    def __init__(self, marks: tuple[str, str]) -> None:
        self.marks = marks
        self.between = " … "

    def format_token(self, text, token, replace=False):
        return f"{self.marks[0]}{highlight.get_text(text, token, replace)}{self.marks[1]}"


def whoosh_highlight(text: str, words: frozenset[str], marks: tuple[str, str]) -> str:
    """What `Highlighter.highlight_hit` makes of text with these settings."""
    tokens = text_analyzer()(text, positions=True, chars=True, mode="index", removestops=False)
    tokens = highlight.set_matched_filter(tokens, words)
    tokens = highlight.Highlighter._merge_matched_tokens(tokens)
    fragmenter = highlight.ContextFragmenter(maxchars=200, surround=60, charlimit=0)
    fragments = fragmenter.fragment_tokens(text, tokens)
    best = highlight.top_fragments(
        fragments, 2, highlight.BasicFragmentScorer(), highlight.FIRST, minscore=1
    )
    return Marks(marks).format(best)


texts = st.lists(
    st.tuples(st.sampled_from(PIECES), st.sampled_from(GLUE)), min_size=0, max_size=120
).map(lambda parts: "".join(word + glue for word, glue in parts))


@settings(max_examples=300, deadline=None)
@given(text=texts, chosen=st.data(), marks=st.sampled_from([("**", "**"), ("[", "]"), ("", "")]))
def test_snippets_are_whooshs_passages_character_for_character(text, chosen, marks):
    terms = sorted({term for term, _, _ in index_pieces(text)})
    words = frozenset(chosen.draw(st.lists(st.sampled_from(terms or ["deploy"]), max_size=4)))
    words |= {"absent"}
    assert snippets.highlight(text, words, marks) == whoosh_highlight(text, words, marks)


def test_passages_are_cut_scored_and_ordered_as_whoosh_cuts_them():
    # Three passages far apart; the two with the most distinct words win, shown in text order.
    filler = " ".join(["lorem"] * 40)
    text = f"deploy once. {filler} deploy staging twice. {filler} staging pool deploy here."
    words = frozenset({"deploy", "stage", "pool"})
    got = snippets.highlight(text, words, ("[", "]"))
    assert got == whoosh_highlight(text, words, ("[", "]"))
    assert got.count(" … ") == 1
    assert "[deploy] [staging] twice" in got and "[staging] [pool] [deploy]" in got
    assert "[deploy] once" not in got


def test_no_word_to_mark_gives_no_snippet():
    assert snippets.highlight("deploy staging", frozenset(), ("*", "*")) == ""
    assert snippets.highlight("deploy staging", frozenset({"pool"}), ("*", "*")) == ""


def test_index_pieces_are_the_analyzers_tokens_at_index_time():
    text = "Deploy src/app.py with fooBar, C++ and デプロイ; HTTPServer OAuth2 café"
    expected = [
        (t.text, t.startchar, t.endchar)
        for t in text_analyzer()(text, chars=True, mode="index", removestops=False)
    ]
    assert list(index_pieces(text)) == expected
    assert ("app", 11, 14) in expected  # a compound's parts come with their own offsets


def test_search_snippets_equal_whooshs_hit_highlights(tmp_path: Path) -> None:
    """Through a real index: every hit's snippet from `search.search` is what Whoosh's
    `Hit.highlights` gives, for keyword, phrase and prefix queries."""
    ix = index.create_in(str(tmp_path), build_schema())
    chance = random.Random(3)
    bodies = {}
    writer = ix.writer()
    for n in range(120):
        body = "".join(
            chance.choice(PIECES[:-1]) + chance.choice(GLUE) for _ in range(chance.randint(5, 90))
        )
        bodies[f"memories/m{n}.md"] = body
        writer.add_document(
            path=f"memories/m{n}.md",
            id=f"m{n:04d}",
            title=f"note {n}",
            body=body,
            type="note",
            created=datetime(2026, 5, 1),
        )
    writer.commit()
    marks = ("<<", ">>")
    now = datetime(2026, 6, 1)
    for text in ["deploy staging", '"connection pool"', "app.py", "deplo*", "fooBar OR 東京"]:
        hits = search.search(ix, text, Filters(), 10, bodies.get, marks, now)
        assert hits, text
        with ix.searcher(weighting=questions.weighting()) as searcher:
            plan = search.plan_query(ix.schema, text, now, searcher.reader())
            results = search._top(searcher, plan.query, plan.pool(10), None, plan.min_match > 1)
            results.fragmenter = highlight.ContextFragmenter(maxchars=200, surround=60, charlimit=0)
            results.formatter = Marks(marks)
            expected = {
                hit["id"]: hit.highlights("body", text=bodies[hit["path"]], top=2)
                for hit in results
            }
        for hit in hits:
            body = bodies[hit.path]
            assert hit.snippet == (one_line(expected[hit.id]) or lead(body)), (text, hit.id)
        assert any("<<" in hit.snippet for hit in hits), text
