"""Duplicates on add, revisions with --update and --supersedes, and how superseded memories rank."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memstore import duplicates, relations, search
from memstore.errors import MemoryNotFoundError
from memstore.links import order_after_successors
from memstore.memory import new_memory
from memstore.report import CollectingReporter
from memstore.results import SearchHit
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem


def test_digest_ignores_case_punctuation_and_spacing() -> None:
    assert duplicates.digest("Use pytest, for the web tests!") == duplicates.digest(
        "use   PYTEST for the\nweb tests"
    )
    assert duplicates.digest("Use pytest") != duplicates.digest("Use unittest")


def test_similarity_of_rephrasings_and_of_different_texts() -> None:
    close = duplicates.similarity("We use pytest for web tests.", "Use pytest for the web tests")
    apart = duplicates.similarity("Use pytest for the web tests", "Use unittest for the api tests")
    assert close >= duplicates.SIMILAR > apart
    assert duplicates.similarity("", "anything") == 0.0


def test_exact_duplicate_is_warned_with_its_id_and_still_added(
    store: Store, reporter: CollectingReporter
) -> None:
    first = store.add("The staging database password rotates monthly.")
    second = store.add("the staging database password  rotates monthly")
    assert second.id != first.id and len(store.list()) == 2
    assert reporter.warnings == [
        f'this looks like a duplicate of {first.id} "{first.title}" (exact); it was added anyway:'
        f" use --update {first.id} or --supersedes {first.id} to revise a memory instead"
    ]


def test_similar_memory_is_reported_and_unrelated_one_is_not(
    store: Store, reporter: CollectingReporter
) -> None:
    first = store.add("Use pytest for the web tests: fixtures replace the setUp chains.")
    store.add("Deploys go out from main every Tuesday after the standup.")
    found = store.duplicates("We use pytest for web tests; fixtures replace setUp chains")
    assert [(d.id, d.kind) for d in found] == [(first.id, "similar")]
    assert 0.5 <= found[0].similarity < 1
    assert store.duplicates("The office plants need water on Fridays.") == []
    assert reporter.warnings == []


class _CountingReader:
    """An index reader that counts the postings read through it."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)

    def postings(self, fieldname: str, word: str) -> Any:
        ids = list(self.reader.postings(fieldname, word).all_ids())
        self.read += len(ids)
        return _Postings(ids)


class _Postings:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def all_ids(self) -> list[int]:
        return self.ids


def test_a_near_duplicate_is_found_by_its_rare_words_within_the_postings_budget(
    store: Store, clock: Clock
) -> None:
    common = "the deploy of the billing service needs a retry policy and a second reviewer"
    store.add_many(new_memory(f"{common}, check {n}", now=clock()) for n in range(30))
    target = store.add(f"Zanzibar gateway drops quokka tokens: {common}")
    text = f"The zanzibar gateway drops quokka tokens, so {common}"
    budget = 12  # below the 31 memories each common word is in
    with store.index.reading() as ix, ix.reader() as reader:
        words = search.rare_words(ix.schema, reader, text, duplicates.RARE_TERMS, budget)
        frequencies = [reader.doc_frequency("body", word) for word in words]
        counting = _CountingReader(reader)
        near = search.sharing_words(counting, words, duplicates.CANDIDATES)
        unbounded = _CountingReader(reader)
        every = search.rare_words(ix.schema, reader, text, duplicates.RARE_TERMS)
        search.sharing_words(unbounded, every, duplicates.CANDIDATES)
    assert len(words) >= 3 and frequencies == [1] * len(words)  # the rare words, each in one
    assert counting.read == sum(frequencies) <= budget
    assert unbounded.read > budget  # without the budget the common words are read too
    assert [item.id for item, _ in near] == [target.id]
    found = relations.duplicates(store, text, budget=budget)
    assert [(d.id, d.kind) for d in found] == [(target.id, "similar")]
    # The default budget is far above this store's counts: every word is read, the target first.
    assert store.duplicates(text)[0] == found[0]


def test_a_text_of_only_common_words_reads_no_postings_past_the_budget(
    store: Store, clock: Clock
) -> None:
    store.add_many(
        new_memory(f"deploy the billing service, run {n}", now=clock()) for n in range(8)
    )
    text = "deploy the billing service"
    with store.index.reading() as ix, ix.reader() as reader:
        assert search.rare_words(ix.schema, reader, text, 6, budget=7) == []
        assert len(search.rare_words(ix.schema, reader, text, 6, budget=8)) == 1
        assert len(search.rare_words(ix.schema, reader, text, 6, budget=16)) == 2
        assert len(search.rare_words(ix.schema, reader, text, 2)) == 2


