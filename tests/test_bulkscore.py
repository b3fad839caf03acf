"""Bulk scoring (memstore/bulkscore.py) and kept segment readers (memstore/readercache.py).

Bulk scoring is checked against Whoosh itself on a real index with memstore's schema: several
segments, deleted memories, phrases, boosts and filters. The reference is Whoosh's collector
with its matcher replacement turned off (`replace=0`): with it on, Whoosh can drop a word's
score from a memory that has several of the query's words (see docs/search.md).
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh import collectors, index
from whoosh import query as q

from memstore import bulkscore, readercache, search
from memstore import query as questions
from memstore.index import build_schema
from memstore.memory import new_memory
from memstore.store import Store

WORDS = [
    "deploy",
    "staging",
    "connection",
    "pool",
    "timeout",
    "postgres",
    "redis",
    "cache",
    "invalidation",
    "pipeline",
    "rollback",
    "nginx",
    "config",
    "kafka",
    "consumer",
    "lag",
    "retry",
    "error",
    "refused",
    "budget",
    "museum",
    "decision",
    "ERR_CONNECTION_REFUSED",
    "connection_pool",
]
TAGS = ["ops", "db", "web", "infra", "team"]
NOW = datetime(2026, 5, 1, 12, 0)


@pytest.fixture(scope="module")
def whoosh_index(tmp_path_factory: pytest.TempPathFactory) -> index.Index:
    """400 memories in four segments (one written per 100), 30 of them deleted afterwards."""
    folder = tmp_path_factory.mktemp("bulk")
    ix = index.create_in(str(folder), build_schema())
    chance = random.Random(7)
    for start in range(0, 400, 100):
        writer = ix.writer()
        for n in range(start, start + 100):
            title = " ".join(chance.choices(WORDS, k=chance.randint(2, 6)))
            body = " ".join(chance.choices(WORDS, k=chance.randint(5, 60)))
            writer.add_document(
                path=f"memories/m{n}.md",
                id=f"m{n:04d}",
                title=title,
                body=body,
                tags=",".join(chance.sample(TAGS, chance.randint(0, 2))),
                type="note",
                created=NOW,
            )
        writer.commit(merge=False)
    writer = ix.writer()
    for n in chance.sample(range(400), 30):
        writer.delete_by_term("path", f"memories/m{n}.md")
    writer.commit(merge=False)
    assert len(ix._segments()) == 4 and ix.doc_count() == 370
    return ix


def reference(searcher, query, limit, terms=False, allowed=None):
    """Whoosh's own top hits, every match scored in full."""
    collector = collectors.TopCollector(limit=limit, usequality=False, replace=0)
    if allowed is not None:
        collector = collectors.FilterCollector(collector, allow=allowed)
    if terms:
        collector = collectors.TermsCollector(collector)
    searcher.search_with_collector(query, collector)
    return collector.results()


def same(expected, got, terms=False, exact_terms=True) -> None:
    """Same hits, same order, same scores (to the last bits of a sum); with terms, the terms
    each hit matched: the same for an Or of words, and at least Whoosh's otherwise (Whoosh
    records an And's or a phrase's words only where its walk stopped on the memory).

    Two memories whose scores are equal but for the last bits (the same word scores summed in
    another order: Whoosh's order differs from one index segment to the next) may come in
    either order, or either one last.
    """
    expected_scores = [hit.score for hit in expected]
    assert [hit.score for hit in got] == pytest.approx(expected_scores, rel=1e-12)
    for place, (mine, whooshs) in enumerate(zip(got, expected, strict=True)):
        if mine.docnum != whooshs.docnum:
            tied = [
                other.docnum
                for other in expected
                if other.score == pytest.approx(whooshs.score, rel=1e-12)
            ]
            last = expected_scores[-1] == pytest.approx(whooshs.score, rel=1e-12)
            assert mine.docnum in tied or last, f"hit {place}: {mine.docnum} for {whooshs.docnum}"
    assert len({hit.docnum for hit in got}) == len(list(got))  # no memory twice
    if terms:
        for hit in expected:
            if hit.docnum not in got.docterms:
                continue  # a tie at the end, taken the other way
            mine, whooshs = set(got.docterms[hit.docnum]), set(expected.docterms[hit.docnum])
            assert len(mine) == len(got.docterms[hit.docnum])
            assert mine == whooshs if exact_terms else mine >= whooshs


