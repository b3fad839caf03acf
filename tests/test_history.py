"""Time travel on a store with a real history: --as-of, a memory's life, removed memories,
restore, diff --since, and freshness (expires, age)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from memstore import history
from memstore.errors import InvalidInputError, MemoryNotFoundError
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem


def day(store: Store, clock: Clock) -> None:
    """Move the store's clock on a day (commit times come from it)."""
    clock.now += timedelta(days=1)


def move(store: Store, ref: str, folder: str) -> str:
    """Move a memory's file by hand (as `git mv` would) and let the next write commit it."""
    old = store.resolve(ref)
    target = store.root / "memories" / folder / old.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    (store.root / old).rename(target)
    store.commit_pending()
    return target.relative_to(store.root).as_posix()


@pytest.fixture
def lived(store: Store, clock: Clock) -> dict[str, str]:
    """A history over four days: adds, an edit, a move, a removal."""
    seen: dict[str, str] = {}
    a = store.add("Deploys go through the blue pipeline", title="Blue pipeline")
    b = store.add("The cache lives in redis on port 6380", title="Redis cache")
    seen["a"], seen["b"] = a.id, b.id
    seen["day1"] = store.repo.head.target.hex if hasattr(store.repo.head.target, "hex") else str(
        store.repo.head.target
    )
    day(store, clock)
    store.update(a.id, body="Deploys go through the green pipeline now", title="Green pipeline")
    c = store.add("Staging restarts every night at 3", title="Staging restarts")
    seen["c"] = c.id
    day(store, clock)
    seen["moved_to"] = move(store, b.id, "archive")
    day(store, clock)
    store.remove(c.id)
    return seen


def test_find_as_of_a_date_sees_the_old_text(store: Store, lived: dict[str, str]) -> None:
    assert [h.id for h in store.find("blue")] == []
    then = store.find("blue", as_of="2026-11-21")
    assert [h.id for h in then] == [lived["a"]]
    assert "**blue**" in then[0].snippet
    # A removed memory is found as of before its removal, and not at HEAD.
    assert store.find("staging") == []
    assert [h.id for h in store.find("staging", as_of="2 days ago")] == [lived["c"]]


def test_list_and_show_as_of(store: Store, lived: dict[str, str]) -> None:
    assert {i.id for i in store.list(as_of="2026-11-21")} == {lived["a"], lived["b"]}
    assert {i.id for i in store.list(as_of="HEAD~1")} == {lived["a"], lived["b"], lived["c"]}
    assert store.get(lived["a"], as_of="2026-11-21").body.startswith("Deploys go through the blue")
    with pytest.raises(MemoryNotFoundError):
        store.get(lived["c"], as_of="2026-11-21")


def test_the_as_of_index_is_cached_by_commit_and_bounded(
    store: Store, lived: dict[str, str]
) -> None:
    cache = store.index.home / history.CACHE_DIR
    store.find("blue", as_of="2026-11-21")
    built = sorted(p.name for p in cache.iterdir())
    assert len(built) == 1 and built[0].startswith(lived["day1"])
    stamp = (cache / built[0]).stat().st_ino
    store.find("pipeline", as_of="2026-11-21")
    assert (cache / built[0]).stat().st_ino == stamp  # reused, not built again
    for back in range(1, 7):
        store.find("pipeline", as_of=f"HEAD~{back}")
    assert len(list(cache.iterdir())) == history.CACHE_KEEP


def test_a_date_before_the_history_is_refused(store: Store, lived: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match="has no commit at or before '2020-01-01'"):
        store.find("blue", as_of="2020-01-01")
    with pytest.raises(InvalidInputError, match="cannot read 'no-such-thing' as a date"):
        store.find("blue", as_of="no-such-thing")


def test_a_date_is_the_last_first_parent_commit_at_or_before_it(
    store: Store, lived: dict[str, str]
) -> None:
    now = store.clock()
    assert history.resolve_point(store.repo, "2026-11-21", now) == lived["day1"]
    assert history.resolve_point(store.repo, "HEAD", now) == str(store.repo.head.target)
    assert history.resolve_point(store.repo, "3 weeks ago", now, before=True) is None


