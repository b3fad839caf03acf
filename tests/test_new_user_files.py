"""What a new user's own files did to the store: hand-made files, copies, imports, notes, text."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pyrage
import pytest

from memstore import keys
from memstore.errors import AmbiguousIdError
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import Clock, run_mem


@pytest.fixture
def keyed(store: Store) -> Store:
    store.key_init()
    return store


def encrypt_by_hand(store: Store, plain: bytes, name: str) -> Path:
    """Encrypt a memory's text to the store's key with age (pyrage), as a user would by hand."""
    public = keys.load_identity().public[0]  # type: ignore[union-attr]
    recipient = pyrage.x25519.Recipient.from_str(public)
    target = store.root / "memories" / "2026" / "11" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pyrage.encrypt(plain, [recipient]))
    return target


# A file encrypted by hand and not named <id>.md.age


def test_encrypted_file_not_named_by_its_id_is_reported_and_skipped(keyed: Store) -> None:
    kept = keyed.add("the bicycle shed is green")
    copy = keyed.add("the bicycle shed is red").id
    plain = (keyed.root / keyed.get(copy).path).read_bytes()
    keyed.remove(copy)
    encrypt_by_hand(keyed, plain, "something.md.age")
    reporter = CollectingReporter()
    store = Store(keyed.root, clock=keyed.clock, reporter=reporter)

    assert [hit.id for hit in store.find("bicycle")] == [kept.id]
    why = f"an encrypted memory's file must be named by its id: rename it to {copy}.md.age"
    path = "memories/2026/11/something.md.age"
    assert [w for w in reporter.warnings if "something" in w] == [
        f"{path}: skipped, {why} (its id)"
    ]
    assert [str(p) for p in store.check()] == [f"{path}:1: {why} (its id)"]
    findings = [str(f) for f in store.doctor() if f.severity == "problem"]
    assert findings == [f"files: {path}:1: {why} (its id)"]


def test_encrypted_file_named_otherwise_without_the_key_is_reported(
    keyed: Store, tmp_path: Path
) -> None:
    keyed.add("plain one about bicycles")
    encrypt_by_hand(keyed, b"---\ntitle: secret bicycle\n---\nsecret bicycle\n", "notes.md.age")
    keyless = {"HOME": str(tmp_path / "elsewhere"), "XDG_CONFIG_HOME": str(tmp_path / "nothing")}
    result = run_mem("--store", str(keyed.root), "find", "bicycle", env=keyless)
    assert result.returncode == 0, result.stderr
    assert "plain one about bicycles" in result.stdout
    assert "notes.md.age: skipped, an encrypted memory's file must be named by its id" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    checked = run_mem("--store", str(keyed.root), "check", env=keyless)
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "memories/2026/11/notes.md.age:1: an encrypted memory's file must be named by its id:"
        " rename it to <id>.md.age, after the id in its front-matter"
    ]


def test_memory_without_created_does_not_break_find(store: Store) -> None:
    dated = store.add("a walrus with a date")
    target = store.root / "memories" / "2026" / "11" / "by-hand.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("---\nid: 01kafbw4j3m0sd2d4tbvmt1bzq\ntitle: By hand\n---\nwalrus\n")
    found = [hit.id for hit in store.find("walrus")]
    assert sorted(found) == sorted(["01kafbw4j3m0sd2d4tbvmt1bzq", dated.id])
    assert len(store.list()) == 2


# Two files with one id


def test_a_copied_memory_file_is_reported_and_named_in_show_and_rm(store: Store) -> None:
    memory = store.add("the router password is on the fridge")
    original = store.root / memory.path
    copy = original.with_name("copy-of-router.md")
    shutil.copyfile(original, copy)
    copy_rel = copy.relative_to(store.root).as_posix()

    problems = [str(p) for p in store.check()]
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{memory.path}:2: duplicate id {memory.id}: also in {copy_rel}; if this file is a copy,"
        " delete it; to keep both, run 'mem add --file"
    )
    assert any(
        f.area == "files" and f"duplicate id {memory.id}" in f.problem for f in store.doctor()
    )
    expected = (
        f"id {memory.id} is used by 2 files: {copy_rel}, {memory.path}; if one is a copy, delete it"
    )
    for ref in (memory.id, memory.id[:8]):
        with pytest.raises(AmbiguousIdError) as raised:
            store.get(ref)
        assert str(raised.value).startswith(expected)
        assert "more characters" not in str(raised.value)
    result = run_mem("--store", str(store.root), "rm", memory.id)
    assert result.returncode != 0
    assert result.stderr.startswith(f"mem: error: {expected}")
    assert original.exists() and copy.exists()
    # Named by its path, one of them can go.
    assert store.remove(copy_rel).id == memory.id
    assert store.get(memory.id).path == memory.path
    assert store.check() == []


def test_ambiguous_prefix_gives_the_true_count(store: Store, clock: Clock) -> None:
    from memstore.memory import new_memory

    made = store.add_many(new_memory(f"note number {n}", now=clock()) for n in range(21))
    prefix = os.path.commonprefix([m.id for m in made])
    with pytest.raises(AmbiguousIdError) as raised:
        store.get(prefix)
    first = sorted(m.id for m in made)[:3]
    assert str(raised.value) == (
        f"id prefix {prefix!r} matches 21 memories ({', '.join(first)} and 18 more):"
        " type more characters"
    )


# Notes from elsewhere: field types and TOML front-matter


def test_add_file_with_a_number_for_tags_and_a_list_for_title(store: Store, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("---\ntags: 5\n---\nfive is the tag\n")
    result = run_mem("--store", str(store.root), "add", "--file", str(note))
    assert result.returncode == 0, result.stderr
    [memory] = store.list()
    assert memory.tags == ["5"]
    head = store.repo.head.target
    note.write_text("---\ntitle: [a, b]\n---\ntwo titles\n")
    result = run_mem("--store", str(store.root), "add", "--file", str(note))
    assert result.returncode != 0
    assert result.stderr == (
        "mem: error: 'title' must be text, not a list (['a', 'b']): write it as one line of text\n"
    )
    note.write_text("---\ntags: {a: 1}\n---\na mapping of tags\n")
    result = run_mem("--store", str(store.root), "add", "--file", str(note))
    assert result.stderr == (
        "mem: error: 'tags' must be a list of words, not a mapping ({'a': 1}):"
        " write e.g. tags: [a, b]\n"
    )
    assert store.repo.head.target == head
    assert len(store.list()) == 1


def test_folder_import_reads_toml_front_matter(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "deploys.md").write_text(
        '+++\ntitle = "Deploy days"\ntags = ["ops", "deploy"]\n'
        'created = 2026-03-04T09:30:00+01:00\nproject = "atlas"\n+++\n'
        "Never deploy on Fridays.\n"
    )
    result = store.import_memories(folder)
    assert result.problems == []
    [memory] = result.added
    stored = store.get(memory.id)
    assert stored.title == "Deploy days"
    assert stored.tags == ["ops", "deploy"]
    assert stored.created_text == "2026-03-04T09:30:00+01:00"
    assert stored.fields["project"] == "atlas"
    assert stored.body == "Never deploy on Fridays.\n"
    assert "+++" not in (store.root / stored.path).read_text()
    note = tmp_path / "toml-note.md"
    note.write_text('+++\ntitle = "From TOML"\ntags = "solo"\n+++\nbody of the toml note\n')
    added = run_mem("--store", str(store.root), "add", "--file", str(note))
    assert added.returncode == 0, added.stderr
    [hit] = store.find("toml")
    assert (hit.title, hit.tags) == ("From TOML", ["solo"])


# Paths as text


def test_the_library_takes_str_and_pathlike_paths(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pygit2

    made = Store.init(str(tmp_path / "team-memories"), clock=clock)
    assert made.root == (tmp_path / "team-memories").resolve()
    monkeypatch.chdir(tmp_path)
    store = Store.open("team-memories", clock=clock)
    assert store.root == made.root
    assert Store.open(str(tmp_path / "new-one"), create=True, clock=clock).root.is_dir()
    memory = store.add("paths given as text work everywhere")
    export = tmp_path / "out.jsonl"
    export.write_text('{"body": "imported through a text path"}\n')
    assert len(store.import_memories(str(export)).added) == 1
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True)
    store.add_remote("origin", remote)
    store.sync()
    clone = Store.clone(str(remote), str(tmp_path / "clone"), clock=clock)
    assert clone.get(memory.id).body == memory.body
    other = Store.clone(remote, tmp_path / "clone-2", clock=clock)
    assert len(other.list()) == 2


# An interrupted import


class CtrlCWhileWriting(CollectingReporter):
    """A reporter whose progress callback raises KeyboardInterrupt, as a Ctrl-C would, once
    `after` memories of a bulk write are on disk: the interrupt lands mid-write every time."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        done = 0

        def advance(step: int) -> None:
            nonlocal done
            done += step
            if label == "writing" and done >= self.after:
                raise KeyboardInterrupt

        yield advance


