"""The semantic extra: questions matched by meaning with a model that ships in a package."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memstore import semantic
from memstore.memory import new_memory
from memstore.report import CollectingReporter
from memstore.store import Store

TZ = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)

INSTRUMENTS = [
    "user: I finally bought a Fender Stratocaster and a Yamaha FG800 acoustic",
    "user: my Korg B1 digital piano needs a new power cable",
]
OTHERS = [
    "user: The weather in Lisbon was sunny all week",
    "user: I need to renew my passport before June",
    "user: we booked a table at the Italian place for Friday",
    "user: the dentist moved my appointment to Thursday",
]
QUESTION = "How many musical instruments do I currently own?"


@pytest.fixture(autouse=True)
def _meaning_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extra is installed with the test extra; conftest turns it off for every other test."""
    monkeypatch.setenv("MEM_SEMANTIC", "1")


def _store(root: Path, texts: list[str]) -> tuple[Store, list[str]]:
    store = Store.init(root, clock=lambda: NOW)
    made = [new_memory(text, now=NOW - timedelta(days=3 + i)) for i, text in enumerate(texts)]
    store.add_many(made)
    return store, [memory.id for memory in made]


def _folder(store: Store) -> Path:
    with store.index.reading() as ix:
        return Path(ix.storage.folder)  # type: ignore[attr-defined]


def test_the_extra_is_installed_and_loads_offline_once_per_process() -> None:
    assert semantic.available()
    assert semantic.model() is semantic.model()
    vectors = semantic.model().embed(["a guitar", "a Stratocaster", "a passport"])
    assert vectors.shape == (3, semantic.DIM)
    # Closer in meaning, closer in space: the check that real weights were loaded.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_a_question_finds_memories_that_share_no_word_with_it(tmp_path: Path) -> None:
    store, ids = _store(tmp_path / "store", INSTRUMENTS + OTHERS)
    found = [hit.id for hit in store.find(QUESTION)]
    assert found[0] == ids[0]
    assert not set(found) & set(ids[2:])  # nothing far in meaning comes with it
    # A keyword query still means its words: nothing has them.
    assert store.find("musical instruments") == []


def test_vectors_follow_the_index_in_its_own_folder(tmp_path: Path) -> None:
    store, ids = _store(tmp_path / "store", INSTRUMENTS + OTHERS)
    folder = _folder(store)
    assert folder.parent == store.root / ".git" / "memstore"  # never committed
    assert semantic.kept(folder)
    rows = (folder / semantic.KEYS).stat().st_size // semantic.KEY_BYTES
    assert rows == len(ids)
    # A new memory adds its row; an edited one adds the new text's row, and the old row is
    # skipped: the edited memory is found by its new meaning only.
    store.add_many([new_memory("user: got a Gibson Les Paul today", now=NOW)])
    edited = store.update(ids[1], body="user: the cat needs her vaccinations renewed")
    assert edited is not None
    assert (folder / semantic.KEYS).stat().st_size // semantic.KEY_BYTES == rows + 2
    found = [hit.id for hit in store.find(QUESTION)][:3]
    assert ids[0] in found
    assert edited.id not in found[:2]
    # A rebuild starts a new folder with one row per memory.
    store.index.rebuild()
    rebuilt = _folder(store)
    assert rebuilt != folder
    assert (rebuilt / semantic.KEYS).stat().st_size // semantic.KEY_BYTES == len(ids) + 1


def test_an_encrypted_memory_leaves_no_text_in_the_vector_files(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "store", clock=lambda: NOW)
    store.key_init()
    secret = store.add("user: my Stratocaster is insured by Zorblatt Mutual", encrypt=True)
    store.add("user: The weather in Lisbon was sunny all week")
    folder = _folder(store)
    stored = (folder / semantic.KEYS).read_bytes() + (folder / semantic.VECTORS).read_bytes()
    assert b"Zorblatt" not in stored and b"Stratocaster" not in stored
    assert secret.id.encode() in (folder / semantic.KEYS).read_bytes()
    assert [hit.id for hit in store.find("what guitar do I have insured?")][0] == secret.id


def test_without_the_extra_everything_works_as_before(tmp_path: Path) -> None:
    store, ids = _store(tmp_path / "store", INSTRUMENTS + OTHERS)
    store.index.invalidate()
    # A process where the extra's package cannot be found, as if it were not installed.
    script = f"""
import sys
sys.modules["wordllama"] = None
from pathlib import Path
from memstore.store import Store
import pytest

from memstore import semantic
store = Store.open(Path({str(store.root)!r}))
assert not semantic.available()
print(len(store.find("Lisbon weather")), len(store.find({QUESTION!r})))
with store.index.reading() as ix:
    print(semantic.kept(ix.storage.folder), "numpy" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "False", "False"]


def test_a_keyword_query_does_not_load_the_model(tmp_path: Path) -> None:
    store, _ = _store(tmp_path / "store", INSTRUMENTS + OTHERS)
    script = f"""
import sys
from pathlib import Path
from memstore.store import Store
store = Store.open(Path({str(store.root)!r}))
print(len(store.find("Stratocaster")), "numpy" in sys.modules, "tokenizers" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "False"]


def test_mem_semantic_0_turns_meaning_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, ids = _store(tmp_path / "store", INSTRUMENTS + OTHERS)
    monkeypatch.setenv("MEM_SEMANTIC", "0")
    store.index.rebuild()
    assert not semantic.kept(_folder(store))
    assert store.find(QUESTION) == []  # no word of it is in any memory
    monkeypatch.delenv("MEM_SEMANTIC")
    reporter = CollectingReporter()
    store = Store(store.root, clock=lambda: NOW, reporter=reporter)
    assert store.find(QUESTION)[0].id == ids[0]  # the index is rebuilt with vectors first
    assert reporter.notices == ["search index has no vectors for the semantic extra: rebuilding it"]


def test_ordinary_questions_keep_their_word_matches_first(tmp_path: Path) -> None:
    texts = [
        "The chat service is configured in deploy/chat.yaml: port 8443 and the Redis URL",
        "Where is the billing service? It runs on the second cluster and is configured by ops",
        "The search service is configured with two replicas; the index is where it is",
        "Note to self: the service desk is where the printer is",
        "Lunch is at noon; the team is where the food is",
    ]
    store, ids = _store(tmp_path / "store", texts)
    assert store.find("where is the chat service configured?")[0].id == ids[0]


def test_a_rebuild_by_two_processes_keeps_the_vectors_one_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = _store(tmp_path / "store", (INSTRUMENTS + OTHERS) * 3)
    files = (semantic.VECTORS, semantic.BITS, semantic.KEYS)
    kept = {}
    for processes in ("1", "2"):
        monkeypatch.setenv("MEM_REINDEX_PROCESSES", processes)
        store.index.rebuild()
        assert store.index.processes == int(processes)
        kept[processes] = [(_folder(store) / name).read_bytes() for name in files]
    # The second process's rows come back in the order of the memories, as one process has them.
    assert kept["2"] == kept["1"]
    assert len(kept["2"][2]) == 18 * semantic.KEY_BYTES
