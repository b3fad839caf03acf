"""Time travel on a store with a real history: --as-of, a memory's life, removed memories,
restore, diff --since, and freshness (expires, age)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from memstore import history
from memstore.errors import AmbiguousIdError, InvalidInputError, MemoryNotFoundError
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
    seen["day1"] = (
        store.repo.head.target.hex
        if hasattr(store.repo.head.target, "hex")
        else str(store.repo.head.target)
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


def test_the_as_of_index_shares_the_store_index_files(store: Store, lived: dict[str, str]) -> None:
    """The as-of index starts as a copy of the store's index made of hard links: segments are
    never changed once written, so it costs neither the copying nor the disk space."""
    store.find("blue")
    state = json.loads((store.index.home / "state.json").read_text())
    main = {f.name: f.stat().st_ino for f in (store.index.home / state["directory"]).iterdir()}
    store.find("blue", as_of="HEAD~1")
    (folder,) = (store.index.home / history.CACHE_DIR).iterdir()
    shared = [f for f in folder.iterdir() if main.get(f.name) == f.stat().st_ino]
    assert any(f.suffix == ".pst" for f in shared), sorted(f.name for f in folder.iterdir())
    assert not any(f.name.endswith("WRITELOCK") for f in shared)
    # The store's index goes on changing; the as-of index does not.
    store.add("Deploys are frozen on fridays", title="Freeze")
    assert [h.id for h in store.find("pipeline", as_of="HEAD~2")] == [lived["a"]]
    assert store.find("fridays", as_of="HEAD~2") == []


@pytest.mark.parametrize("rebuilt", [False, True])
def test_as_of_finds_committed_text_not_work_tree_edits(
    store: Store, lived: dict[str, str], rebuilt: bool
) -> None:
    """The as-of index is the store's index with what differs from the commit replaced: files
    edited in the work tree and not committed differ too, whether the index knows which they
    are (after a write) or not (after a rebuild)."""
    path = store.root / store.resolve(lived["a"])
    path.write_text(path.read_text().replace("green pipeline", "purple pipeline"))
    if rebuilt:
        store.index.rebuild()
    assert [h.id for h in store.find("purple")] == [lived["a"]]
    assert [h.id for h in store.find("green", as_of="HEAD")] == [lived["a"]]
    assert store.find("purple", as_of="HEAD") == []
    assert [h.id for h in store.find("blue", as_of=lived["day1"])] == [lived["a"]]
    assert store.find("purple", as_of=lived["day1"]) == []


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


def test_dates_are_read_from_a_kept_first_parent_history(
    store: Store, clock: Clock, lived: dict[str, str]
) -> None:
    """A date is looked up in HEAD's first-parent history kept beside the index (not walked
    again in every process); it follows HEAD as it moves on or back, and a damaged copy
    is walked again."""
    import pygit2

    kept = store.index.home / history.CHAIN_FILE
    before = str(store.repo.head.target)
    assert history.resolve_point(store.repo, "2026-11-21", store.clock()) == lived["day1"]
    assert kept.is_file()
    day(store, clock)
    store.add("A note from a later day", title="Later")
    later = str(store.repo.head.target)
    now = store.clock()
    assert history.resolve_point(store.repo, "today", now) == later
    assert history.resolve_point(store.repo, "yesterday", now) == before
    # HEAD moved back (a reset): the commits after it are no longer its history.
    store.repo.head.set_target(pygit2.Oid(hex=before))
    assert history.resolve_point(store.repo, "today", now) == before
    kept.write_bytes(kept.read_bytes()[:-7])
    assert history.resolve_point(store.repo, "2026-11-21", now) == lived["day1"]
    with pytest.raises(InvalidInputError, match="its history starts 2026-11-21"):
        history.resolve_point(store.repo, "2026-11-20", now)


def test_log_follows_a_memory_across_a_move(store: Store, lived: dict[str, str]) -> None:
    events = store.life(lived["b"])
    assert [e.change for e in events] == ["moved", "added"]
    assert events[0].path == lived["moved_to"]
    assert events[0].old_path is not None and "/archive/" not in events[0].old_path


def test_log_follows_a_memory_from_its_old_path(store: Store, lived: dict[str, str]) -> None:
    """Given the path a memory had before it moved, `mem log` shows that memory's life, as
    `git log --follow` would, rather than saying there is no file there."""
    old = store.life(lived["b"])[0].old_path
    assert old is not None and not (store.root / old).exists()
    for ref in (old, old.rsplit("/", 1)[-1], str(store.root / old)):
        assert [e.change for e in store.life(ref)] == ["moved", "added"], ref
    log = mem_ok("--store", str(store.root), "log", old).stdout.splitlines()
    assert "moved: " in log[0] and "-> " + lived["moved_to"] in log[1]
    with pytest.raises(MemoryNotFoundError, match="no memory file at memories/none.md"):
        store.life("memories/none.md")


def test_log_of_a_file_name_two_memories_left_asks_for_the_id(store: Store) -> None:
    def rename(ref: str, to: str) -> None:
        target = store.root / to
        target.parent.mkdir(parents=True, exist_ok=True)
        (store.root / store.resolve(ref)).rename(target)
        store.commit_pending()

    first = store.add("The first note kept under a plain name", title="First")
    rename(first.id, "memories/a/note.md")
    rename(first.id, "memories/one/first.md")
    second = store.add("The second note kept under the same name", title="Second")
    rename(second.id, "memories/b/note.md")
    rename(second.id, "memories/two/second.md")
    with pytest.raises(AmbiguousIdError, match="'note.md' was the file of 2 memories in history"):
        store.life("note.md")
    assert [e.path for e in store.life("memories/a/note.md")][:2] == [
        "memories/one/first.md",
        "memories/a/note.md",
    ]


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
    old = store.add(
        "nginx cache settings for the api nginx", title="Old nginx", extra={"expires": "2026-11-20"}
    )
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


def test_a_merge_from_a_second_clone(tmp_path: Path, remote: Path, clock: Clock) -> None:
    """Changes made in another clone and merged by sync are in each memory's life, and --as-of
    a date follows the first-parent history."""
    first = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    kept = first.add("The build cache is on the nfs share", title="Build cache")
    first.sync()
    second = Store.clone(str(remote), tmp_path / "b", clock=clock)
    day(first, clock)
    second.update(kept.id, body="The build cache moved to s3", title="Build cache on s3")
    gone = second.add("A temporary note about the flaky test", title="Flaky")
    second.remove(gone.id)
    second.sync()
    first.add("Lunch is at noon", title="Lunch")
    result = first.sync()
    assert result.received >= 1
    merge = first.repo.head.peel(__import__("pygit2").Commit)
    assert len(merge.parents) == 2
    # The edit is the other clone's commit, not the merge.
    events = first.life(kept.id)
    assert [e.change for e in events] == ["edited", "added"]
    assert events[0].entry.message.startswith(f"edit {kept.id}")
    assert [r.id for r in first.removed()] == [gone.id]
    assert [h.id for h in first.find("nfs")] == []
    assert [h.id for h in first.find("nfs", as_of="2026-11-21")] == [kept.id]
    assert [h.id for h in first.find("s3", as_of="HEAD")] == [kept.id]


def test_encrypted_memories_in_history(store: Store, clock: Clock, tmp_path: Path) -> None:
    from memstore import keys

    store.key_init()
    secret = store.add("The vault code is zebracanary", title="Vault", encrypt=True)
    day(store, clock)
    store.update(secret.id, body="The vault code changed to okapimoth")
    then = store.find("zebracanary", as_of="2026-11-21")
    assert [(h.id, h.title) for h in then] == [(secret.id, "Vault")]
    assert store.get(secret.id, as_of="2026-11-21").body.startswith("The vault code is zebra")
    store.remove(secret.id)
    assert [(r.id, r.title) for r in store.removed()] == [(secret.id, "Vault")]
    assert [e.change for e in store.life(secret.id)] == ["removed", "edited", "added"]
    # Without the key: sealed. Nothing found, no title, no plaintext in the as-of index.
    keys.default_identity_path().rename(tmp_path / "elsewhere")
    other = Store(store.root, clock=clock)
    assert other.find("zebracanary", as_of="2026-11-21") == []
    assert [(r.id, r.title) for r in other.removed()] == [(secret.id, "")]
    for folder in (other.index.home / history.CACHE_DIR).iterdir():
        for file in folder.iterdir():
            assert b"Vault" not in file.read_bytes()
    restored = other.restore(secret.id)  # the ciphertext as it was
    assert restored is not None and (other.root / restored.path).name == f"{secret.id}.md.age"


def test_cli_time_travel(store: Store, lived: dict[str, str]) -> None:
    root = str(store.root)
    found = json.loads(
        mem_ok("--store", root, "find", "blue", "--as-of", "2026-11-21", "--json").stdout
    )
    assert [r["id"] for r in found["results"]] == [lived["a"]]
    assert "age" in found["results"][0] and found["results"][0]["expired"] is False
    shown = mem_ok("--store", root, "show", lived["a"], "--as-of", "2026-11-21").stdout
    assert "blue pipeline" in shown
    listed = mem_ok("--store", root, "list", "--as-of", "HEAD~1").stdout
    assert lived["c"] in listed
    log = mem_ok("--store", root, "log", lived["b"]).stdout.splitlines()
    assert "moved: " in log[0] and "-> " + lived["moved_to"] in log[1]
    deleted = mem_ok("--store", root, "log", "--deleted").stdout
    assert lived["c"] in deleted and "Staging restarts" in deleted
    diff = mem_ok("--store", root, "diff", "--since", "2026-11-22", "--format", "md").stdout
    assert "since 2026-11-22" in diff and "Green pipeline" in diff
    text = mem_ok("--store", root, "diff", "--since", "2026-11-22").stdout
    assert text.startswith("memory changes in since 2026-11-22")
    restored = mem_ok("--store", root, "restore", lived["c"][:10]).stdout
    assert restored.startswith(f"restored {lived['c']}  Staging restarts")
    bad = run_mem("--store", root, "find", "x", "--as-of", "2020-01-01")
    assert bad.returncode == 1
    assert bad.stderr.startswith("mem: error: the store has no commit at or before '2020-01-01'")
    assert "Traceback" not in bad.stderr


def test_cli_expired_marks(store: Store) -> None:
    root = str(store.root)
    old = store.add("nginx tuning", title="Old nginx", extra={"expires": "2001-01-31"})
    listed = mem_ok("--store", root, "list", "--expired").stdout
    assert old.id in listed and "(expired 2001-01-31)" in listed
    shown = mem_ok("--store", root, "show", old.id, "--json").stdout
    assert json.loads(shown)["expired"] is True
    found = mem_ok("--store", root, "find", "nginx").stdout
    assert "expired 2001-01-31" in found


def test_context_marks_expired(store: Store) -> None:
    store.add("nginx tuning for the api", title="Old nginx", extra={"expires": "2026-11-20"})
    block = store.context("nginx")
    assert "EXPIRED 2026-11-20" in block.text
    assert block.items[0].expired is True


def test_ages_in_words() -> None:
    from memstore.when import age, parse_when

    now = parse_when("2026-11-21T10:00:00+01:00", end=False)
    assert age(now - timedelta(days=3), now) == "3 days ago"
    assert age(now - timedelta(minutes=1), now) == "1 minute ago"
    assert age(now - timedelta(days=400), now) == "1 year ago"
    assert parse_when("3 weeks ago", end=False, now=now) == now - timedelta(weeks=3)
    assert parse_when("1 month", end=False, now=now) == now - timedelta(days=30)


def test_mcp_find_and_show_as_of(store: Store, lived: dict[str, str]) -> None:
    from tests.test_mcp import data, with_server

    async def session(client: object) -> None:
        call = client.call_tool  # type: ignore[attr-defined]
        found = data(await call("find", {"query": "blue", "as_of": "2026-11-21"}))
        assert [r["id"] for r in found["results"]] == [lived["a"]]
        shown = data(await call("show", {"ref": lived["a"], "as_of": "2026-11-21"}))
        assert shown["body"].startswith("Deploys go through the blue") and "expired" in shown
        now = data(await call("show", {"ref": lived["a"]}))
        assert now["body"].startswith("Deploys go through the green")

    with_server(store, session)  # type: ignore[arg-type]
