"""mem import (JSONL and folders of notes) and mem export --json, through library and CLI."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from memstore import ids, keys
from memstore.errors import InvalidInputError
from memstore.memory import FIELD_ORDER, new_memory
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem


def memory_files(store: Store) -> dict[str, bytes]:
    return {
        path.relative_to(store.root).as_posix(): path.read_bytes()
        for path in sorted((store.root / "memories").rglob("*"))
        if path.is_file()
    }


def commit_count(store: Store) -> int:
    repo = pygit2.Repository(str(store.root))
    return sum(1 for _ in repo.walk(repo.head.target))


def write_lines(path: Path, *items: object) -> Path:
    path.write_text(
        "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)
    )
    return path


def test_jsonl_import_keeps_fields_in_one_commit(store: Store, tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {
            "title": "Pytest for the web tests",
            "body": "We moved to pytest.",
            "tags": ["web", "#Testing"],
            "type": "decision",
            "created": "2025-03-04T10:00:00+02:00",
            "source": "alice",
            "session": "chat-7",
            "project": "shop",
            "reviewed": {"by": "bob", "ok": True},
        },
        {"body": "A note with nothing else"},
    )
    before = commit_count(store)
    result = store.import_memories(source)
    assert (len(result.added), result.present, result.problems) == (2, 0, [])
    assert commit_count(store) == before + 1
    assert store.log()[0].message.startswith("import 2 memories from in.jsonl\n\nadd ")
    first = store.get(result.added[0].id)
    assert first.path.startswith("memories/2025/03/pytest-for-the-web-tests-")
    assert first.tags == ["web", "testing"] and first.type == "decision"
    assert first.created_text == "2025-03-04T10:00:00+02:00" and first.source == "alice"
    assert first.session == "chat-7"
    assert list(first.fields)[5:7] == ["source", "session"]
    assert first.extra == {"project": "shop", "reviewed": {"by": "bob", "ok": True}}
    second = store.get(result.added[1].id)
    assert second.title == "A note with nothing else" and "source" not in second.fields
    assert [hit.id for hit in store.find("pytest")] == [first.id]
    assert store.check() == []


def test_importing_twice_adds_nothing(store: Store, tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"body": "Has a created time", "created": "2025-01-02T03:04:05Z"},
        {"body": "Has no created time", "title": "Plain"},
        {"id": "01jng2pe00dygsedqc02yx3ekd", "body": "Has its own id"},
        {"body": "Has no created time", "title": "Plain"},  # the same item twice in one file
    )
    first = store.import_memories(source)
    assert (len(first.added), first.present) == (3, 1)
    files, commits = memory_files(store), commit_count(store)
    again = store.import_memories(source)
    assert (len(again.added), again.present, again.problems) == (0, 4, [])
    assert memory_files(store) == files and commit_count(store) == commits


def test_content_ids_are_the_same_in_every_store(tmp_path: Path, clock: Clock) -> None:
    source = write_lines(tmp_path / "in.jsonl", {"body": "Same", "created": "2025-01-02T03:04:05Z"})
    one = Store.init(tmp_path / "one", clock=clock).import_memories(source)
    two = Store.init(tmp_path / "two", clock=clock).import_memories(source)
    assert one.added[0].id == two.added[0].id and one.added[0].path == two.added[0].path
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ids.time_of(one.added[0].id) == int(created.timestamp() * 1000)


def test_bad_lines_are_reported_and_the_rest_imported(tmp_path: Path, clock: Clock) -> None:
    store = Store.init(tmp_path / "s", clock=clock)
    source = write_lines(
        tmp_path / "in.jsonl",
        {"body": "good one"},
        "{not json",
        '["a list"]',
        {"title": "no body"},
        {"body": "bad time", "created": "last week"},
        {"body": "bad link", "links": ["nope"]},
        {"body": "bad tag", "tags": ["two words"]},
        {"body": "bad id", "id": "XYZ"},
        "",
        {"body": "good two"},
    )
    result = run_mem("--store", str(store.root), "import", str(source))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{source}:2: not valid JSON (Expecting property name enclosed in double quotes)",
        f"{source}:3: a line must be a JSON object with at least 'body'",
        f"{source}:4: 'body' is missing or empty: every memory needs text",
        f"{source}:5: created: 'last week' is not an ISO 8601 timestamp"
        " (e.g. 2026-11-21T10:55:17+01:00)",
        f"{source}:6: links[0]: 'nope' is not a valid memory id"
        " (26 lowercase Crockford base32 characters)",
        f"{source}:7: tag 'two words' contains a space or comma: use one word per tag"
        " (e.g. -t a -t b)",
        f"{source}:8: id: 'XYZ' is not a memory id (26 Crockford characters)",
        "imported 2 new, 0 already present, 7 bad lines left out",
    ]
    assert sorted(item.title for item in store.list()) == ["good one", "good two"]
    again = run_mem("--store", str(store.root), "import", str(source), "--json")
    assert again.returncode == 1  # bad lines were left out
    data = json.loads(again.stdout)
    assert (data["imported"], data["present"], len(data["problems"])) == (0, 2, 7)
    assert data["problems"][0] == {
        "file": str(source),
        "line": 2,
        "message": "not valid JSON (Expecting property name enclosed in double quotes)",
    }


def test_folder_of_notes_keeps_front_matter(store: Store, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "projects").mkdir(parents=True)
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "hidden.md").write_text("not a note\n")
    (vault / "Deploy process.md").write_text(
        "---\ntags: [ops, team/infra]\naliases: [shipping]\ncreated: 2024-05-06\n"
        "rating: 4\n---\nBuild, tag, push.\n"
    )
    (vault / "projects" / "Shop.md").write_text("No front-matter, see [[Deploy process]].\n")
    result = store.import_memories(vault)
    assert (len(result.added), result.problems) == (2, [])
    deploy = store.get(result.added[0].id)
    assert deploy.title == "Deploy process" and deploy.tags == ["ops", "team/infra"]
    assert deploy.extra == {"aliases": ["shipping"], "rating": 4}
    assert deploy.created_text == "2024-05-06T00:00:00Z" and deploy.path.startswith(
        "memories/2024/05/deploy-process-"
    )
    shop = store.get(result.added[1].id)
    assert shop.title == "Shop"
    assert [item.id for item in store.backlinks(deploy.id)] == [shop.id]
    again = store.import_memories(vault)
    assert (len(again.added), again.present) == (0, 2)


def test_importing_another_stores_folder_keeps_ids_and_times(
    store: Store, tmp_path: Path, clock: Clock
) -> None:
    other = Store.init(tmp_path / "other", clock=clock)
    memory = other.add("Kept as it is", tags=["x"], extra={"when": "2026-01-02"})
    (other.root / memory.path).write_text(
        (other.root / memory.path).read_text().replace(memory.created_text, "2026-11-21T09:00:00Z")
    )
    result = store.import_memories(other.root / "memories")
    assert [m.id for m in result.added] == [memory.id]
    assert (store.root / memory.path).read_bytes() == (other.root / memory.path).read_bytes()


def test_export_then_import_gives_the_same_files(store: Store, tmp_path: Path) -> None:
    a = store.add("Deploy process: build, tag, push.", tags=["ops"], type="procedure")
    b = store.add("Release checklist", extra={"project": "shop", "path": "src/app.py"})
    store.link(b.id, a.id)
    c = store.add("Deploys: build, sign, tag, push.", supersedes=a.id, source="bot")
    store.update(c.id, title="Deploy process, signed")  # the file keeps its first name
    store.import_memories(write_lines(tmp_path / "in.jsonl", {"body": "No source at all"}))
    exported = run_mem("--store", str(store.root), "export", "--json")
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == f"exported {len(memory_files(store))} memories\n"
    lines = exported.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert list(records[0]) == ["id", "title", "type", "tags", "created", "source", "body", "path"]
    dump = tmp_path / "out.jsonl"
    dump.write_text(exported.stdout)
    fresh = Store.init(tmp_path / "fresh", clock=store.clock)
    result = run_mem("--store", str(fresh.root), "import", str(dump))
    assert result.returncode == 0, result.stderr
    assert memory_files(fresh) == memory_files(store)
    assert fresh.get(b.id).fields["path"] == "src/app.py"  # a field of its own, not a location
    again = mem_ok("--store", str(fresh.root), "export", "--json")
    assert again.stdout == exported.stdout


def test_export_needs_json_and_leaves_out_unreadable_files(store: Store) -> None:
    store.add("Readable")
    broken = store.root / "memories" / "2026" / "11" / "broken-aaaaaaaa.md"
    broken.write_text("no front-matter\n")
    plain = run_mem("--store", str(store.root), "export")
    assert plain.returncode == 2  # a usage error
    assert plain.stderr == (
        "mem: error: give --json: JSON Lines is the export format (mem export --json)\n"
    )
    result = run_mem("--store", str(store.root), "export", "--json")
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 1
    assert (
        "mem: warning: memories/2026/11/broken-aaaaaaaa.md:1: no front-matter: the file must"
        " start with a line '---': left out\n"
    ) in result.stderr


def test_encrypted_memories_export_with_the_key_only(store: Store, tmp_path: Path) -> None:
    store.key_init()
    secret = store.add("The vault code is 1234", encrypt=True)
    store.add("Plain one")
    records = store.export_memories().records
    exported = {r["id"]: r for r in records}
    assert exported[secret.id]["body"] == "The vault code is 1234\n"
    assert exported[secret.id]["path"] == secret.path  # .md.age: imported encrypted again
    dump = tmp_path / "out.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in records))
    unkeyed = Store.init(tmp_path / "unkeyed", clock=store.clock).import_memories(dump)
    assert len(unkeyed.added) == 1 and [p.line for p in unkeyed.problems] == [
        sorted(exported).index(secret.id) + 1
    ]
    assert "no recipients for" in unkeyed.problems[0].message
    copy = Store.init(tmp_path / "copy", clock=store.clock)
    copy.key_init()
    imported = copy.import_memories(dump)
    assert imported.problems == []
    assert (copy.root / secret.path).read_bytes().startswith(b"age-encryption.org/")
    assert copy.get(secret.id).body == "The vault code is 1234\n"
    assert copy.log()[0].message.count(secret.id) == 1
    assert "vault code" not in copy.log()[0].message
    keys.identity_path().unlink()
    keyless = Store(store.root, clock=store.clock)
    result = keyless.export_memories()
    assert [r["id"] for r in result.records] != [] and secret.id not in {
        r["id"] for r in result.records
    }
    assert [p.file for p in result.left_out] == [secret.path]
    assert "1234" not in json.dumps(result.records)


MOMENT = datetime(2025, 6, 30, 23, 30, 0, tzinfo=timezone(timedelta(hours=-5)))
texts = st.text(st.characters(blacklist_categories=("Cs", "Cn")), min_size=1, max_size=120)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    texts,
    st.lists(st.text(max_size=20), max_size=3),
)
extras = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True).filter(
        lambda key: key not in FIELD_ORDER and key not in ("body", "path")
    ),
    scalars,
    max_size=3,
)
tag_lists = st.lists(
    st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=10),
    max_size=4,
)
items = st.tuples(texts, st.one_of(st.none(), texts), tag_lists, extras, st.booleans())


@settings(max_examples=25, deadline=None)
@given(st.lists(items, min_size=1, max_size=6))
def test_any_store_exports_and_imports_to_the_same_files(batch: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = Store.init(root / "source", clock=Clock())
        memories = []
        for number, (body, title, tags, extra, with_source) in enumerate(batch):
            moment = MOMENT + timedelta(minutes=number)
            try:
                memory = new_memory(
                    body,
                    now=moment,
                    title=title,
                    tags=tags,
                    source="alice" if with_source else None,
                    extra=extra,
                )
            except InvalidInputError:
                continue  # text or title with nothing in it: refused, as by mem add
            memories.append(memory)
        if not memories:
            return
        source.add_many(memories, default_source=False)
        exported = source.export_memories()
        assert exported.left_out == []
        dump = root / "out.jsonl"
        dump.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in exported.records))
        copy = Store.init(root / "copy", clock=Clock())
        result = copy.import_memories(dump)
        assert result.problems == [] and len(result.added) == len(memories)
        assert memory_files(copy) == memory_files(source)
        assert copy.import_memories(dump).present == len(memories)
