"""mem diff: memory-level review of a range of commits, in text, Markdown and JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pygit2
import pyrage

from memstore import gitrepo, review
from memstore.memory import new_memory
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem


def head(store: Store) -> str:
    return str(store.repo.head.target)


def by_id(result: review.Review) -> dict[str, review.Change]:
    return {change.id: change for change in result.changes}


def test_classifies_added_edited_retitled_retagged_retyped_deleted(store: Store) -> None:
    keep = store.add("Use blue-green deploys\n\nSwitch the router last.", tags=["ops", "web"])
    gone = store.add("A stale note about CSS")
    start = head(store)
    fresh = store.add("Postgres 16 is the target", tags=["db"])
    store.update(keep.id, body="Use blue-green deploys\n\nSwitch the router first.")
    store.update(keep.id, title="Deploys: blue-green", tags=["ops", "deploy"], type="decision")
    store.remove(gone.id)
    result = store.diff(f"{start}..HEAD")
    changes = by_id(result)
    assert [c.status for c in result.changes] == ["added", "changed", "deleted"]
    assert changes[fresh.id].kinds == ["added"]
    assert changes[gone.id].kinds == ["deleted"] and changes[gone.id].title == gone.title
    edited = changes[keep.id]
    assert edited.kinds == ["edited", "retitled", "retagged", "retyped"]
    assert edited.old_path is None  # a new title keeps the file where it is
    assert edited.old_title == "Use blue-green deploys" and edited.title == "Deploys: blue-green"
    assert (edited.tags_added, edited.tags_removed) == (["deploy"], ["web"])
    assert (edited.old_type, edited.type) == ("note", "decision")
    assert "-Switch the router last." in edited.diff
    assert "+Switch the router first." in edited.diff
    assert result.counts() == {
        "added": 1,
        "deleted": 1,
        "edited": 1,
        "retitled": 1,
        "retagged": 1,
        "retyped": 1,
    }


def test_a_retag_alone_is_not_a_body_edit(store: Store) -> None:
    memory = store.add("Cache keys include the locale", tags=["cache"])
    store.update(memory.id, tags=["cache", "i18n"])
    (change,) = store.diff().changes
    assert change.kinds == ["retagged"] and change.diff == []
    assert change.old_path is None


def test_a_moved_file_is_followed_by_id(store: Store) -> None:
    memory = store.add("Rotate the API keys every quarter")
    start = head(store)
    data = (store.root / memory.path).read_bytes()
    (store.root / memory.path).unlink()
    target = store.root / "memories" / "security" / "rotate-keys.md"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    store.commit_pending()
    (change,) = store.diff(f"{start}..HEAD").changes
    assert change.id == memory.id and change.kinds == ["moved"]
    assert change.old_path == memory.path and change.path == "memories/security/rotate-keys.md"


def test_supersedes_names_the_superseded_memory(store: Store) -> None:
    old = store.add("Deploy on Fridays is fine")
    new = store.add("Never deploy on Fridays", extra={"supersedes": [old.id]})
    (change,) = store.diff().changes
    assert change.id == new.id and change.kinds == ["added", "supersedes"]
    assert change.supersedes == [{"id": old.id, "title": "Deploy on Fridays is fine"}]
    text = review.render_text(store.diff())
    assert f"supersedes {old.id} “Deploy on Fridays is fine”" in text
    # A supersedes entry added to an existing memory is its own kind.
    other = store.add("Friday deploys need two reviewers")
    memory = store.get(other.id)
    memory.fields["supersedes"] = [old.id]
    (store.root / memory.path).write_bytes(memory.to_bytes())
    store.commit_pending()
    (change,) = store.diff().changes
    assert change.kinds == ["supersedes"] and change.supersedes[0]["id"] == old.id


def test_ranges_single_rev_merge_base_and_default(store: Store, tmp_path: Path) -> None:
    first = store.add("one")
    a = head(store)
    store.add("two")
    b = head(store)
    store.add("three")
    assert {c.title for c in store.diff(a).changes} == {"two", "three"}  # a..HEAD
    assert {c.title for c in store.diff(f"{a}..{b}").changes} == {"two"}
    assert {c.title for c in store.diff(f"{a}...{b}").changes} == {"two"}
    assert {c.title for c in store.diff().changes} == {"three"}  # no upstream: the last commit
    # The root commit has no parent: everything in it is new.
    root = [e.commit for e in store.log()][-1]
    assert store.diff(f"{root}..{a}").changes[0].id == first.id
    # With an upstream, the default is what has not been pushed yet.
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True)
    store.add_remote("origin", str(remote))
    store.sync()
    store.add("four")
    store.add("five")
    result = store.diff()
    assert result.spec == "unpushed commits"
    assert {c.title for c in result.changes} == {"four", "five"}


def test_bad_range_is_one_line_error(store: Store) -> None:
    store.add("something")
    result = run_mem("--store", str(store.root), "diff", "nope..HEAD")
    assert result.returncode == 1
    assert result.stderr == (
        "mem: error: unknown revision or range 'nope..HEAD': give a commit, branch or tag,"
        " A..B or A...B\n"
    )
    bad = run_mem("--store", str(store.root), "diff", "--format", "html")
    assert bad.returncode == 2
    assert "Invalid value for '--format': 'html' is not one of 'text', 'md', 'json'." in bad.stderr


def test_encrypted_memories_are_summarised_by_id_without_a_key(store: Store, clock: Clock) -> None:
    identity = pyrage.x25519.Identity.generate()
    memory = new_memory("The vault password hint is blue", now=clock(), title="Vault hint")
    path = f"memories/2026/11/{memory.id}.md.age"
    cipher = pyrage.encrypt(memory.to_bytes(), [identity.to_public()])
    gitrepo.commit_files(store.repo, {path: cipher}, "add encrypted", clock())
    (change,) = store.diff().changes
    assert (change.id, change.status, change.encrypted, change.readable) == (
        memory.id,
        "added",
        True,
        False,
    )
    text = review.render_text(store.diff())
    assert "(encrypted)" in text and "vault" not in text.lower().replace(path.lower(), "")
    # With the key, the memory is read like any other.
    spec, old, new = review.resolve_range(store.repo, None)
    result = review.compare(
        store.repo, old, new, spec, decrypt=lambda data, _: pyrage.decrypt(data, [identity])
    )
    (change,) = result.changes
    assert change.title == "Vault hint" and change.readable
    assert "+The vault password hint is blue" in change.diff


def test_markdown_is_a_pull_request_comment(store: Store) -> None:
    store.add("Pipes | and <b>tags</b> in a title\n\nBody with ``` a fence", tags=["x"])
    text = review.render_markdown(store.diff())
    assert text.startswith(review.MD_MARKER + "\n### Memory changes\n")
    assert "| added | **Pipes \\| and \\<b\\>tags\\</b\\> in a title**" in text
    assert "<details><summary>" in text and "````diff" in text
    assert "+Body with ``` a fence" in text
    empty = review.render_markdown(review.Review("x", None, "0" * 40, []))
    assert "No memory changes" in empty


def test_cli_text_md_and_json(store: Store) -> None:
    memory = store.add("Prefer httpx over requests", tags=["python"])
    base = ["--store", str(store.root), "diff"]
    text = run_mem(*base)
    assert text.returncode == 0, text.stderr
    assert f"added    {memory.id}  Prefer httpx over requests" in text.stdout
    assert "+Prefer httpx over requests" in text.stdout
    md = mem_ok(*base, "--format", "md")
    assert md.stdout.startswith(review.MD_MARKER)
    data = json.loads(mem_ok(*base, "--json").stdout)
    assert list(data) == ["range", "counts", "changes"]
    assert data["counts"] == {"added": 1}
    assert data["changes"][0]["id"] == memory.id and data["changes"][0]["kinds"] == ["added"]
    assert data["range"]["to"] == head(store)


def test_agrees_with_git_about_which_files_changed(store: Store) -> None:
    start = head(store)
    a = store.add("alpha")
    store.add("beta")
    store.update(a.id, body="alpha two")
    listed = subprocess.run(
        ["git", "diff", "--name-only", f"{start}..HEAD", "--", "memories"],
        cwd=store.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(c.path for c in store.diff(f"{start}..HEAD").changes) == sorted(listed)


def test_encrypted_memories_with_the_store_key_and_without(store: Store, tmp_path: Path) -> None:
    store.key_init()
    secret = store.add("The vault opens with zebracanary\n\nTurn twice.", encrypt=True)
    assert secret.path.endswith(".md.age")
    (change,) = store.diff().changes
    assert change.title == "The vault opens with zebracanary" and change.encrypted
    assert "+Turn twice." in change.diff
    # Without the key (as in CI), the memory is named by id and nothing of it shows.
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    for form in ("text", "md", "json"):
        result = run_mem(
            "--store",
            str(store.root),
            "diff",
            "--format",
            form,
            env={"XDG_CONFIG_HOME": str(nobody)},
        )
        assert result.returncode == 0, result.stderr
        assert secret.id in result.stdout
        assert "zebracanary" not in result.stdout and "Turn twice" not in result.stdout
    text = mem_ok("--store", str(store.root), "diff", env={"XDG_CONFIG_HOME": str(nobody)})
    assert "encrypted: contents not shown (no key to read it)" in text.stdout


def test_a_superseded_title_is_read_from_the_commit_without_the_index(
    store: Store,
) -> None:
    old = store.add("Deploy on Fridays is fine")
    new = store.add("Never deploy on Fridays", supersedes=old.id)
    shutil.rmtree(store.git_dir / "memstore")  # as in a fresh clone: no search index yet
    (change,) = Store(store.root, clock=store.clock).diff().changes
    assert change.id == new.id
    assert change.supersedes == [{"id": old.id, "title": "Deploy on Fridays is fine"}]
    assert not (store.git_dir / "memstore").exists()  # no index was built to find the title


def test_a_broken_file_is_one_unreadable_change(store: Store) -> None:
    memory = store.add("Fine at first")
    start = head(store)
    path = store.root / memory.path
    path.write_text("no front-matter here\n")
    gitrepo.commit_files(store.repo, {memory.path: path.read_bytes()}, "break it", store.clock())
    path.write_text("still no front-matter\n")
    gitrepo.commit_files(store.repo, {memory.path: path.read_bytes()}, "again", store.clock())
    (change,) = store.diff(f"{head(store)}~1..HEAD").changes
    assert (change.status, change.kinds, change.readable) == ("changed", ["edited"], False)
    assert "no front-matter" in change.problem
    (change,) = store.diff(f"{start}..HEAD").changes  # readable before, not after
    assert (change.id, change.title, change.path) == (memory.id, "Fine at first", memory.path)
    assert change.kinds == ["edited"] and not change.readable


def test_links_added_and_removed_are_named(store: Store) -> None:
    a = store.add("Deploys use blue-green")
    b = store.add("The router switch procedure")
    store.link(a.id, b.id)
    (change,) = store.diff().changes
    assert change.kinds == ["relinked"] and change.links_added == [b.id]
    assert change.link_titles == {b.id: "The router switch procedure"}
    assert f"link +{b.id} “The router switch procedure”" in review.render_text(store.diff())
