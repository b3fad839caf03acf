"""The library API on real git repositories and real Whoosh indexes."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pygit2
import pytest

from memstore import gitrepo, ids, search
from memstore.errors import (
    AmbiguousIdError,
    InvalidInputError,
    MemoryNotFoundError,
    NotAStoreError,
    QuerySyntaxError,
    RepositoryStateError,
)
from memstore.index import INDEX_FORMAT, SearchIndex
from memstore.memory import parse
from memstore.report import CollectingReporter
from memstore.results import Filters
from memstore.store import Store


def commits(store: Store) -> list[pygit2.Commit]:
    repo = pygit2.Repository(str(store.root))
    return list(repo.walk(repo.head.target))


def test_init_creates_a_git_store_with_one_commit(store: Store) -> None:
    assert (store.root / ".git").is_dir()
    assert (store.root / ".memstore.toml").is_file()
    history = commits(store)
    assert [c.message for c in history] == ["Create memstore store"]
    assert pygit2.Repository(str(store.root)).head.shorthand == "main"


def test_add_writes_the_documented_format_and_one_commit(store: Store) -> None:
    memory = store.add(
        "CORS errors on /api came from the missing Vary header; fixed in nginx.conf",
        tags=["web", "Bug"],
        source="alice",
    )
    text = (store.root / memory.path).read_text()
    assert text == (
        "---\n"
        f"id: {memory.id}\n"
        "title: CORS errors on /api came from the missing Vary header; fixed in nginx.conf\n"
        "type: note\n"
        "tags:\n  - web\n  - bug\n"
        "created: 2026-11-21T10:00:02+01:00\n"
        "source: alice\n"
        "---\n"
        "CORS errors on /api came from the missing Vary header; fixed in nginx.conf\n"
    )
    assert memory.path.startswith("memories/2026/11/cors-errors-on-api-came-from-the-missing")
    assert memory.path.endswith(f"-{memory.id[-8:]}.md")
    latest = commits(store)[0]
    assert latest.message == f"add {memory.id}: {memory.title}"
    assert latest.author.name == "Test Person" and latest.author.email == "test@example.com"
    assert list(latest.tree["memories"]["2026"]["11"]) and len(commits(store)) == 2
    # .git/index follows the commit, so `git status` is clean.
    assert pygit2.Repository(str(store.root)).status() == {}


def test_an_add_with_a_chosen_id_is_made_at_most_once(store: Store) -> None:
    memory_id = ids.new_id()
    first = store.add("The cache is warmed at boot", memory_id=memory_id)
    head = store.repo.head.target
    again = store.add("The cache is warmed at boot", memory_id=memory_id)
    assert first.id == again.id == memory_id and again.path == first.path
    assert store.repo.head.target == head  # nothing written, nothing committed
    assert len(store.list()) == 1
    with pytest.raises(InvalidInputError, match="is taken"):
        store.add("Other text", memory_id=memory_id)
    with pytest.raises(InvalidInputError, match="not a memory id"):
        store.add("Other text", memory_id="not-an-id")
    assert len(store.list()) == 1


def test_an_add_reads_the_files_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEM_WATCH", "0")  # every catch-up is a walk over the files
    store.add("The first memory")
    edited = store.add("The second memory")
    path = store.root / edited.path
    path.write_text(path.read_text().replace("second memory", "second memory, edited"))
    walks = []
    walk = SearchIndex._scan

    def counted(self: SearchIndex, *args: object, **kwargs: object) -> object:
        walks.append(args)
        return walk(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchIndex, "_scan", counted)
    store.add("The third memory, which repeats the first memory")
    assert len(walks) == 1  # the write's catch-up, not another for the duplicate check
    subjects = [entry.message.splitlines()[0] for entry in store.log(limit=2)]
    assert subjects[0].startswith("add ") and "The third memory" in subjects[0]
    assert "(changed outside mem)" in subjects[1]  # the edit was seen by that one walk
    assert "edited" in store.get(edited.id).body


def test_add_many_writes_every_memory_in_one_commit(store: Store, clock) -> None:
    from memstore.memory import new_memory

    before = len(commits(store))
    batch = [
        new_memory(f"bulk note {n} about quokkas", now=clock(), title=f"Bulk {n}", tags=["bulk"])
        for n in range(3)
    ]
    batch.append(new_memory("one from elsewhere", now=clock(), source="importer"))
    store.add_many(batch)
    history = commits(store)
    assert len(history) == before + 1
    assert history[0].message.startswith("add 4 memories\n\nadd ")
    assert {hit.id for hit in store.find("quokkas")} == {m.id for m in batch[:3]}
    assert store.get(batch[0].id).fields["source"] == "Test Person"
    assert store.get(batch[3].id).fields["source"] == "importer"
    assert not gitrepo.pending_changes(store.repo, "memories")


def test_add_many_refuses_a_clash_before_writing_anything(store: Store, clock) -> None:
    from memstore.memory import new_memory

    first = store.add("already here", title="Here")
    clash = new_memory("again", now=clock(), title="Here", memory_id=first.id)
    clash.fields["created"] = first.fields["created"]
    fresh = new_memory("a fresh one", now=clock())
    with pytest.raises(InvalidInputError, match="already exists"):
        store.add_many([fresh, clash])
    assert not (store.root / fresh.path).exists()
    assert len(store.list()) == 1


def test_find_ranks_and_highlights(store: Store) -> None:
    cors = store.add(
        "CORS errors on /api came from the missing Vary header; fixed in nginx.conf", tags=["web"]
    )
    store.add("Postgres vacuum settings for the billing database", tags=["db"])
    hits = store.find("cors nginx")
    assert [h.id for h in hits] == [cors.id]
    assert "**nginx**" in hits[0].snippet and "**CORS**" in hits[0].snippet
    assert hits[0].tags == ["web"] and hits[0].created.startswith("2026-11-21")
    assert [h.id for h in store.find("tag:web")] == [cors.id]
    assert [h.id for h in store.find('"vary header"')] == [cors.id]
    assert store.find('"header vary"') == []
    assert [h.id for h in store.find("postgres OR nginx", limit=5)] and len(
        store.find("postgres OR nginx")
    ) == 2
    assert [h.id for h in store.find("nginx NOT postgres")] == [cors.id]
    assert store.find("cors", filters=Filters(tags=["db"])) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("C++", "cpp"),
        ("foo-bar", "dash"),
        ("src/app.py", "path"),
        ("ERR_CONNECTION_REFUSED", "err"),
        ("snake_case", "snake"),
        ("camelCase", "camel"),
        ("foobar", "camel"),
        ("bar", "camel"),
        ("errors", "plural"),
    ],
)
def test_code_words_just_work(store: Store, query: str, expected: str) -> None:
    made = {
        "cpp": store.add("Templates in C++ need the definition in the header"),
        "dash": store.add("The foo-bar flag enables the experimental planner"),
        "path": store.add("The retry loop lives in src/app.py:42 and nowhere else"),
        "err": store.add("Chrome shows net::ERR_CONNECTION_REFUSED when the proxy is down"),
        "snake": store.add("Rename the snake_case helpers before the release"),
        "camel": store.add("Call fooBar() from the camelCase wrapper"),
        "plural": store.add("An error in the parser when the input is empty"),
    }
    found = {h.id for h in store.find(query)}
    assert made[expected].id in found
    if query == "C++":
        assert found == {made["cpp"].id}


def test_edits_in_an_editor_are_seen_by_the_next_find(store: Store) -> None:
    memory = store.add("The deploy key rotates every ninety days")
    assert store.find("rotates")
    path = store.root / memory.path
    path.write_text(path.read_text().replace("ninety days", "thirty days and on demand"))
    assert [h.id for h in store.find("demand")] == [memory.id]
    assert store.find("ninety") == []
    # A file created by hand appears; a file deleted by hand disappears.
    other = store.root / "memories" / "2025" / "01"
    other.mkdir(parents=True)
    extra = other / "by-hand.md"
    extra.write_text(
        "---\nid: 01jjjjjjjjjjjjjjjjjjjjjjjj\ntitle: Written by hand\ntype: note\n"
        "tags: []\ncreated: 2025-01-02T03:04:05Z\n---\nzanzibar appears here\n"
    )
    assert [h.path for h in store.find("zanzibar")] == ["memories/2025/01/by-hand.md"]
    path.unlink()
    assert store.find("demand") == []
    shutil.rmtree(other)
    assert store.find("zanzibar") == []


def test_an_in_place_edit_with_an_old_mtime_on_disk_is_found_after_a_commit(store: Store) -> None:
    memory = store.add("alpha beta gamma")
    store.find("alpha")
    path = store.root / memory.path
    old = path.stat().st_mtime_ns
    path.write_text(path.read_text().replace("gamma", "delta"))
    os.utime(path, ns=(old - 10**10, old - 10**10))
    # The mtime went back in time, but committing the change (here by another program, as
    # `git commit -a` would) moves HEAD: the tree diff sees it.
    changes: dict[str, bytes | None] = {memory.path: path.read_bytes()}
    gitrepo.commit_files(store.repo, changes, "edit", store.clock())
    assert [h.id for h in store.find("delta")] == [memory.id]


def test_commits_from_a_plain_git_pull_are_seen(tmp_path: Path, store: Store, clock) -> None:
    store.add("first memory about kafka")
    store.find("kafka")
    clone_path = tmp_path / "clone"
    pygit2.clone_repository(str(store.root), str(clone_path))
    clone = Store(clone_path, clock=clock)
    added = clone.add("second memory about zookeeper")
    # What `git pull` does here: fetch and fast-forward the work tree.
    repo = pygit2.Repository(str(store.root))
    remote = repo.remotes.create("other", str(clone_path))
    remote.fetch()
    target = repo.references["refs/remotes/other/main"].target
    repo.checkout_tree(repo[target])
    repo.references["refs/heads/main"].set_target(target)
    assert [h.id for h in store.find("zookeeper")] == [added.id]


def test_editor_changes_are_committed_by_the_next_write(store: Store) -> None:
    memory = store.add("Original body text")
    path = store.root / memory.path
    path.write_text(path.read_text().replace("Original", "Edited"))
    (store.root / "notes.txt").write_text("not a memory")
    (store.root / "memories" / "photo.png").write_bytes(b"\x89PNG\x00\x00")
    second = store.add("Another memory")
    history = commits(store)
    assert history[0].message == f"add {second.id}: Another memory"
    assert history[1].message == f"edit {memory.id}: Edited body text (changed outside mem)"
    tree_paths = _tree_paths(history[0].tree)
    assert "notes.txt" not in tree_paths and "memories/photo.png" not in tree_paths
    assert (
        b"Edited body" in pygit2.Repository(str(store.root))[history[1].tree[memory.path].id].data
    )


def _tree_paths(tree: pygit2.Tree, base: str = "") -> set[str]:
    found = set()
    for entry in tree:
        if isinstance(entry, pygit2.Tree):
            found |= _tree_paths(entry, f"{base}{entry.name}/")
        else:
            found.add(f"{base}{entry.name}")
    return found


def test_update_changes_only_what_changed(store: Store) -> None:
    memory = store.add("Line one\n\nLine two", tags=["a", "b"])
    before = (store.root / memory.path).read_text().splitlines()
    store.update(memory.id, title="A better title")
    after = (store.root / memory.path).read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [(f"title: {memory.title}", "title: A better title")]
    # Nothing changed: no write, no commit.
    count = len(commits(store))
    mtime = (store.root / memory.path).stat().st_mtime_ns
    assert store.update(memory.id, title="A better title") is None
    assert len(commits(store)) == count
    assert (store.root / memory.path).stat().st_mtime_ns == mtime
    # The file name never changes with the title.
    assert store.get(memory.id).path == memory.path


def test_hand_written_header_keeps_its_bytes(store: Store) -> None:
    memory = store.add("Body stays")
    path = store.root / memory.path
    text = path.read_text().replace(
        "type: note\n", "type:   note   # why: default\nowner: {team: infra}\n"
    )
    path.write_text(text)
    store.update(memory.id, tags=["new"])
    result = path.read_text()
    assert "type:   note   # why: default\nowner: {team: infra}\n" in result
    assert "tags:\n  - new\n" in result


def test_edit_through_an_editor_function(store: Store) -> None:
    memory = store.add("Editable text")

    def editor(path: Path) -> None:
        path.write_text(path.read_text().replace("Editable text", "Edited text"))

    updated = store.edit(memory.id, editor)
    assert updated is not None and "Edited text" in updated.body
    assert commits(store)[0].message == f"edit {memory.id}: Edited text"
    assert store.edit(memory.id, lambda path: None) is None


def test_edit_that_breaks_the_header_is_refused_and_kept(store: Store) -> None:
    memory = store.add("Keep me")
    original = (store.root / memory.path).read_bytes()

    def breaker(path: Path) -> None:
        path.write_text("---\ntitle: [unclosed\n---\nbody\n")

    with pytest.raises(Exception, match="your edit is kept in"):
        store.edit(memory.id, breaker)
    assert (store.root / memory.path).read_bytes() == original


def test_remove_and_log(store: Store) -> None:
    memory = store.add("Short lived")
    store.update(memory.id, body="Short lived, edited")
    assert [e.message.split(":")[0] for e in store.log(memory.id)] == [
        f"edit {memory.id}",
        f"add {memory.id}",
    ]
    store.remove(memory.id)
    assert not (store.root / memory.path).exists()
    assert commits(store)[0].message == f"remove {memory.id}: Short lived"
    assert store.find("lived") == []
    with pytest.raises(MemoryNotFoundError):
        store.get(memory.id)


def test_id_prefix_resolution(store: Store) -> None:
    a = store.add("first")
    b = store.add("second")
    assert store.get(a.id[:-3]).id == a.id
    assert store.get(a.id.upper()).id == a.id
    common = os.path.commonprefix([a.id, b.id])
    with pytest.raises(AmbiguousIdError, match="type more characters"):
        store.get(common)
    with pytest.raises(MemoryNotFoundError, match="no memory has the id"):
        store.get("zzzzzz")
    assert store.get(a.path).id == a.id
    with pytest.raises(InvalidInputError, match="outside the store"):
        store.get("memories/../../etc/passwd")


def test_bad_input_is_refused_with_a_clear_message(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        store.add("   \n  ")
    with pytest.raises(InvalidInputError, match="space or comma"):
        store.add("text", tags=["two words"])
    with pytest.raises(InvalidInputError, match="lowercase word"):
        store.add("text", type="Not A Type")
    odd = store.add("text", title="../../etc/passwd 🎉 rocket")
    assert odd.path.startswith("memories/2026/11/etc-passwd-rocket-")
    emoji = store.add("text", title="🎉🎉")
    assert Path(emoji.path).name.startswith("memory-")
    assert store.get(odd.id).title == "../../etc/passwd 🎉 rocket"


def test_a_bad_file_is_a_warning_and_the_rest_is_found(store: Store, reporter) -> None:
    good = store.add("healthy memory about redis")
    folder = store.root / "memories" / "2026" / "11"
    (folder / "broken.md").write_text("---\ntitle: [oops\n---\nredis too\n")
    (folder / "latin1.md").write_bytes(b"---\ntitle: caf\xe9\n---\nredis\n")
    (folder / "binary.md").write_bytes(b"\x00\x01\x02redis")
    hits = store.find("redis")
    assert [h.id for h in hits] == [good.id]
    warned = "\n".join(reporter.warnings)
    assert "broken.md: skipped, malformed front-matter" in warned
    assert "latin1.md: skipped, not valid UTF-8" in warned
    assert "binary.md: skipped, binary file" in warned


def test_query_syntax_errors_are_one_line(store: Store) -> None:
    store.add("something")
    with pytest.raises(QuerySyntaxError, match="empty"):
        store.find("   ")
    with pytest.raises(QuerySyntaxError, match="see 'mem find --help'"):
        store.find("created:[not a date to whenever]")


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(NotAStoreError, match="mem init"):
        Store(tmp_path)


def test_writes_refused_in_merge_or_detached_state(store: Store) -> None:
    store.add("one")
    repo = pygit2.Repository(str(store.root))
    (Path(repo.path) / "MERGE_HEAD").write_text(str(repo.head.target) + "\n")
    with pytest.raises(RepositoryStateError, match="middle of a merge"):
        store.add("two")
    (Path(repo.path) / "MERGE_HEAD").unlink()
    repo.set_head(repo.head.target)
    with pytest.raises(RepositoryStateError, match="detached"):
        store.add("three")
    assert store.find("one")  # reading still works


def test_damaged_or_old_index_is_rebuilt_with_a_notice(store: Store, reporter) -> None:
    memory = store.add("index me please")
    store.find("index")
    home = store.git_dir / "memstore"
    for seg in home.glob("ix-*/*"):
        seg.write_bytes(b"garbage")
    assert [h.id for h in store.find("please")] == [memory.id]
    assert any("rebuilding" in n for n in reporter.notices)
    state = home / "state.json"
    current = f'"format": {INDEX_FORMAT}'
    state.write_text(state.read_text().replace(current, f'"format": {INDEX_FORMAT - 1}'))
    reporter.notices.clear()
    assert [h.id for h in store.find("please")] == [memory.id]
    assert reporter.notices == ["search index out of date: rebuilding it"]
    shutil.rmtree(home)
    assert [h.id for h in store.find("please")] == [memory.id]
    assert (home.stat().st_mode & 0o777) == 0o700


def test_index_segments_are_not_compound(store: Store) -> None:
    for n in range(3):
        store.add(f"memory number {n}")
        store.find("memory")
    folders = list((store.git_dir / "memstore").glob("ix-*"))
    assert folders and not list(folders[0].glob("*.seg"))


def test_list_is_newest_first_with_filters(store: Store) -> None:
    a = store.add("older", tags=["x"])
    b = store.add("newer", type="decision")
    assert [m.id for m in store.list()] == [b.id, a.id]
    assert [m.id for m in store.list(filters=Filters(type="decision"))] == [b.id]
    assert [m.id for m in store.list(filters=Filters(tags=["x"]))] == [a.id]
    assert [m.id for m in store.list(limit=1)] == [b.id]


def test_check_reports_path_and_line(store: Store) -> None:
    store.add("fine")
    assert store.check() == []
    folder = store.root / "memories" / "2026" / "11"
    (folder / "bad.md").write_text(
        "---\nid: 01jjjjjjjjjjjjjjjjjjjjjjjj\ntitle: ok\ntype: note\ntags:\n  - fine\n"
        "  - two words\ncreated: 2026-11-21T10:00:00Z\n---\nbody\n"
    )
    (folder / "dup.md").write_text(
        "---\nid: 01jjjjjjjjjjjjjjjjjjjjjjjj\ntitle: ok\ntype: note\ntags: []\n"
        "created: 2026-11-21T10:00:00Z\n---\nbody\n"
    )
    (folder / "stray.png").write_bytes(b"\x89PNG")
    problems = [str(p) for p in store.check()]
    assert any(p.startswith("memories/2026/11/bad.md:7: tags[1]") for p in problems), problems
    assert any("dup.md:2: duplicate id" in p or "bad.md:2: duplicate id" in p for p in problems)
    assert (
        "memories/2026/11/stray.png:1: not a memory file (.md): move it out of memories/"
        in problems
    )


def test_reindex_rebuilds_from_files(store: Store) -> None:
    memories = [store.add(f"bulk memory {n} about widgets") for n in range(5)]
    store.reindex()
    assert {h.id for h in store.find("widgets")} == {m.id for m in memories}


def test_a_killed_write_leaves_no_partial_memory(store: Store) -> None:
    memory = store.add("complete memory")
    folder = (store.root / memory.path).parent
    (folder / ".mem-abc.tmp").write_text("half a memory")
    assert [h.id for h in store.find("memory")] == [memory.id]
    store.add("next write")
    assert ".mem-abc.tmp" not in _tree_paths(commits(store)[0].tree)


def test_parse_round_trip_keeps_bytes(store: Store) -> None:
    memory = store.add("Some text", tags=["a"])
    raw = (store.root / memory.path).read_bytes()
    assert parse(raw, memory.path).to_bytes() == raw


def test_concurrent_finder_gets_results_while_index_is_locked(store: Store) -> None:
    memory = store.add("locked index still answers")
    store.find("answers")
    reporter = CollectingReporter()
    other = Store(store.root, clock=store.clock, reporter=reporter)
    with store.index._lock.hold(None):
        start = time.monotonic()
        hits = search.search(
            other.index.refresh(wait=0.2),
            "answers",
            Filters(),
            10,
            lambda p: None,
            ("", ""),
            store.clock(),
        )
        assert time.monotonic() - start < 3
    assert [h.id for h in hits] == [memory.id]
    assert reporter.notices and "results may lag" in reporter.notices[0]


def test_default_signature_without_config(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEM_AUTHOR")
    repo = pygit2.Repository(str(store.root))
    sig = gitrepo.signature(repo, store.clock())
    assert sig.name and "@" in sig.email
    repo.config["user.name"] = "Configured Name"
    repo.config["user.email"] = "configured@example.com"
    sig = gitrepo.signature(repo, store.clock())
    assert (sig.name, sig.email) == ("Configured Name", "configured@example.com")


def test_source_defaults_to_mem_source_then_the_author(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.add("by the author").source == "Test Person"
    monkeypatch.setenv("MEM_SOURCE", "claude-code")
    assert store.add("by an agent").source == "claude-code"
    assert store.add("explicit", source="cursor").source == "cursor"


def test_a_deleted_bad_file_stops_being_reported(store: Store, reporter) -> None:
    store.add("fine memory")
    bad = store.root / "memories" / "bad.md"
    bad.write_text("no header\n")
    store.find("fine")
    assert any("bad.md" in w for w in reporter.warnings)
    bad.unlink()
    reporter.warnings.clear()
    store.find("fine")
    assert reporter.warnings == []


def test_a_failed_editor_leaves_no_scratch_copy(store: Store, tmp_path: Path) -> None:
    memory = store.add("scratch test")
    seen: list[Path] = []

    def failing(path: Path) -> None:
        seen.append(path)
        raise InvalidInputError("editor failed")

    with pytest.raises(InvalidInputError):
        store.edit(memory.id, failing)
    assert seen and not seen[0].exists()


def test_negative_limits_are_refused(store: Store) -> None:
    store.add("x")
    with pytest.raises(InvalidInputError, match="limit"):
        store.find("x", limit=-1)
    with pytest.raises(InvalidInputError, match="limit"):
        store.list(limit=-1)


def test_a_file_added_by_hand_is_committed_as_added(store: Store) -> None:
    folder = store.root / "memories" / "2026" / "11"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hand.md").write_text(
        "---\nid: 01jjjjjjjjjjjjjjjjjjjjjjjj\ntitle: By hand\ntype: note\ntags: []\n"
        "created: 2026-11-21T10:00:00Z\n---\nbody\n"
    )
    store.commit_pending()
    assert (
        commits(store)[0].message == "add 01jjjjjjjjjjjjjjjjjjjjjjjj: By hand (changed outside mem)"
    )


def test_dates_are_matched_as_written(store: Store) -> None:
    memory = store.add("marker memory")
    path = store.root / memory.path
    path.write_text(
        path.read_text().replace(
            "created: 2026-11-21T10:00:02+01:00", "created: 2026-03-01T00:30:00+01:00"
        )
    )
    assert [h.id for h in store.find("marker created:2026-03-01")] == [memory.id]
    assert store.find("marker created:2026-02-28") == []


def test_stemming_handles_doubled_consonants(store: Store) -> None:
    memory = store.add("The nightly job stopped running after the upgrade")
    assert [h.id for h in store.find("run stop")] == [memory.id]


def test_a_title_match_ranks_above_a_body_match(store: Store) -> None:
    in_body = store.add("We tuned the consumers: kafka lag dropped", title="Tuning")
    in_title = store.add("Lag dropped after we tuned the consumers", title="Kafka consumer lag")
    assert [h.id for h in store.find("kafka")] == [in_title.id, in_body.id]