def test_supersedes_records_the_old_id_and_is_not_a_duplicate_of_it(
    store: Store, reporter: CollectingReporter
) -> None:
    old = store.add("The API rate limit is 100 requests per minute.", tags=["api"])
    new = store.add("The API rate limit is 500 requests per minute.", supersedes=old.id[:12])
    assert new.fields["supersedes"] == [old.id]
    assert store.get(new.id).supersedes == [old.id]
    assert reporter.warnings == []
    text = (store.root / new.path).read_text()
    assert f"source: Test Person\nsupersedes:\n  - {old.id}\n---\n" in text


def test_supersedes_an_unknown_memory_adds_nothing(store: Store) -> None:
    with pytest.raises(MemoryNotFoundError):
        store.add("Something new", supersedes="0000000000000000000000000z")
    assert store.list() == []


def test_a_superseded_memory_ranks_below_its_successor(store: Store) -> None:
    old = store.add("Rate limit rate limit rate limit: the API allows 100 requests per minute.")
    store.add("Unrelated note about the rate limit of coffee consumption.")
    new = store.add("API rate: 500 requests per minute now (limit raised).")
    ids = [hit.id for hit in store.find("rate limit")]
    assert ids.index(old.id) < ids.index(new.id)  # the old one scores higher on its own
    # Say by hand, as in an editor, that the new one supersedes the old one.
    edited = store.get(new.id)
    edited.fields["supersedes"] = old.id
    (store.root / new.path).write_bytes(edited.to_bytes())
    hits = store.find("rate limit")
    ids = [hit.id for hit in hits]
    assert ids.index(new.id) + 1 == ids.index(old.id)
    assert hits[ids.index(old.id)].superseded_by == [new.id]
    assert hits[ids.index(new.id)].superseded_by == []


def _hit(memory_id: str) -> SearchHit:
    return SearchHit(memory_id, "", "", "note", [], "", 0.0, "")


def test_order_after_successors_handles_chains_and_absent_successors() -> None:
    hits = [_hit(name) for name in ("a", "x", "b", "c", "d")]
    # a is superseded by b, b by c; d by e, which was not found.
    ordered = order_after_successors(hits, {"a": ["b"], "b": ["c"], "d": ["e"]})
    assert [hit.id for hit in ordered] == ["x", "c", "b", "a", "d"]


def test_cli_add_json_lists_duplicates_and_warns_on_stderr(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    first = store.add("Use pytest for the web tests")
    result = run_mem("--store", str(store.root), "add", "We use pytest for web tests.", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(d["id"], d["kind"]) for d in data["duplicates"]] == [(first.id, "similar")]
    assert f"mem: warning: this looks like a duplicate of {first.id}" in result.stderr
    assert "it was added anyway" in result.stderr
    assert data["id"] in {m.id for m in store.list()}


def test_cli_add_update_revises_in_place(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    memory = store.add("Deploys happen on Tuesdays", tags=["ops"])
    args = ("--store", str(store.root), "add", "--update", memory.id[:10])
    result = run_mem(*args, "Deploys happen on Thursdays", "-t", "ops", "-t", "release")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"updated {memory.id}")
    updated = store.get(memory.id)
    assert updated.body == "Deploys happen on Thursdays\n" and updated.tags == ["ops", "release"]
    assert updated.path == memory.path and len(store.list()) == 1
    again = mem_ok(*args, "Deploys happen on Thursdays", "--json")
    assert json.loads(again.stdout) == {"changed": False, "memory": None}
    both = run_mem(*args, "x", "--supersedes", memory.id)
    assert both.returncode == 2  # a usage error
    assert both.stderr == "mem: error: give --update or --supersedes, not both\n"


def test_cli_add_supersedes_then_find_shows_it(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    old = store.add("The build uses Python 3.10")
    result = run_mem(
        "--store",
        str(store.root),
        "add",
        "The build uses Python 3.12 now",
        "--supersedes",
        old.id,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["supersedes"] == [old.id]
    assert "duplicate" not in result.stderr
    found = mem_ok("--store", str(store.root), "find", "build", "python")
    new_id = json.loads(result.stdout)["id"]
    assert f"superseded by {new_id}" in found.stdout
    assert found.stdout.index(new_id) < found.stdout.index(old.id)
    shown = mem_ok("--store", str(store.root), "show", old.id)
    assert f"superseded by {new_id}  The build uses Python 3.12 now" in shown.stdout