def test_an_interrupted_import_leaves_nothing_and_a_rerun_imports_all_at_once(
    store: Store, tmp_path: Path
) -> None:
    import json

    import pygit2

    count = 3000
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        for n in range(count):
            out.write(json.dumps({"body": f"imported memory number {n} about topic {n % 97}"}))
            out.write("\n")
    head = store.repo.head.target
    memories = store.root / "memories"
    interrupted = Store(store.root, clock=store.clock, reporter=CtrlCWhileWriting(after=1000))
    with pytest.raises(KeyboardInterrupt):
        interrupted.import_memories(source)
    repo = pygit2.Repository(str(store.root))
    assert repo.head.target == head
    assert repo.status() == {}
    assert not [p for p in memories.rglob("*") if p.is_file()]

    again = run_mem("--store", str(store.root), "import", str(source))
    assert again.returncode == 0, again.stderr
    repo = pygit2.Repository(str(store.root))
    commit = repo.head.peel(pygit2.Commit)
    assert commit.parent_ids == [head]
    assert commit.message.startswith(f"import {count} memories from big.jsonl")
    assert repo.status() == {}
    assert len(list(memories.rglob("*.md"))) == count


# Snippets


def test_a_match_near_the_end_of_a_long_memory_gets_a_marked_snippet(store: Store) -> None:
    filler = " ".join(f"word{n % 400} filler text" for n in range(1700))  # over 5,000 words
    memory = store.add(f"A long log\n\n{filler}\n\nAt the very end: the flamingo migration.\n")
    [hit] = store.find("flamingo")
    assert hit.id == memory.id
    assert "**flamingo**" in hit.snippet
    assert "migration" in hit.snippet