def test_log_follows_a_memory_across_a_move(store: Store, lived: dict[str, str]) -> None:
    events = store.life(lived["b"])
    assert [e.change for e in events] == ["moved", "added"]
    assert events[0].path == lived["moved_to"]
    assert events[0].old_path is not None and "/archive/" not in events[0].old_path


def test_log_of_a_removed_memory_and_the_removed_list(store: Store, lived: dict[str, str]) -> None:
    assert [e.change for e in store.life(lived["c"])] == ["removed", "added"]
    gone = store.removed()
    assert [(r.id, r.title) for r in gone] == [(lived["c"], "Staging restarts")]
    assert gone[0].commit == str(store.repo.head.target)
    # A moved memory is not removed.
    assert lived["b"] not in {r.id for r in gone}


def test_restore_a_removed_memory_as_a_new_commit(store: Store, lived: dict[str, str]) -> None:
    head = str(store.repo.head.target)
    memory = store.restore(lived["c"])
    assert memory is not None and memory.id == lived["c"]
    commit = store.repo.head.peel(__import__("pygit2").Commit)
    assert str(commit.parents[0].id) == head  # a new commit on top, nothing rewritten
    assert commit.message.startswith(f"restore {lived['c']}: Staging restarts")
    assert [h.id for h in store.find("staging")] == [lived["c"]]
    assert store.removed() == []
    with pytest.raises(InvalidInputError, match="is not removed: give --from"):
        store.restore(lived["c"])


def test_restore_an_earlier_version(store: Store, lived: dict[str, str]) -> None:
    memory = store.restore(lived["a"], source="2026-11-21")
    assert memory is not None
    assert store.get(lived["a"]).body == "Deploys go through the blue pipeline\n"
    assert store.restore(lived["a"], source="2026-11-21") is None  # that version already


def test_restore_warns_of_a_duplicate_as_add_does(
    store: Store, lived: dict[str, str], reporter: CollectingReporter
) -> None:
    store.add("Staging restarts every night at 3", title="Again")
    store.restore(lived["c"])
    assert any("Again" in line for line in reporter.warnings), reporter.warnings


def test_diff_since_a_date(store: Store, lived: dict[str, str]) -> None:
    review = store.diff(since="2026-11-22")
    kinds = {c.id: c.kinds for c in review.changes}
    # c was added and removed since: no change between the two ends.
    assert kinds == {lived["a"]: ["edited", "retitled"], lived["b"]: ["moved"]}
    assert review.spec == "since 2026-11-22"
    assert {c.id: c.kinds for c in store.diff(since="1d").changes} == {lived["c"]: ["deleted"]}
    everything = store.diff(since="2020-01-01")
    assert everything.old is None
    with pytest.raises(InvalidInputError, match="not both"):
        store.diff("HEAD~1", since="7d")


def test_expired_memories_are_marked_and_ranked_last(store: Store, clock: Clock) -> None:
    old = store.add("nginx cache settings for the api nginx", title="Old nginx", extra={"expires": "2026-11-20"})
    new = store.add("nginx settings", title="New nginx", extra={"expires": "2027-01-31"})
    hits = store.find("nginx")
    assert [h.id for h in hits] == [new.id, old.id]
    assert [h.expired for h in hits] == [False, True]
    assert hits[0].age == "just now"
    assert [i.id for i in store.list(expired=True)] == [old.id]
    clock.now += timedelta(days=3)
    assert store.find("nginx")[0].age == "3 days ago"


def test_superseded_stays_marked_with_freshness(store: Store) -> None:
    old = store.add("Use port 8080 for the api", title="Port 8080")
    new = store.add("Use port 9090 for the api", title="Port 9090", supersedes=old.id)
    hits = store.find("port api")
    assert [h.id for h in hits] == [new.id, old.id]
    assert hits[1].superseded_by == [new.id]
