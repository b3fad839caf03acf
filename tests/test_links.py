"""Links: `[[wiki links]]`, `links:` ids, backlinks, related memories, broken links, Obsidian."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memstore.errors import AmbiguousIdError, InvalidInputError, MemoryNotFoundError
from memstore.links import Resolver, key, stem, wiki_link, wiki_links
from memstore.store import Store
from tests.conftest import mem_ok, run_mem


def test_wiki_links_with_alias_heading_and_code() -> None:
    body = (
        "See [[Deploy process]] and [[use-pytest-3b4pdmp6|the pytest note]].\n"
        "Also [[01m7yrg5w86383ba0y3b4pdmp6#Steps]] but not `[[inline code]]`.\n"
        "```\n[[in a fence]]\n```\n"
        "[[ spaced  name |x]] [[]] [[a|]]\n"
    )
    found = [(link.target, link.alias, link.line) for link in wiki_links(body)]
    assert found == [
        ("Deploy process", None, 1),
        ("use-pytest-3b4pdmp6", "the pytest note", 1),
        ("01m7yrg5w86383ba0y3b4pdmp6", None, 2),
        ("spaced  name", "x", 6),
        ("a", None, 6),
    ]


def test_resolver_rules() -> None:
    resolver = Resolver()
    resolver.add(
        "01m7yrg5w86383ba0y3b4pdmp6",
        "memories/2026/11/use-pytest-3b4pdmp6.md",
        [key("Use pytest"), key("pytest rule")],
    )
    resolver.add(
        "01m7yrxpg0h7tz87wt62xpt49t",
        "memories/2026/11/staging-62xpt49t.md",
        [key("Staging password")],
    )
    resolver.add(
        "01m7yrxpg0aaaaaaaaaaaaaaaa",
        "memories/2026/11/other-aaaaaaaa.md",
        [key("Staging password")],
    )
    pytest_id = "01m7yrg5w86383ba0y3b4pdmp6"
    assert resolver.resolve(pytest_id) == [pytest_id]
    assert resolver.resolve("USE-PYTEST-3b4pdmp6") == [pytest_id]  # file name, any case
    assert resolver.resolve("use-pytest-3b4pdmp6.md") == [pytest_id]
    assert resolver.resolve("memories/2026/11/use-pytest-3b4pdmp6") == [pytest_id]
    assert resolver.resolve("use   PYTEST") == [pytest_id]  # title
    assert resolver.resolve("Pytest rule") == [pytest_id]  # alias
    assert resolver.resolve("01m7yrg5w8") == [pytest_id]  # unique prefix
    assert resolver.resolve("01m7yrxpg0") == []  # ambiguous prefix
    assert resolver.resolve("01m7yrg") == []  # too short to be taken for an id
    assert len(resolver.resolve("staging password")) == 2  # a shared title names both
    assert resolver.resolve("nothing like it") == []


def test_link_adds_the_id_once(store: Store) -> None:
    a = store.add("Deploy process: build, tag, push.")
    b = store.add("Release checklist", title="Release checklist")
    commits = len(store.log())
    linked = store.link(a.id, "release CHECKLIST")
    assert linked is not None and linked.links == [b.id]
    assert store.get(a.id).fields["links"] == [b.id]
    assert store.log()[0].message == f"link {a.id}: {a.title} to {b.id}"
    assert store.link(a.id[:12], b.id) is None
    assert len(store.log()) == commits + 1
    with pytest.raises(InvalidInputError, match="cannot link to itself"):
        store.link(a.id, a.id)
    with pytest.raises(MemoryNotFoundError):
        store.link(a.id, "no such title")
    store.add("Another one", title="Release checklist")
    with pytest.raises(AmbiguousIdError, match="2 memories are named 'Release checklist'"):
        store.link(a.id, "Release checklist")


def test_backlinks_from_links_field_and_wiki_links(store: Store) -> None:
    target = store.add("How we deploy", title="Deploy process", extra={"aliases": ["shipping"]})
    by_field = store.add("Uses the deploy steps")
    store.link(by_field.id, target.id)
    by_title = store.add("Before a release read [[deploy PROCESS]].")
    by_stem = store.add(f"See {wiki_link(target)} for the steps.")
    by_alias = store.add("All about [[shipping|how we ship]].")
    by_prefix = store.add(f"Short form [[{target.id[:12]}]].")
    store.add("Mentions deploy process without a link.")
    found = [item.id for item in store.backlinks(target.id)]
    expected = {by_field.id, by_title.id, by_stem.id, by_alias.id, by_prefix.id}
    assert set(found) == expected and found == sorted(found, reverse=True)
    assert store.backlinks(by_field.id) == []


def test_related_lists_links_both_ways_then_similar(store: Store) -> None:
    old = store.add("The CI cache key uses the lock file hash.")
    memory = store.add(
        "The CI cache key uses the lock file hash and the Python version.", supersedes=old.id
    )
    newer = store.add("CI cache: also the OS image.", supersedes=memory.id)
    linked = store.add("Runner setup notes")
    store.link(memory.id, linked.id)
    linking = store.add(f"Why builds are slow: see [[{memory.id}]].")
    similar = store.add("The CI cache key must include the Python version too.")
    store.add("Lunch is at noon on Fridays.")
    hits = store.related(memory.id)
    pairs = [(hit.id, hit.relation) for hit in hits]
    assert pairs[:4] == [
        (old.id, "supersedes"),
        (newer.id, "superseded by"),
        (linked.id, "links to"),
        (linking.id, "linked from"),
    ]
    assert (similar.id, "similar") in pairs[4:]
    assert all(hit.score > 0 for hit in hits[4:]) and hits[0].score == 0.0
    assert memory.id not in [hit.id for hit in hits]
    assert len(store.related(memory.id, limit=2)) == 2


def test_show_lists_backlinks_and_find_related_json(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    target = store.add("Deploy process: build, tag, push.", title="Deploy process")
    source = store.add("Read [[Deploy process]] first.")
    shown = mem_ok("--store", str(store.root), "show", target.id)
    assert shown.stdout.endswith(f"\nLinked from:\n  {source.id}  {source.title}\n")
    data = json.loads(mem_ok("--store", str(store.root), "show", target.id, "--json").stdout)
    assert data["backlinks"] == [{"id": source.id, "title": source.title}]
    assert data == store.view(target.id).to_dict()  # one function builds it, for MCP as well
    assert data["wikilink"] == f"[[{stem(target.path)}|Deploy process]]"
    related = mem_ok("--store", str(store.root), "find", "--related", target.id, "--json")
    results = json.loads(related.stdout)["results"]
    assert results[0]["id"] == source.id and results[0]["relation"] == "linked from"
    mixed = run_mem("--store", str(store.root), "find", "deploy", "--related", target.id)
    assert mixed.returncode == 2  # a usage error
    assert mixed.stderr == "mem: error: --related takes no search words, filters or --conflicts\n"
    linked = mem_ok("--store", str(store.root), "link", source.id, target.id[:12])
    assert linked.stdout == f"linked {source.id} to {target.id}\n"
    again = mem_ok("--store", str(store.root), "link", source.id, target.id, "--json")
    assert json.loads(again.stdout) == {"changed": False, "memory": None}


def test_check_reports_broken_links_with_lines(store: Store) -> None:
    target = store.add("Exists", title="Existing note")
    memory = store.add("Good [[Existing note]] and bad [[Missing note]].\n\nAlso [[0123]].")
    store.link(memory.id, target.id)
    edited = store.get(memory.id)
    edited.fields["links"] = [target.id, "01m7yrg5w86383ba0y3b4pdmp6"]
    (store.root / memory.path).write_bytes(edited.to_bytes())
    problems = [str(p) for p in store.check()]
    header = (store.root / memory.path).read_text().split("\n")
    link_line = header.index("  - 01m7yrg5w86383ba0y3b4pdmp6") + 1
    body_line = header.index("Good [[Existing note]] and bad [[Missing note]].") + 1
    assert problems == [
        f"{memory.path}:{link_line}: broken link links: 01m7yrg5w86383ba0y3b4pdmp6: no memory"
        " has this id, file name, title or alias",
        f"{memory.path}:{body_line}: broken link [[Missing note]]: no memory has this id, file"
        " name, title or alias",
        f"{memory.path}:{body_line + 2}: broken link [[0123]]: no memory has this id, file name,"
        " title or alias",
    ]


def test_check_reports_duplicate_ids_and_ignores_hidden_folders(store: Store) -> None:
    memory = store.add("Original")
    copy = store.root / memory.path.replace(".md", "-copy.md")
    copy.write_bytes((store.root / memory.path).read_bytes())
    hidden = store.root / "memories" / ".obsidian"
    hidden.mkdir()
    (hidden / "workspace.json").write_text("{}")
    problems = [str(p) for p in store.check()]
    assert len(problems) == 1 and f"duplicate id {memory.id}" in problems[0]


# Obsidian reads a vault with its own rules: a note's name is its file name, front-matter
# `tags` is a list of tags, and [[target|text]] links to the note whose file name (or
# vault-relative path) without .md is target, whatever the case.
OBSIDIAN_TAG = re.compile(r"^(?![0-9]+$)[\w/-]+$")


def _obsidian_view(root: Path) -> tuple[dict[str, Path], list[tuple[Path, dict[str, object], str]]]:
    import frontmatter

    notes = [p for p in root.rglob("*.md") if not any(s.startswith(".") for s in p.parts)]
    by_name = {p.stem.lower(): p for p in notes}
    by_name.update({p.relative_to(root).with_suffix("").as_posix().lower(): p for p in notes})
    read = []
    for path in notes:
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
        read.append((path, dict(post.metadata), post.content))
    return by_name, read


def test_store_opens_as_an_obsidian_vault(store: Store) -> None:
    deploy = store.add("Build, tag, push.", title="Deploy process", tags=["ops", "team/infra"])
    text = f"Before a release, follow {wiki_link(deploy)}.\n\nSee also [[{stem(deploy.path)}]]."
    checklist = store.add(text, title="Release checklist", tags=["release"])
    store.link(checklist.id, deploy.id)
    (store.root / ".obsidian").mkdir()
    (store.root / ".obsidian" / "app.json").write_text("{}")
    by_name, notes = _obsidian_view(store.root)
    memories = {m.id: m for m in (store.get(deploy.id), store.get(checklist.id))}
    assert len(notes) == 2
    resolved = 0
    for _path, metadata, content in notes:
        memory = memories[str(metadata["id"])]
        assert metadata["title"] == memory.title
        assert metadata["tags"] == memory.tags
        assert all(OBSIDIAN_TAG.match(tag) for tag in memory.tags)
        assert metadata.get("links", []) == memory.links
        for match in re.finditer(r"\[\[([^\]|#]+)", content):
            assert by_name[match.group(1).strip().lower()] == store.root / deploy.path
            resolved += 1
    assert resolved == 2
    # memstore sees the same links, and the Obsidian folder disturbs nothing.
    assert [item.id for item in store.backlinks(deploy.id)] == [checklist.id]
    assert store.check() == []
    store.add("One more")  # commits nothing but the memory
    assert store.log()[0].message.startswith("add ")


link_text = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="[]|#^`\n\r\x85\u2028\u2029"
    ),
    min_size=1,
    max_size=30,
).filter(lambda text: text.strip())


@given(st.lists(st.tuples(link_text, st.one_of(st.none(), link_text)), min_size=1, max_size=5))
def test_every_written_wiki_link_is_read_back(links: list[tuple[str, str | None]]) -> None:
    body = " and ".join(
        f"[[{target}|{alias}]]" if alias else f"[[{target}]]" for target, alias in links
    )
    found = [(link.target, link.alias) for link in wiki_links(body)]
    assert found == [(target.strip(), alias.strip() if alias else None) for target, alias in links]