def parsed(ix, text):
    with ix.searcher() as searcher:
        plan = search.plan_query(ix.schema, text, NOW, searcher.reader())
    return plan.query


QUERIES = [
    "deploy staging",
    "deploy OR staging OR redis",
    '"connection pool"',
    "ERR_CONNECTION_REFUSED",
    '"connection pool" timeout',
    "title:deploy OR body:rollback^2",
    "deploy (staging OR postgres) cache",
    "tag:ops deploy",
]


@pytest.mark.parametrize("text", QUERIES)
@pytest.mark.parametrize("limit", [1, 10, 50])
def test_bulk_scores_give_whooshs_hits_and_scores(whoosh_index, text, limit):
    query = parsed(whoosh_index, text)
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        got = bulkscore.top(searcher, query, limit, None)
        assert got is not None
        expected = reference(searcher, query, limit)
        assert len(expected) > 0
        same(expected, got)
        assert len(got) == len(expected)  # every match counted, not only the top


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=2, max_size=5),
    shape=st.sampled_from(["and", "or", "phrase", "mixed"]),
    boost=st.sampled_from([1.0, 0.2, 3.0]),
    limit=st.integers(1, 60),
)
def test_bulk_scores_match_whoosh_on_any_query_of_words(whoosh_index, words, shape, boost, limit):
    schema = whoosh_index.schema
    analyzed = [schema["body"].process_text(word, mode="query") for word in words]
    terms = [next(iter(found)) for found in analyzed]

    def fields(term: str, boost: float = 1.0) -> q.Query:
        title = q.Term("title", term, boost=boost)
        return q.Or([title, q.Term("body", term), q.Term("tags", term)])

    if shape == "and":
        query: q.Query = q.And([fields(term, boost) for term in terms])
    elif shape == "or":
        query = q.Or([fields(term, boost) for term in terms], boost=boost)
    elif shape == "phrase":
        query = q.Or([q.Phrase("body", terms, boost=boost), q.Phrase("title", terms)])
    else:
        query = q.Or([fields(terms[0]), q.And([fields(term) for term in terms[1:]], boost=boost)])
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        got = bulkscore.top(searcher, query, limit, None)
        assert got is not None
        expected = reference(searcher, query, limit, terms=True)
        same(expected, got, terms=True, exact_terms=shape == "or")


def test_a_filter_keeps_only_allowed_memories(whoosh_index):
    query = parsed(whoosh_index, "deploy OR staging")
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        allowed = set(searcher.docs_for_query(q.Term("tags", "ops")))
        got = bulkscore.top(searcher, query, 20, allowed)
        assert got is not None and len(got) > 0
        assert {hit.docnum for hit in got} <= allowed
        same(reference(searcher, query, 20, allowed=allowed), got)


def test_deleted_memories_are_never_hits(whoosh_index):
    query = parsed(whoosh_index, "deploy OR staging OR redis OR cache")
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        got = bulkscore.top(searcher, query, 400, None)
        assert got is not None
        deleted = {d for d in range(searcher.doc_count_all()) if searcher.reader().is_deleted(d)}
        assert len(deleted) == 30
        assert not deleted & {hit.docnum for hit in got}
        same(reference(searcher, query, 400), got)


def test_other_query_shapes_are_left_to_whoosh(whoosh_index):
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        for text in ["dep*", "deploy NOT staging", "created:2026"]:
            query = search.parse_query(whoosh_index.schema, text, NOW)
            assert not bulkscore.worth_trying(searcher, query, 10), text
        # One word alone: Whoosh skips the blocks that cannot make the top, which is quicker.
        assert not bulkscore.worth_trying(searcher, q.Term("body", "deploy"), 10)
        # Too few postings to gain from numpy (the threshold is a count of postings).
        small = q.And([q.Term("body", "deploy"), q.Term("body", "staging")])
        assert min(bulkscore.BULK_MIN_POSTINGS, bulkscore.BULK_MIN_POSTINGS_LOADED) > 400
        assert not bulkscore.worth_trying(searcher, small, 10)
        assert not bulkscore.worth_trying(searcher, small, 0)


