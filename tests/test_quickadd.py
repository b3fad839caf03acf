"""A plain `mem add TEXT` runs without typer (`quickadd`), and does what the CLI's `add` does.

Each case runs the same command twice, on two copies of one store: through `mem` (which takes
the fast path) and through the CLI itself (`cli.main`). Output, exit status and what ends up in
the store must be the same, ids and times aside.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from memstore import quickadd
from memstore.quickadd import AddArgs
from memstore.store import Store
from tests.conftest import Clock

# Runs `mem` as the installed script does, and says on exit whether typer was loaded.
MEM = (
    "import atexit, sys\n"
    "flag = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(flag, 'w').write(str('typer' in sys.modules)))\n"
    "from memstore.launch import main\n"
    "sys.argv[0] = 'mem'\n"
    "main()\n"
)
CLI = "import sys\nfrom memstore.cli import main\nsys.argv[0] = 'mem'\nmain()\n"
# A memory id, and the end of its file name (the id's last 8 characters).
ID = re.compile(r"\b[0-9a-z]{26}\b|(?<=-)[0-9a-z]{8}(?=\.md)")
# A time as --json writes it: the two runs take the real clock, and may fall a second apart.
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


class Ran:
    def __init__(self, done: subprocess.CompletedProcess[str], typer: bool | None) -> None:
        self.status = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.typer = typer


def run(code: str, args: list[str], tmp_path: Path, stdin: str = "") -> Ran:
    flag = tmp_path / "typer-loaded"
    flag.unlink(missing_ok=True)
    extra = [str(flag)] if code is MEM else []
    done = subprocess.run(
        [sys.executable, "-c", code, *extra, *args],
        capture_output=True,
        encoding="utf-8",
        input=stdin,
        timeout=120,
    )
    typer = flag.read_text() == "True" if flag.exists() else None
    return Ran(done, typer)


def both(store: Store, args: list[str], tmp_path: Path) -> tuple[Ran, Ran, Path]:
    """`mem ARGS` on the store, and the CLI on a copy of it (`{store}` in args names it)."""
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy, symlinks=True)
    fast = run(MEM, [a.replace("{store}", str(store.root)) for a in args], tmp_path)
    full = run(CLI, [a.replace("{store}", str(copy)) for a in args], tmp_path)
    return fast, full, copy


def same_text(a: str, b: str, *roots: Path) -> None:
    """Equal once ids, times and the two stores' folders are set aside."""

    def plain(text: str) -> str:
        for root in roots:
            text = text.replace(str(root), "ROOT")
        return TIME.sub("TIME", ID.sub("ID", text))

    assert plain(a) == plain(b)


def newest(root: Path) -> tuple[str, str]:
    """The last commit's message and the file it added, ids and times set aside."""
    repo = pygit2.Repository(str(root))
    commit = repo.head.peel(pygit2.Commit)
    parent = commit.parents[0]
    diff = repo.diff(parent, commit)
    (patch,) = list(diff)
    path = patch.delta.new_file.path
    data = (root / path).read_bytes()
    if not path.endswith(".age"):
        text = re.sub(r"(?m)^(created|updated): .*$", r"\1: TIME", data.decode())
    else:
        text = f"{len(data) > 0} encrypted"
    return ID.sub("ID", commit.message), ID.sub("ID", f"{path}\n{text}")


@pytest.fixture
def filled(tmp_path: Path, clock: Clock) -> Store:
    store = Store.init(tmp_path / "store", clock=clock)
    store.add("Use pytest for the web tests: fixtures replace the setUp chains.", tags=["web"])
    store.add("Deploys go out from main every Tuesday after the standup.")
    return store


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "{store}", "add", "The staging database password rotates monthly."],
        ["--store={store}", "add", "We use pytest for web tests; fixtures replace setUp chains"],
        ["add", "Release notes go in CHANGELOG.md", "--store", "{store}", "--json"],
        ["--json", "--store", "{store}", "add", "use pytest for the web tests: fixtures"],
        ["--store", "{store}", "add", "Tagged", "-t", "web", "--tag=ops", "--title", "A title"],
        ["--store", "{store}", "add", "A decision", "--type", "decision", "--title="],
        ["--store", "{store}", "add", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked"],
        ["--store", "{store}", "add", "styled \x1b[1mbold\x1b[0m title"],
        ["--store", "{store}", "add", "bad type", "--type", "not a type!"],
        ["--store", "{store}", "add", "too many tags", *[f"--tag=t{n}" for n in range(99)]],
        ["--store", "{store}", "add", "a bad tag", "-t", "two words"],
    ],
)
def test_the_fast_path_does_what_the_cli_does(
    filled: Store, tmp_path: Path, args: list[str]
) -> None:
    fast, full, copy = both(filled, args, tmp_path)
    assert fast.typer is False  # taken without the CLI
    assert fast.status == full.status
    same_text(fast.stdout, full.stdout, filled.root, copy)
    same_text(fast.stderr, full.stderr, filled.root, copy)
    if fast.status == 0:
        assert newest(filled.root) == newest(copy)
        if "--json" in args:
            data = json.loads(fast.stdout)
            assert data["id"] in {m.id for m in filled.list()}
    else:
        assert fast.stderr.startswith("mem: error: ")
        assert len(filled.list()) == len(Store(copy).list()) == 2


