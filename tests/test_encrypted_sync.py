"""mem sync with encrypted memories: merges of the decrypted text, and replicas without the key."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstore import crypto
from memstore.crypto import Keyring
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import Clock
from tests.test_encrypted_store import plaintext_hits

MARKERS = ("zebracanary", "kiwifruit", "mangosteen", "lychee")
BODY = "Vault zebracanary\nline two\nline three\nline four\nline five\n"
GIT = shutil.which("git")


@pytest.fixture
def trio(tmp_path: Path, clock: Clock) -> tuple[Store, Store, str, Path]:
    """Two key holders (one identity) sharing a bare remote, and an encrypted memory on both."""
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")
    first = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    first.key_init()
    memory = first.add(BODY, encrypt=True)
    first.sync()
    second = Store.clone(str(remote), tmp_path / "b", clock=clock)
    return first, second, memory.id, remote


def edit_line(store: Store, memory_id: str, old: str, new: str) -> None:
    memory = store.get(memory_id)
    assert store.update(memory_id, body=memory.body.replace(old, new)) is not None


def test_concurrent_edits_of_different_lines_merge(trio: tuple[Store, Store, str, Path]) -> None:
    first, second, memory_id, remote = trio
    edit_line(first, memory_id, "line two", "line two kiwifruit")
    edit_line(second, memory_id, "line four", "line four mangosteen")
    first.sync()
    result = second.sync()
    path = second.get(memory_id).path
    assert result.merged == [path] and result.conflicts == []
    first.sync()
    for store in (first, second):
        body = store.get(memory_id).body
        assert "line two kiwifruit" in body and "line four mangosteen" in body
        assert [h.id for h in store.find("kiwifruit mangosteen")] == [memory_id]
    merge = second.repo.head.peel(pygit2.Commit)
    assert len(merge.parents) == 2 and "zebracanary" not in merge.message
    for store in (first, second):
        assert plaintext_hits(store, MARKERS) == []
    bare = pygit2.Repository(str(remote))
    assert not [
        oid for oid in bare.odb if any(m.encode() in bare.odb.read(oid)[1] for m in MARKERS)
    ]


def test_edits_of_one_line_leave_a_conflict_block_inside_the_ciphertext(
    trio: tuple[Store, Store, str, Path],
) -> None:
    first, second, memory_id, _ = trio
    edit_line(first, memory_id, "line three", "line three kiwifruit")
    edit_line(second, memory_id, "line three", "line three mangosteen")
    first.sync()
    result = second.sync()
    path = second.get(memory_id).path
    assert result.conflicts == [path]
    assert second.conflicts() == [path]  # found by decrypting the work tree
    body = second.get(memory_id).body
    assert "kiwifruit" in body and "mangosteen" in body
    assert first.sync().conflicts == [path]  # a fast-forward to the merge reports it too
    second.resolve_conflict(memory_id, keep="both")
    assert second.conflicts() == []
    assert plaintext_hits(second, MARKERS) == []


def test_replica_without_the_key_keeps_both_versions(
    trio: tuple[Store, Store, str, Path], tmp_path: Path, clock: Clock
) -> None:
    first, second, memory_id, remote = trio
    reporter = CollectingReporter()
    keyless = Store.clone(str(remote), tmp_path / "c", clock=clock, reporter=reporter)
    keyless.keyring = keyless.index.keyring = Keyring(tmp_path / "no-identity.txt")
    path = second.get(memory_id).path
    # The keyless replica changes the file the only way it can: it puts in a new version
    # encrypted to the store's recipients (as a script with the public key would).
    mine = BODY.replace("line five", "line five lychee").encode()
    header = first.get(memory_id).raw or b""
    text = header.split(b"---\n", 2)
    new = b"---\n" + text[1] + b"---\n" + mine
    (keyless.root / path).write_bytes(crypto.encrypt(new, first.recipients()[0][1]))
    edit_line(first, memory_id, "line two", "line two kiwifruit")
    first.sync()
    result = keyless.sync()
    second_path = path.removesuffix(".md.age") + "-"
    kept = [p for p in result.merged if p.startswith(second_path)]
    assert result.conflicts == [path] and len(kept) == 1
    assert any("cannot be decrypted here: both versions kept" in w for w in reporter.warnings)
    second.sync()  # the key holder gets both versions: nothing was lost
    versions = [second.get(path).body, second.get(kept[0]).body]
    assert any("lychee" in v for v in versions) and any("kiwifruit" in v for v in versions)
    for store in (first, second, keyless):
        assert plaintext_hits(store, MARKERS) == []


@pytest.mark.skipif(GIT is None, reason="the git program is not installed")
def test_git_pull_runs_the_merge_driver_on_encrypted_memories(
    trio: tuple[Store, Store, str, Path],
) -> None:
    first, second, memory_id, _ = trio
    edit_line(first, memory_id, "line two", "line two kiwifruit")
    first.sync()
    edit_line(second, memory_id, "line four", "line four mangosteen")
    pulled = subprocess.run(
        [
            str(GIT),
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "-c",
            "pull.rebase=false",
            "pull",
            "--no-edit",
            "origin",
            "main",
        ],
        cwd=second.root,
        capture_output=True,
        text=True,
    )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    body = Store(second.root, clock=second.clock).get(memory_id).body
    assert "line two kiwifruit" in body and "line four mangosteen" in body
    assert plaintext_hits(second, MARKERS) == []


# Property: any order of syncs converges, for encrypted memories too

LINES = 4


@st.composite
def encrypted_scenario(draw: st.DrawFn) -> tuple[list[tuple[int, str, int, int]], list[int]]:
    """Operations (replica, kind, memory, line) and the order replicas sync in before two rounds."""
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.sampled_from(["line", "title", "tag", "add", "delete"]),
                st.integers(0, 1),
                st.integers(0, LINES - 1),
            ),
            min_size=1,
            max_size=5,
            # A replica's second edit of a title or line replaces its first: one of each.
            unique_by=lambda op: (op[0], op[1], op[2], op[3] if op[1] == "line" else 0),
        )
    )
    return ops, draw(st.lists(st.integers(0, 2), max_size=3))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encrypted_scenario())
def test_encrypted_replicas_converge_and_keep_every_edit(
    case: tuple[list[tuple[int, str, int, int]], list[int]],
) -> None:
    ops, syncs = case
    with tempfile.TemporaryDirectory(prefix="memenc-") as folder:
        root = Path(folder)
        remote = root / "remote.git"
        pygit2.init_repository(str(remote), bare=True, initial_head="main")
        clock = Clock()
        first = Store.init(root / "r0", remote=str(remote), clock=clock)
        first.key_init()
        body = "".join(f"line {n} lychee\n" for n in range(LINES))
        ids = [first.add(body, title=f"Secret {m} lychee", encrypt=True).id for m in range(2)]
        first.sync()
        stores = [first] + [Store.clone(str(remote), root / f"r{n}", clock=clock) for n in (1, 2)]
        deleted: set[tuple[int, int]] = set()
        expected: list[str] = []
        for number, (replica, kind, memory, line) in enumerate(ops):
            store, word = stores[replica], f"kiwifruit{number}x"
            if kind == "add":
                store.add(f"added {word}", encrypt=True)
                expected.append(word)
            elif (replica, memory) in deleted:
                continue
            elif kind == "delete":
                store.remove(ids[memory])
                deleted.add((replica, memory))
            else:
                current = store.get(ids[memory])
                if kind == "line":
                    lines = current.body.splitlines()
                    lines[line] = f"line {line} {word}"
                    store.update(ids[memory], body="\n".join(lines))
                elif kind == "title":
                    store.update(ids[memory], title=f"Secret {memory} {word}")
                else:
                    store.update(ids[memory], tags=[*current.tags, word])
                expected.append(word)
        for replica in [*syncs, 0, 1, 2, 0, 1, 2]:
            stores[replica].sync()
        trees = {str(s.repo.head.peel(pygit2.Commit).tree_id) for s in stores}
        assert len(trees) == 1
        texts = [
            stores[0].get(p.relative_to(stores[0].root).as_posix()).raw or b""
            for p in (stores[0].root / "memories").rglob("*.md.age")
        ]
        everything = b"\n".join(texts)
        edits_of_deleted = {
            f"kiwifruit{n}x"
            for n, (r, kind, m, _) in enumerate(ops)
            if kind != "add" and any(r == dr and m == dm for dr, dm in deleted)
        }
        for word in expected:
            if word not in edits_of_deleted:  # a replica's own edits go with its deletion
                assert word.encode() in everything, word
        assert not list((stores[0].root / "memories").rglob("*.md"))
        for store in stores:
            assert plaintext_hits(store, ("lychee", "kiwifruit")) == []
