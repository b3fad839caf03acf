"""Plain git in a store never loses an edit: the real `git` program (`git clone`, `git pull`,
`git push`) in stores made by mem and by git, with mem's merge driver present, missing or
broken."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from memstore import gitmarkers, gitsetup
from memstore.merge import has_conflict
from memstore.store import Store
from tests.conftest import Clock, mem_ok, run_mem

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")

TITLE_A = "Title from the first"
TITLE_B = "Title from the second"


def git(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real git, as a user would, with an author and no memstore on the PATH."""
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path or os.environ["PATH"]},
        timeout=120,
    )


def git_ok(*args: str, cwd: Path, path: str | None = None) -> str:
    done = git(*args, cwd=cwd, path=path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def git_only_path() -> str:
    """A PATH with git and a shell on it, and no `mem` (an editor's or a GUI's)."""
    return os.pathsep.join(
        str(Path(p).parent) for p in (shutil.which("git"), shutil.which("sh")) if p
    )


def config(root: Path, key: str) -> str | None:
    try:
        return str(pygit2.Repository(str(root)).config[key])
    except KeyError:
        return None


@pytest.fixture
def shared(tmp_path: Path, remote: Path) -> tuple[Store, str]:
    """A store with one memory, pushed to the bare remote."""
    first = Store.init(tmp_path / "a", remote=str(remote))
    memory = first.add("The deploy runs on Tuesdays\nline two\nline three", tags=["ops"])
    first.sync()
    return first, memory.id


def test_init_with_a_remote_and_remote_add_set_the_upstream(tmp_path: Path, remote: Path) -> None:
    mem_ok("init", str(tmp_path / "a"), "--remote", str(remote))
    mem_ok("--store", str(tmp_path / "a"), "add", "Pushed with plain git")
    git_ok("push", cwd=tmp_path / "a")  # was: "has no upstream branch"
    assert pygit2.Repository(str(remote)).references.get("refs/heads/main") is not None
    mem_ok("init", str(tmp_path / "b"))
    mem_ok("--store", str(tmp_path / "b"), "remote", "add", "origin", str(remote))
    git_ok("pull", "--no-rebase", "--no-edit", "--allow-unrelated-histories", cwd=tmp_path / "b")
    assert "Pushed with plain git" in mem_ok("--store", str(tmp_path / "b"), "list").stdout
    assert config(tmp_path / "b", "branch.main.merge") == "refs/heads/main"


def test_a_plain_git_clone_is_set_up_by_any_mem_command(
    shared: tuple[Store, str], remote: Path, tmp_path: Path, clock: Clock
) -> None:
    first, memory_id = shared
    clone = tmp_path / "c"
    git_ok("clone", str(remote), str(clone), cwd=tmp_path)
    assert config(clone, "merge.mem.driver") is None
    found = mem_ok("--store", str(clone), "find", "deploy")
    assert memory_id in found.stdout and "set up git's merge driver" in found.stderr
    assert {key: config(clone, key) for key in gitsetup.wanted_config()} == (
        gitsetup.wanted_config()
    )
    assert "merge driver" not in mem_ok("--store", str(clone), "find", "deploy").stderr
    first.update(memory_id, title=TITLE_A)
    first.sync()
    Store(clone, clock=clock).update(memory_id, title=TITLE_B)
    git_ok("pull", "--no-rebase", "--no-edit", cwd=clone, path=git_only_path())
    data = next((clone / "memories").rglob("*.md")).read_bytes()
    assert b"<<<<<<<" not in data and has_conflict(data)
    assert TITLE_A.encode() in data and TITLE_B.encode() in data


def test_doctor_reports_a_missing_merge_driver_and_fix_sets_it_up(
    shared: tuple[Store, str], remote: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "c"
    git_ok("clone", str(remote), str(clone), cwd=tmp_path)
    found = run_mem("--store", str(clone), "doctor")
    assert found.returncode == 1
    assert "git's merge driver for memories is not set up" in found.stdout
    assert "mem doctor --fix" in found.stdout
    mem_ok("--store", str(clone), "doctor", "--fix")
    assert config(clone, "merge.mem.driver") == gitsetup.driver_command()
    assert mem_ok("--store", str(clone), "doctor").stderr.startswith("no problems found")


def test_init_of_an_existing_store_sets_the_driver_up(
    shared: tuple[Store, str], remote: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "c"
    git_ok("clone", str(remote), str(clone), cwd=tmp_path)
    mem_ok("init", str(clone))
    assert config(clone, "merge.mem.driver") == gitsetup.driver_command()


def test_the_driver_runs_this_installation_by_its_path(shared: tuple[Store, str]) -> None:
    first, _ = shared
    driver = config(first.root, "merge.mem.driver") or ""
    assert driver.startswith(shlex.quote(sys.executable) + " -P -m memstore merge-driver ")
    textconv = config(first.root, "diff.age.textconv") or ""
    assert textconv == shlex.quote(sys.executable) + " -P -m memstore textconv"


def test_a_driver_that_cannot_run_leaves_both_sides_and_mem_takes_them_over(
    shared: tuple[Store, str], remote: Path, tmp_path: Path, clock: Clock
) -> None:
    first, memory_id = shared
    second = Store.clone(str(remote), tmp_path / "b", clock=clock)
    gone = str(tmp_path / "moved" / "python")  # the installation moved: its Python is gone
    repo = pygit2.Repository(str(second.root))
    repo.config["merge.mem.driver"] = gitsetup.driver_command().replace(
        shlex.quote(sys.executable), shlex.quote(gone)
    )
    first.update(memory_id, title=TITLE_A)
    first.sync()
    second.update(memory_id, title=TITLE_B)
    path = second.resolve(memory_id)
    pulled = git("pull", "--no-rebase", "--no-edit", cwd=second.root, path=git_only_path())
    assert pulled.returncode == 1 and "CONFLICT" in pulled.stdout
    data = (second.root / path).read_bytes()
    assert TITLE_A.encode() in data and TITLE_B.encode() in data and b"<<<<<<<" in data
    git_ok("commit", "-a", "--no-edit", cwd=second.root)  # a hasty user commits the markers
    check = run_mem("--store", str(second.root), "check")
    assert check.returncode == 1
    assert f"{path}:{gitmarkers.marker_line(data)}: holds git's conflict markers" in check.stdout
    assert f"mem resolve {path}" in check.stdout
    assert config(second.root, "merge.mem.driver") == gitsetup.driver_command()  # followed
    taken = mem_ok("--store", str(second.root), "resolve", path)
    assert "merged git's conflict markers" in taken.stdout
    merged = (second.root / path).read_bytes()
    assert b"<<<<<<<" not in merged and has_conflict(merged)
    assert TITLE_A.encode() in merged and TITLE_B.encode() in merged
    assert b"ops" in merged  # the header's other fields came through the take-over
    mem_ok("--store", str(second.root), "resolve", memory_id, "--keep", "2")
    assert mem_ok("--store", str(second.root), "check").returncode == 0
    assert Store(second.root).get(memory_id).title in (TITLE_A, TITLE_B)


def test_markers_are_split_into_their_sides() -> None:
    data = (
        b"---\n<<<<<<< ours\ntitle: A\n||||||| base\ntitle: O\n=======\ntitle: B\n"
        b">>>>>>> theirs\n---\nbody\n"
    )
    assert gitmarkers.sides(data) == (
        b"---\ntitle: O\n---\nbody\n",
        b"---\ntitle: A\n---\nbody\n",
        b"---\ntitle: B\n---\nbody\n",
    )
    assert gitmarkers.marker_line(data) == 2
    assert gitmarkers.sides(data.replace(b"||||||| base\ntitle: O\n", b""))[0] is None  # type: ignore[index]
    assert gitmarkers.marker_line(b"<<<<<<< only an opening\n") is None
    assert gitmarkers.marker_line(b"text\n=======\nnot a conflict\n>>>>>>> x\n") is None
