"""`mem diff`'s shortcuts give what the long way gives (review.py, gitrepo.changed_blobs)."""

from __future__ import annotations

import difflib

import pygit2
from hypothesis import given
from hypothesis import strategies as st

from memstore import gitrepo
from memstore.memory import MEMORY_DIR, parse
from memstore.review import Side, _body_diff
from memstore.store import Store

bodies = st.lists(st.text(alphabet="ab \t-+@", max_size=5), max_size=4).map(
    lambda lines: "".join(line + "\n" for line in lines)
)


def _memory(body: str, path: str) -> object:
    return parse(f"---\nid: x\n---\n{body}".encode(), path)


@given(bodies, bodies, st.booleans(), st.booleans())
def test_added_and_emptied_bodies_diff_as_difflib_does(
    before: str, after: str, old_exists: bool, new_exists: bool
) -> None:
    if not old_exists and not new_exists:
        return
    a = Side("memories/a.md", _memory(before, "memories/a.md")) if old_exists else None  # type: ignore[arg-type]
    b = Side("memories/b.md", _memory(after, "memories/b.md")) if new_exists else None  # type: ignore[arg-type]
    old_body = before if old_exists else ""
    new_body = after if new_exists else ""
    expected = list(
        difflib.unified_diff(
            old_body.splitlines(),
            new_body.splitlines(),
            fromfile=f"a/{a.path}" if a else "/dev/null",
            tofile=f"b/{b.path}" if b else "/dev/null",
            lineterm="",
        )
    )
    if old_body.splitlines() == new_body.splitlines():
        expected = []
    assert _body_diff(a.memory if a else None, b.memory if b else None, a, b) == expected


def test_changed_blobs_name_each_blob_of_each_side(store: Store) -> None:
    kept = store.add("kept as it is")
    edited = store.add("to be edited")
    gone = store.add("to be removed")
    old = str(store.repo.head.target)
    store.update(edited.id, body="edited now")
    store.remove(gone.id)
    added = store.add("added later")
    new = str(store.repo.head.target)
    blobs = gitrepo.changed_blobs(store.repo, old, new, MEMORY_DIR)
    assert blobs is not None
    assert sorted(blobs) == sorted(gitrepo.changed_paths(store.repo, old, new, MEMORY_DIR) or ())
    assert kept.path not in blobs
    old_tree = store.repo.revparse_single(old).peel(pygit2.Tree)
    new_tree = store.repo.revparse_single(new).peel(pygit2.Tree)
    assert blobs[edited.path] == (str(old_tree[edited.path].id), str(new_tree[edited.path].id))
    assert blobs[gone.path] == (str(old_tree[gone.path].id), None)
    assert blobs[added.path] == (None, str(new_tree[added.path].id))


def test_headers_read_the_fast_way_give_pyyaml_s_values_in_a_diff(store: Store) -> None:
    import yaml

    from memstore import review, yamlrules

    old = str(store.repo.head.target)
    titles = [
        "Notes on C# retry",
        "Decision: drop it",
        "it's C#: 'quoted'",
        "a #comment",
        "Café #1",
    ]
    for number, title in enumerate(titles):
        store.add(f"body {number}", title=title, tags=["c#", "c++"])
    result = review.compare(store.repo, old, str(store.repo.head.target))
    assert sorted(change.title for change in result.changes) == sorted(titles)
    for change in result.changes:
        header = (store.root / change.path).read_text().split("---\n")[1]
        expected = yaml.load(header, Loader=yamlrules.FrontMatterLoader)  # noqa: S506
        assert expected["title"] == change.title and expected["tags"] == ["c#", "c++"]
        # Only text outside ASCII in a quoted title still goes to PyYAML.
        fast = yamlrules.load_tidy(header)
        assert fast == (None if change.title == "Café #1" else expected)