# Kept readers: what a long-lived process (the search service, the MCP server) sees.


def test_a_long_lived_process_sees_edits_deletions_and_new_memories(tmp_path: Path, clock) -> None:
    store = Store.init(tmp_path / "store", clock=clock)
    first = store.add("The staging deploy needs the VPN", title="Staging deploy")
    other = store.add("Redis cache warms up slowly", title="Redis cache")
    assert [hit.id for hit in store.find("staging")] == [first.id]
    kept = dict(readercache._readers)
    assert kept, "the search kept its segment readers"
    assert [hit.id for hit in store.find("redis")] == [other.id]
    # A search with nothing changed opens no reader: the same readers are used.
    assert all(readercache._readers[key] is reader for key, reader in kept.items())

    store.update(first.id, body="The production deploy needs the VPN", title="Production")
    assert store.find("staging") == []
    assert [hit.id for hit in store.find("production")] == [first.id]
    store.remove(other.id)
    assert store.find("redis") == []
    third = store.add("Staging again: the VPN is back", title="VPN")
    assert [hit.id for hit in store.find("staging")] == [third.id]
    before = {key[0] for key in readercache._readers}
    store.reindex()
    assert [hit.id for hit in store.find("staging")] == [third.id]
    assert [hit.id for hit in store.find("production")] == [first.id]
    # The rebuilt index is a new folder; the old folder's readers were closed, not kept.
    after = {key[0] for key in readercache._readers}
    mine = str(store.index.home)
    assert {f for f in after if f.startswith(mine)} and not {
        f for f in after if f.startswith(mine)
    } & before


def test_a_large_store_is_searched_in_bulk_with_the_same_results(tmp_path, clock):
    """Store.find takes the bulk path on a store large enough for it (numpy loaded, as in the
    search service), and gives the hits a full scoring gives, questions and phrases too."""
    import numpy  # noqa: F401  (loaded, as the search service loads it)

    store = Store.init(tmp_path / "store", clock=clock)
    chance = random.Random(11)
    common = WORDS[:6]  # few words, so that each matches most of the 1,200 memories
    memories = [
        new_memory(
            " ".join(chance.choices(common, k=chance.randint(5, 40))),
            now=clock(),
            title=" ".join(chance.choices(common, k=3)),
        )
        for _ in range(1200)
    ]
    store.add_many(memories)
    for text in [
        "deploy staging",
        '"connection pool" timeout',
        "how do I fix the connection timeout on staging?",
    ]:
        hits = store.find(text, limit=10)
        with store.index.reading() as ix, ix.searcher(weighting=questions.weighting()) as searcher:
            plan = search.plan_query(ix.schema, text, clock(), searcher.reader())
            if plan.question:
                plan.query = questions.expand(plan, searcher, store.read_body, None)
            pool = plan.pool(10)
            assert bulkscore.worth_trying(searcher, plan.query, pool), text
            expected = reference(searcher, plan.query, pool, terms=plan.min_match > 1)
            ids = [hit["id"] for hit in expected]
        assert hits, text
        if not plan.question:  # a question's hits are ranked again after (query.Plan.rank)
            assert [hit.id for hit in hits] == ids[:10], text
        assert {hit.id for hit in hits} <= set(ids), text


def test_searches_left_to_whoosh_score_every_match_in_full(whoosh_index):
    """Whoosh's default walk can leave a word's score out of a memory with several of the
    query's words; the search memstore runs when bulk scoring is not worth it does not."""
    wrong_by_default = 0
    with whoosh_index.searcher(weighting=questions.weighting()) as searcher:
        for first, second in [("deploy", "staging"), ("deploy", "connection"), ("redis", "nginx")]:
            for text in [f"{first} {second}", f"{first} OR {second}"]:
                query = parsed(whoosh_index, text)
                for limit in (1, 3, 10):
                    assert not bulkscore.worth_trying(searcher, query, limit)
                    expected = reference(searcher, query, limit)
                    same(expected, search._top(searcher, query, limit, None, False))
                    default = searcher.search(query, limit=limit)
                    wrong_by_default += [h.docnum for h in default] != [h.docnum for h in expected]
    assert wrong_by_default > 0, "the default walk was right everywhere: this test shows nothing"
