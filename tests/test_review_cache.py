"""`mem diff` over a large range keeps the files it parsed by blob id (blobcache.py)."""

from __future__ import annotations

import marshal
from pathlib import Path

import pyrage

from memstore import blobcache, gitrepo, review
from memstore.memory import new_memory
from memstore.store import Store
from tests.conftest import Clock, mem_ok

MANY = blobcache.MIN_BLOBS + 20


def head(store: Store) -> str:
    return str(store.repo.head.target)


def cache_file(store: Store) -> Path:
    return store.git_dir / "memstore" / blobcache.CACHE_FILE


def add_many(store: Store, clock: Clock, count: int = MANY, word: str = "note") -> None:
    """count memories in one commit (store.add would make a commit each)."""
    files = {}
    for number in range(count):
        memory = new_memory(
            f"The {word} number {number}\n\nSecond line of {word} {number}.",
            now=clock(),
            title=f"{word.capitalize()} {number}",
            tags=["bulk", f"group-{number % 5}"],
            source=None if number % 50 else "import",
        )
        files[memory.path] = memory.to_bytes()
    gitrepo.commit_files(store.repo, files, f"add {count} memories", clock())


def outputs(store: Store, start: str) -> tuple[str, str, dict[str, object]]:
    result = store.diff(f"{start}..HEAD")
    return review.render_text(result), review.render_markdown(result), review.render_json(result)


def test_a_large_range_is_read_back_from_the_cache_as_it_was_parsed(
    store: Store, clock: Clock
) -> None:
    start = head(store)
    add_many(store, clock)
    first = outputs(store, start)
    assert cache_file(store).is_file()
    kept = marshal.loads(cache_file(store).read_bytes())[1]
    assert len(kept) == MANY
    assert oct(cache_file(store).stat().st_mode & 0o777) == "0o600"
    again = outputs(store, start)
    assert again == first
    cache_file(store).unlink()  # safe to delete: the same answer, read the long way
    assert outputs(store, start) == first
    assert first[0].count("\nadded   ") == MANY
    assert "+Second line of note 7." in first[0]


def test_edits_across_a_large_range_are_classified_from_the_cache(
    store: Store, clock: Clock
) -> None:
    made = clock()
    edited = new_memory("Kept across the range", now=made, tags=["bulk"])
    gitrepo.commit_files(store.repo, {edited.path: edited.to_bytes()}, "add one", clock())
    start = head(store)
    add_many(store, clock, word="alpha")
    middle = head(store)
    renamed = new_memory(
        "Kept across the range",
        now=made,
        title="Renamed one",
        tags=["bulk", "moved"],
        type="decision",
        memory_id=edited.id,
    )
    gitrepo.commit_files(store.repo, {edited.path: renamed.to_bytes()}, "edit one", clock())
    outputs(store, start)  # parses every file of the range into the cache
    result = store.diff(f"{middle}..HEAD")  # one file: the cache is left alone
    (change,) = result.changes
    assert change.kinds == ["retitled", "retagged", "retyped"]
    add_many(store, clock, word="beta")
    cached = store.diff(f"{middle}..HEAD")
    cache_file(store).unlink()
    fresh = store.diff(f"{middle}..HEAD")
    assert review.render_json(cached) == review.render_json(fresh)
    changed = [c for c in cached.changes if c.id == edited.id]
    assert changed[0].kinds == ["retitled", "retagged", "retyped"]


def test_a_small_range_does_not_write_the_cache(store: Store, clock: Clock) -> None:
    start = head(store)
    add_many(store, clock, count=blobcache.MIN_BLOBS - 1)
    store.diff(f"{start}..HEAD")
    assert not cache_file(store).exists()


def test_a_damaged_or_other_version_s_cache_is_started_afresh(store: Store, clock: Clock) -> None:
    start = head(store)
    add_many(store, clock)
    first = outputs(store, start)
    stamp, kept = marshal.loads(cache_file(store).read_bytes())
    # Another version's entries, wrong for these blobs: never used.
    wrong = {blob: ({"id": "x", "title": "Wrong"}, "wrong body\n") for blob in kept}
    cache_file(store).write_bytes(marshal.dumps(("0:" + stamp, wrong)))
    assert outputs(store, start) == first
    assert marshal.loads(cache_file(store).read_bytes()) == (stamp, kept)
    for damage in (b"", b"\x00garbage", cache_file(store).read_bytes()[:1000]):
        cache_file(store).write_bytes(damage)
        assert outputs(store, start) == first
    cache_file(store).write_bytes(marshal.dumps((stamp, {blob: "not an entry" for blob in kept})))
    assert outputs(store, start) == first


def test_encrypted_memories_are_never_kept(store: Store, clock: Clock) -> None:
    identity = pyrage.x25519.Identity.generate()
    start = head(store)
    memory = new_memory("The vault opens with zebracanary", now=clock(), title="Vault")
    path = f"memories/2026/11/{memory.id}.md.age"
    cipher = pyrage.encrypt(memory.to_bytes(), [identity.to_public()])
    gitrepo.commit_files(store.repo, {path: cipher}, "add encrypted", clock())
    add_many(store, clock)
    result = review.compare(
        store.repo,
        start,
        head(store),
        decrypt=lambda data, _: pyrage.decrypt(data, [identity]),
    )
    assert "+The vault opens with zebracanary" in review.render_text(result)
    data = cache_file(store).read_bytes()
    assert b"zebracanary" not in data and b"Second line of note 3." in data
    # Without the key, the same cache: the encrypted memory is named by id only.
    text = review.render_text(review.compare(store.repo, start, head(store)))
    assert memory.id in text and "zebracanary" not in text


def test_the_cli_gives_the_same_output_with_and_without_the_cache(
    store: Store, clock: Clock
) -> None:
    start = head(store)
    add_many(store, clock)
    forms = [["diff", start], ["diff", "--format", "md", start], ["diff", "--json", start]]
    fresh = []
    for args in forms:
        if cache_file(store).exists():
            cache_file(store).unlink()
        fresh.append(mem_ok("--store", str(store.root), *args).stdout)
    assert cache_file(store).is_file()
    assert [mem_ok("--store", str(store.root), *args).stdout for args in forms] == fresh
