"""What a new user met around git: status, doctor, remotes, clone, log, read-only stores."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memstore.errors import AmbiguousIdError, NoRemoteError, RemoteUnreachableError
from memstore.memory import new_memory
from memstore.store import Store
from memstore.sync import read_state
from tests.conftest import Clock, run_mem


@pytest.fixture
def synced(tmp_path: Path, remote: Path, clock: Clock) -> Store:
    """A store with two memories, synced to a bare remote."""
    store = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    store.add("The deploy runs on Tuesdays")
    store.add("The staging database is rebuilt every night")
    store.sync()
    return store


def one_error_line(result: object) -> str:
    """The single `mem: error: …` line a failed command printed, with no traceback."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, stderr  # type: ignore[attr-defined]
    assert stderr.startswith("mem: error: ") and stderr.count("\n") == 1, stderr
    assert "unexpected" not in stderr and "Traceback" not in stderr
    return stderr


# A detached HEAD in a store with a remote


def test_status_and_doctor_on_a_detached_head_in_a_clone(
    synced: Store, remote: Path, tmp_path: Path, clock: Clock
) -> None:
    clone = Store.clone(str(remote), tmp_path / "b", clock=clock)
    first = next(iter(clone.repo.walk(clone.repo.head.target))).parents[0]
    clone.repo.set_head(first.id)  # as 'git checkout --detach HEAD~1' leaves it
    report = clone.status()
    assert report.detached and report.ahead is None and report.behind is None
    assert any(f.problem == "HEAD is detached, so mem cannot commit" for f in clone.doctor())
    shown = run_mem("--store", str(clone.root), "status")
    assert shown.returncode == 0, shown.stderr
    assert "HEAD detached (not on a branch), remote origin" in shown.stdout
    assert "check out a branch ('git switch main')" in shown.stdout
    doctor = run_mem("--store", str(clone.root), "doctor")
    assert doctor.returncode == 1 and "unexpected" not in doctor.stderr
    assert "repository: HEAD is detached, so mem cannot commit" in doctor.stdout


# What mem status says


def test_status_says_plainly_that_there_is_no_remote(store: Store) -> None:
    shown = run_mem("--store", str(store.root), "status")
    assert shown.returncode == 0, shown.stderr
    assert "branch main, no remote; add one with 'mem remote add origin URL'\n" in shown.stdout
    assert "remote no remote" not in shown.stdout


def test_status_reports_a_merge_in_progress(synced: Store) -> None:
    head = str(synced.repo.head.target)
    (synced.git_dir / "MERGE_HEAD").write_text(f"{head}\n")
    assert synced.status().operation == "merge"
    shown = run_mem("--store", str(synced.root), "status")
    assert (
        "a git merge is in progress: finish it with git ('git commit') or abort it"
        " ('git merge --abort'); mem cannot commit until then\n"
    ) in shown.stdout
    (synced.git_dir / "MERGE_HEAD").unlink()
    assert synced.status().operation is None


def test_ahead_is_unknown_before_a_fetch_and_dated_after_one(
    tmp_path: Path, remote: Path, clock: Clock
) -> None:
    store = Store.init(tmp_path / "s", remote=str(tmp_path / "not-there.git"), clock=clock)
    for number in range(3):
        store.add(f"memory number {number}")
    with pytest.raises(RemoteUnreachableError):
        store.sync()
    report = store.status()
    assert (report.ahead, report.behind, report.fetched) == (None, None, None)
    shown = run_mem("--store", str(store.root), "status")
    assert "ahead/behind origin: unknown (never fetched); run 'mem sync'\n" in shown.stdout
    assert "ahead 4" not in shown.stdout
    store.set_remote_url("origin", str(remote))
    store.sync()
    fetched = read_state(store)["fetched"]["origin"]  # type: ignore[index]
    store.add("one more, not pushed")
    store.set_remote_url("origin", str(tmp_path / "gone.git"))
    with pytest.raises(RemoteUnreachableError):
        store.sync()
    report = store.status()
    assert (report.ahead, report.behind, report.fetched) == (1, 0, fetched)
    assert report.last_sync is not None and report.last_sync["result"] == "failed"
    shown = run_mem("--store", str(store.root), "status")
    assert (
        f"ahead 1, behind 0 (as of the last fetch at {fetched[:10]} {fetched[11:16]};"
        " 'mem sync' brings it up to date)\n"
    ) in shown.stdout