def test_a_duplicate_is_warned_once_on_both_paths(filled: Store, tmp_path: Path) -> None:
    args = ["--store", "{store}", "add", "Deploys go out from main every Tuesday after standup"]
    fast, full, copy = both(filled, args, tmp_path)
    assert fast.typer is False and fast.status == full.status == 0
    same_text(fast.stderr, full.stderr, filled.root, copy)
    assert fast.stderr.count("mem: warning: this looks like a duplicate of") == 1


def test_the_store_s_encryption_policy_applies(filled: Store, tmp_path: Path) -> None:
    filled.key_init()
    marker = filled.root / ".memstore.toml"
    marker.write_text(marker.read_text() + '\n[encrypt]\ntags = ["private"]\n')
    args = ["--store", "{store}", "add", "The vault code is in the safe", "-t", "private"]
    fast, full, copy = both(filled, args, tmp_path)
    assert fast.typer is False and fast.status == full.status == 0
    assert newest(filled.root) == newest(copy)
    assert newest(filled.root)[1].startswith("memories/") and ".md.age" in newest(copy)[1]
    assert "The vault" not in newest(filled.root)[0]  # the commit names the id only


def test_the_default_store_is_created_with_a_notice(tmp_path: Path) -> None:
    fast = run(MEM, ["add", "first memory in the default store"], tmp_path)
    assert fast.typer is False and fast.status == 0
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert fast.stderr == f"mem: created the default store at {data_home}/memstore/default\n"
    shutil.rmtree(data_home)
    full = run(CLI, ["add", "first memory in the default store"], tmp_path)
    same_text(fast.stdout, full.stdout)
    assert full.stderr == fast.stderr


def test_an_error_is_one_line_with_the_cli_s_status(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    args = ["--store", str(tmp_path / "plain"), "add", "nowhere to go"]
    fast = run(MEM, args, tmp_path)
    full = run(CLI, args, tmp_path)
    assert fast.typer is False
    assert (fast.status, fast.stdout, fast.stderr) == (full.status, full.stdout, full.stderr)
    assert fast.status != 0 and fast.stderr.startswith("mem: error: ")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["add", "-"], "from stdin\n"),
        (["add", "--help"], ""),
        (["add", "x", "--source", "me"], ""),
        (["add", "x", "--nope"], ""),
        (["add", "x", "y"], ""),
        (["add", "x", "-t"], ""),
        (["add"], ""),
    ],
)
def test_other_forms_run_the_cli(
    filled: Store, tmp_path: Path, args: list[str], stdin: str
) -> None:
    args = ["--store", str(filled.root), *args]
    fast = run(MEM, args, tmp_path, stdin)
    assert fast.typer is True  # the CLI ran
    full = run(CLI, args, tmp_path, stdin)
    assert fast.status == full.status
    if fast.status:  # nothing was added by either
        assert fast.stderr == full.stderr
        assert len(filled.list()) == 2


def test_parse_argv_takes_the_plain_forms_only() -> None:
    parse = quickadd.parse_argv
    assert parse(["add", "text"]) == AddArgs("text")
    assert parse(["--store", "s", "add", "text", "--json"]) == AddArgs("text", "s", True)
    assert parse(["--store=s", "add", "t", "--store", "u"]) == AddArgs("t", "u")  # last wins
    assert parse(["add", "t", "-t", "a", "--tag", "b", "--tag=c", "--type=fact"]) == AddArgs(
        "t", tags=["a", "b", "c"], type="fact"
    )
    for refused in (
        ["add"],
        ["add", "-"],
        ["add", "   "],
        ["add", "a", "b"],
        ["add", "--", "-a"],
        ["add", "a", "--help"],
        ["add", "a", "-h"],
        ["add", "a", "-t"],
        ["add", "a", "-t", "-x"],
        ["add", "a", "-tx"],
        ["add", "a", "--title", "x", "--title", "y"],
        ["add", "a", "--json", "--json"],
        ["add", "a", "--file", "f"],
        ["add", "a", "--update", "x"],
        ["add", "a", "--encrypt"],
        ["add", "a", "--allow-secrets"],
        ["--store", "", "add", "a"],
        ["--store", "--json", "add", "a"],
        ["--version", "add", "a"],
        ["find", "a"],
        [],
    ):
        assert parse(refused) is None, refused