# Changing identity


def test_after_changing_identity_the_next_find_is_right_without_reindex(
    keyed: Store, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = keyed.add("The kiwifruit vault code", encrypt=True)
    plain = keyed.add("kiwifruit salad recipe")
    assert {hit.id for hit in keyed.find("kiwifruit")} == {secret.id, plain.id}
    other = keys.create_identity(tmp_path / "other.txt", clock())
    monkeypatch.setenv("MEM_IDENTITY", str(other.path))
    reporter = CollectingReporter()
    hits = Store(keyed.root, clock=clock, reporter=reporter).find("kiwifruit")
    assert [(hit.id, hit.title) for hit in hits] == [(plain.id, "kiwifruit salad recipe")]
    assert any("not encrypted to your identity" in notice for notice in reporter.notices)
    monkeypatch.delenv("MEM_IDENTITY")
    hits = Store(keyed.root, clock=clock, reporter=CollectingReporter()).find("vault")
    assert [(hit.id, hit.title) for hit in hits] == [(secret.id, "The kiwifruit vault code")]
    assert "**vault**" in hits[0].snippet


# Text without spaces


def test_japanese_and_chinese_words_are_found_and_named(store: Store) -> None:
    japanese = store.add("日本語のメモ: デプロイは火曜日")
    chinese = store.add("部署流程：每周二上线", title="部署流程")
    store.add("Deploy on Tuesdays, in English")
    assert [hit.id for hit in store.find("デプロイ")] == [japanese.id]
    assert [hit.id for hit in store.find("火曜")] == [japanese.id]
    assert [hit.id for hit in store.find("上线")] == [chinese.id]
    assert [hit.id for hit in store.find("部署")] == [chinese.id]
    assert store.find("デプロイは水曜日") == []
    assert (
        japanese.path.rsplit("/", 1)[-1] == f"日本語のメモ-デプロイは火曜日-{japanese.id[-8:]}.md"
    )
    assert chinese.path.rsplit("/", 1)[-1] == f"部署流程-{chinese.id[-8:]}.md"
    assert (
        store.add("Café au lait", title="Café au lait")
        .path.rsplit("/", 1)[-1]
        .startswith("cafe-au-lait-")
    )
    result = run_mem("--store", str(store.root), "find", "デプロイ")
    assert result.returncode == 0, result.stderr
    assert "日本語のメモ" in result.stdout


def test_an_index_of_the_previous_format_is_rebuilt(store: Store) -> None:
    import json

    memory = store.add("日本語のメモ: デプロイは火曜日")
    state_file = store.index.home / "state.json"
    state = json.loads(state_file.read_text())
    state["format"] = 6
    state_file.write_text(json.dumps(state))
    reporter = CollectingReporter()
    again = Store(store.root, clock=store.clock, reporter=reporter)
    assert [hit.id for hit in again.find("デプロイ")] == [memory.id]
    assert "search index out of date: rebuilding it" in reporter.notices