# Remotes that are local paths, and clones


def test_a_missing_local_remote_says_the_path_does_not_exist(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "usb" / "memories.git"
    store.add_remote("origin", str(missing))
    with pytest.raises(RemoteUnreachableError) as caught:
        store.sync()
    assert str(caught.value) == (
        f"cannot reach origin: the local path {missing} does not exist; check the path"
        " (a drive not mounted?) or change it with 'mem remote set-url origin PATH', then run"
        " 'mem sync' again (your commits are kept)"
    )
    failed = run_mem("--store", str(store.root), "sync")
    assert "unsupported URL protocol" not in one_error_line(failed)


def test_clone_of_a_missing_path_says_so_and_makes_nothing(tmp_path: Path) -> None:
    missing, target = tmp_path / "nowhere", tmp_path / "copy"
    cloned = run_mem("clone", str(missing), str(target))
    assert one_error_line(cloned) == (
        f"mem: error: cannot clone {missing}: the local path {missing} does not exist; check"
        " the path (nothing was made)\n"
    )
    assert not target.exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    cloned = run_mem("clone", str(plain), str(target))
    assert f"the local path {plain} is not a git repository" in one_error_line(cloned)
    assert "mem sync" not in cloned.stderr and not target.exists()


def test_remote_rm_and_set_url(synced: Store, remote: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved.git"
    remote.rename(moved)
    with pytest.raises(RemoteUnreachableError, match="does not exist"):
        synced.sync()
    synced.set_remote_url("origin", str(moved))
    assert synced.remotes() == [("origin", str(moved))]
    synced.add("synced to the moved remote")
    assert synced.sync().sent == 1
    synced.remove_remote("origin")
    assert synced.remotes() == []
    assert synced.repo.references.get("refs/remotes/origin/main") is None
    with pytest.raises(NoRemoteError, match="no remote named 'origin'"):
        synced.remove_remote("origin")
    with pytest.raises(NoRemoteError, match="no remote named 'origin'"):
        synced.set_remote_url("origin", str(moved))
    root = str(synced.root)
    assert run_mem("--store", root, "remote", "add", "backup", str(remote)).returncode == 0
    changed = run_mem("--store", root, "remote", "set-url", "backup", str(moved))
    assert changed.returncode == 0 and changed.stderr == f"remote backup is now {moved}\n"
    listed = run_mem("--store", root, "remote", "list", "--json")
    assert json.loads(listed.stdout) == {"remotes": [{"name": "backup", "url": str(moved)}]}
    removed = run_mem("--store", root, "remote", "rm", "backup")
    assert removed.returncode == 0 and removed.stderr == "removed remote backup\n"
    assert Store(synced.root).remotes() == []
    unknown = run_mem("--store", root, "remote", "rm", "backup")
    assert "no remote named 'backup'" in one_error_line(unknown)
    exists = run_mem("--store", root, "remote", "add", "x", str(moved))
    assert exists.returncode == 0
    again = run_mem("--store", root, "remote", "add", "x", str(moved))
    assert "mem remote set-url x URL" in one_error_line(again)


# Which store is in use


def test_status_and_doctor_name_the_store(store: Store) -> None:
    root = str(store.root)
    assert store.status().store == root
    shown = run_mem("--store", root, "status")
    assert shown.stdout.startswith(f"store: {root}\n")
    assert json.loads(run_mem("--store", root, "status", "--json").stdout)["store"] == root
    doctor = run_mem("--store", root, "doctor")
    assert doctor.returncode == 0 and doctor.stdout.startswith(f"store: {root}\n")
    assert json.loads(run_mem("--store", root, "doctor", "--json").stdout)["store"] == root


def test_the_first_add_says_it_created_the_default_store(tmp_path: Path) -> None:
    default = tmp_path / "data" / "memstore" / "default"
    first = run_mem("add", "The first memory of all", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == f"mem: created the default store at {default}\n"
    memory = Store(default).list()[0]
    assert first.stdout == (
        f"added {memory.id}  The first memory of all\n  {default / memory.path}\n"
    )
    assert (default / memory.path).is_file()
    second = run_mem("add", "A second memory", cwd=tmp_path)
    assert second.returncode == 0 and "created" not in second.stderr
    elsewhere = tmp_path / "elsewhere"
    run_mem("init", str(elsewhere))
    third = run_mem("--store", str(elsewhere), "add", "In another store")
    assert third.stderr == "" and third.stdout.splitlines()[1].startswith(f"  {elsewhere}/")


# A clone without the key


def test_doctor_on_a_clone_without_the_key_is_a_note(
    tmp_path: Path, remote: Path, clock: Clock
) -> None:
    owner = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    owner.key_init()
    owner.add("Only the owner reads this", encrypt=True)
    owner.add("Everyone reads this")
    owner.sync()
    teammate = tmp_path / "teammate"  # another user: no identity of their own
    env = {"XDG_CONFIG_HOME": str(teammate / "config"), "HOME": str(teammate)}
    cloned = run_mem("clone", str(remote), str(tmp_path / "b"), env=env)
    assert cloned.returncode == 0, cloned.stderr
    doctor = run_mem("--store", str(tmp_path / "b"), "doctor", env=env)
    assert doctor.returncode == 0, doctor.stdout
    identity = teammate / "config" / "memstore" / "identity.txt"
    assert (
        f"keys (note): 1 encrypted memory you cannot read: no identity ({identity} does not"
        " exist): if you should read them, run 'mem key init'"
    ) in doctor.stdout
    assert "memories" not in doctor.stdout.split("keys (note): ")[1].split(":")[0]
    report = json.loads(run_mem("--store", str(tmp_path / "b"), "doctor", "--json", env=env).stdout)
    assert report["ok"] is True
    check = run_mem("--store", str(tmp_path / "b"), "check", env=env)
    assert check.returncode == 0
    assert "mem: 1 encrypted memory not checked: no identity to read them" in check.stderr


def test_counts_of_commits_and_memories_in_sync_messages_agree_in_number(
    tmp_path: Path, remote: Path, clock: Clock
) -> None:
    first = Store.init(tmp_path / "a", remote=str(remote), clock=clock)
    first.add("one memory\nline two\nline three")
    first.sync()
    second = Store.clone(str(remote), tmp_path / "b", clock=clock)
    memory = first.list()[0]
    first.update(memory.id, title="Title from the first")
    second.update(memory.id, title="Title from the second")  # the same line: merged by mem
    first.sync()
    second.sync()
    message = read_state(second)["message"]  # type: ignore[index]
    assert message == "received 1 commit, sent 2; merged 1 memory; 1 with conflicts to resolve"


# The history of a removed memory


def test_log_shows_the_whole_life_of_a_removed_memory(store: Store) -> None:
    kept = store.add("A memory that stays")
    gone = store.add("Deploys go out on Tuesdays\nsecond line")
    store.update(gone.id, title="Deploys go out on Wednesdays")
    store.add("Another memory after the edit")
    store.remove(gone.id)
    expected = [
        f"remove {gone.id}: Deploys go out on Wednesdays",
        f"edit {gone.id}: Deploys go out on Wednesdays",
        f"add {gone.id}: Deploys go out on Tuesdays",
    ]
    for ref in (gone.id, gone.id[:-3], gone.path, gone.path.rsplit("/", 1)[-1]):
        assert [entry.message for entry in store.log(ref)] == expected, ref
    assert [entry.message for entry in store.log(gone.id, limit=1)] == expected[:1]
    assert [entry.message for entry in store.log(kept.id)] == [
        f"add {kept.id}: A memory that stays"
    ]
    shown = run_mem("--store", str(store.root), "log", gone.id)
    assert shown.returncode == 0, shown.stderr
    # Each line says what the commit did to the memory, then gives the commit's message.
    changes = ["removed: ", "edited: ", "added: "]
    lines = [line.split("  ", 3)[3] for line in shown.stdout.splitlines()]
    assert lines == [change + message for change, message in zip(changes, expected, strict=True)]
    as_json = json.loads(run_mem("--store", str(store.root), "log", gone.id, "--json").stdout)
    assert [c["message"] for c in as_json["commits"]] == expected
    missing = run_mem("--store", str(store.root), "log", "0000000000")
    assert "no memory has the id '0000000000'" in one_error_line(missing)


def test_log_of_a_removed_prefix_shared_by_two_removed_memories_is_ambiguous(
    store: Store,
) -> None:
    first = store.add("The first removed memory")
    second = store.add("The second removed memory")
    store.remove(first.id)
    store.remove(second.id)
    shared = next(i for i in range(len(first.id)) if first.id[i] != second.id[i])
    with pytest.raises(AmbiguousIdError, match="matches 2 removed memories in history"):
        store.log(first.id[:shared])
    assert len(store.log(first.id)) == 2 and len(store.log(second.id)) == 2


def test_log_of_a_removed_encrypted_memory(store: Store) -> None:
    store.key_init()
    secret = store.add("A secret that was removed", encrypt=True)
    store.remove(secret.id)
    assert [entry.message for entry in store.log(secret.id)] == [
        f"remove {secret.id}",
        f"add {secret.id}",
    ]


# A store that cannot be written

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def _chmod_tree(root: Path, writable: bool) -> None:
    for folder, _, files in os.walk(root):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)


def _runner(prefix: list[str]) -> Runner:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "memstore", *args],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=120,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return run


@contextlib.contextmanager
def without_write_access(root: Path) -> Iterator[Runner]:
    """Run mem on a store whose files the kernel will not let it write (chmod -R a-w).

    Root is not bound by permission bits, so as root mem runs without the capabilities that
    override them (setpriv drops CAP_DAC_OVERRIDE and CAP_FOWNER): the kernel then refuses
    every write to the store exactly as it does for a user without write permission.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root this test needs setpriv (util-linux) to give up root's rights"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    _chmod_tree(root, writable=False)
    try:
        yield _runner(prefix)
    finally:
        _chmod_tree(root, writable=True)


@contextlib.contextmanager
def read_only_mount(root: Path) -> Iterator[Runner | None]:
    """As root on Linux, also run mem inside a read-only bind mount of the store (EROFS)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        yield None
        return
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        yield None
        return
    mount = f"mount --bind '{root}' '{root}' && mount -o remount,bind,ro '{root}' && exec \"$@\""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _runner([unshare, "-m", "sh", "-c", mount, "sh"])(*args)

    yield run


def test_a_store_that_cannot_be_written_can_still_be_read(store: Store, clock: Clock) -> None:
    kept = store.add("The deploy runs on Tuesdays", tags=["ops"])
    store.add("The staging database is rebuilt every night")
    by_hand = new_memory("Tuesday deploys need a second reviewer", now=clock(), tags=["ops"])
    (store.root / by_hand.path).parent.mkdir(parents=True, exist_ok=True)
    (store.root / by_hand.path).write_bytes(by_hand.to_bytes())  # not indexed yet
    root = str(store.root)
    notice = re.compile(
        r"mem: the store cannot be written \((Permission denied|Read-only file system)\): the"
        r" search index could not be brought up to date, so results may miss recent changes\n"
    )
    with without_write_access(store.root) as run:
        found = run("--store", root, "find", "tuesdays")
        assert found.returncode == 0, found.stderr
        assert kept.id in found.stdout and by_hand.id not in found.stdout
        assert notice.fullmatch(found.stderr), found.stderr
        listed = run("--store", root, "list", "--json")
        assert listed.returncode == 0 and notice.fullmatch(listed.stderr), listed.stderr
        assert len(json.loads(listed.stdout)["memories"]) == 2
        shown = run("--store", root, "show", kept.id)
        assert shown.returncode == 0 and "The deploy runs on Tuesdays" in shown.stdout
        doctor = run("--store", root, "doctor", "--json")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        problems = [f["problem"] for f in json.loads(doctor.stdout)["findings"]]
        assert any("the search index could not be brought up to date" in p for p in problems)
        added = run("--store", root, "add", "cannot be added")
        assert re.search(r"mem: error: .* cannot be written \(", one_error_line(added))
    assert Store(store.root).find("reviewer")[0].id == by_hand.id  # writable again: caught up
    store.index.invalidate()  # no index to read: one clear line
    with without_write_access(store.root) as run:
        failed = run("--store", root, "find", "tuesdays")
        assert "has no search index: run 'mem reindex'" in one_error_line(failed)
    store.reindex()
    (store.root / by_hand.path).unlink()
    with read_only_mount(store.root) as mounted:
        if mounted is not None:
            found = mounted("--store", root, "find", "tuesdays")
            assert found.returncode == 0 and kept.id in found.stdout, found.stderr
            assert "(Read-only file system)" in found.stderr and found.stderr.count("\n") == 1
