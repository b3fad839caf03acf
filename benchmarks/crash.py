"""Kill `mem` commands with SIGKILL at random moments and check that the store survives.

    python benchmarks/crash.py [--runs 200] [--seed 7] [--out /tmp/membench/crash]

Each run starts a real `mem add`, `mem edit`, `mem reindex` or `mem sync` process on one store
(which syncs with a bare repository that a second clone also pushes to), kills it
after a random delay (between a tenth of the command's usual duration and a little more than all
of it), and then checks the store:

- every object reachable from a reference reads back intact (commits, trees and blobs walked
  with pygit2), and `git fsck` passes when git is installed;
- no committed memory is lost: every memory file HEAD had before the run is still in HEAD;
- every `.md` file under `memories/` is a whole memory (it parses); temporary files of an
  interrupted write (`.mem-*.tmp`) are allowed, but `mem check` must report them;
- the next `mem find` works, and `mem list` lists exactly the memories in the files;
- the next `mem add` works and commits what the killed command left uncommitted, so that the
  files under `memories/` match HEAD again (and `git status` agrees, where git is installed);
- the remote's objects read back, and the next `mem sync` makes the store and the remote equal.

`--commands add-encrypted edit-encrypted` kills encrypted adds and edits too (`mem key init` makes
an identity in XDG_CONFIG_HOME unless MEM_IDENTITY names one); their files must decrypt and parse,
and no git object may hold their text.

The script prints one line per problem and a summary, and exits with 1 when any run broke the
store. The same functions run a few kills in the test suite (tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

COMMANDS = ("add", "edit", "reindex", "sync")
# Encrypted adds and edits (an age identity made for the run); chosen with --commands.
ENCRYPTED_COMMANDS = ("add-encrypted", "edit-encrypted")
SEALED_WORD = b"sealword"


@dataclass
class Tally:
    """What a series of runs did and found."""

    runs: int = 0
    kills: int = 0
    by_command: dict[str, int] = field(default_factory=dict)
    kills_by_command: dict[str, int] = field(default_factory=dict)
    temp_files: set[str] = field(default_factory=set)
    rebuild_notices: int = 0
    problems: list[str] = field(default_factory=list)


def mem_command() -> list[str]:
    """How to run `mem`: this interpreter with the package, so no shim is timed."""
    return [sys.executable, "-m", "memstore"]


def seed_store(root: Path, count: int) -> None:
    """A store of count small memories in one commit, with its index built."""
    from memstore import gitrepo
    from memstore.memory import new_memory
    from memstore.store import Store

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    store = Store.init(root, clock=lambda: start)
    changes: dict[str, bytes | None] = {}
    for number in range(count):
        memory = new_memory(
            f"Seed memory {number} about topic{number % 13} and the word{number % 7} bucket.\n\n"
            + "Some more text to index. " * 8,
            now=start + timedelta(minutes=number),
            tags=[f"t{number % 5}"],
        )
        data = memory.to_bytes()
        (root / memory.path).parent.mkdir(parents=True, exist_ok=True)
        (root / memory.path).write_bytes(data)
        changes[memory.path] = data
    if changes:
        gitrepo.commit_files(store.repo, changes, f"Seed {count} memories", start)
    store.reindex()


def committed_memories(root: Path) -> dict[str, str]:
    """Memory paths in HEAD with their blob ids."""
    import pygit2

    repo = pygit2.Repository(str(root))
    found: dict[str, str] = {}
    if repo.head_is_unborn:
        return found

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for entry in tree:
            path = f"{prefix}/{entry.name}"
            if entry.type_str == "tree":
                walk(repo[entry.id], path)  # type: ignore[arg-type]
            else:
                found[path] = str(entry.id)

    head = repo.head.peel(pygit2.Commit).tree
    if "memories" in head:
        walk(repo[head["memories"].id], "memories")  # type: ignore[arg-type]
    return found


def check_objects(root: Path, verified: set[str]) -> list[str]:
    """Read every object reachable from a reference; return what could not be read."""
    import pygit2

    problems: list[str] = []
    repo = pygit2.Repository(str(root))
    stack: list[tuple[str, str]] = []
    for name in repo.references:
        try:
            target = repo.references[name].resolve().target
        except (KeyError, pygit2.GitError) as error:
            problems.append(f"reference {name} cannot be resolved: {error}")
            continue
        stack.append((str(target), name))
    while stack:
        oid, where = stack.pop()
        if oid in verified:
            continue
        try:
            obj = repo[oid]
            if isinstance(obj, pygit2.Commit):
                stack.append((str(obj.tree_id), f"tree of {oid[:10]}"))
                stack.extend((str(parent), f"parent of {oid[:10]}") for parent in obj.parent_ids)
            elif isinstance(obj, pygit2.Tree):
                stack.extend((str(entry.id), f"{where}/{entry.name}") for entry in obj)
            elif isinstance(obj, pygit2.Blob):
                _ = obj.data
        except (KeyError, ValueError, pygit2.GitError) as error:
            problems.append(f"object {oid} ({where}) cannot be read: {error}")
            continue
        verified.add(oid)
    if shutil.which("git"):
        fsck = subprocess.run(
            ["git", "fsck", "--full", "--no-dangling", "--no-progress"],
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
        )
        if fsck.returncode != 0:
            problems.append(f"git fsck failed: {(fsck.stderr or fsck.stdout).strip()[:300]}")
    return problems


def check_files(root: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """Ids of the memory files by path, temporary files, and problems (half-written files)."""
    from memstore.atomic import is_temporary
    from memstore.errors import MalformedMemoryError
    from memstore.memory import parse

    ids: dict[str, str] = {}
    temps: list[str] = []
    problems: list[str] = []
    for full in sorted((root / "memories").rglob("*")):
        if full.is_dir():
            continue
        rel = full.relative_to(root).as_posix()
        if is_temporary(full.name):
            temps.append(rel)
        elif full.name.endswith(".md"):
            try:
                ids[rel] = parse(full.read_bytes(), rel).id
            except MalformedMemoryError as error:
                problems.append(f"half-written or broken memory file: {error}")
        elif full.name.endswith(".md.age"):
            from memstore.crypto import Keyring
            from memstore.errors import MemstoreError

            try:
                ids[rel] = parse(Keyring().decrypt(full.read_bytes(), rel), rel).id
            except MemstoreError as error:
                problems.append(f"half-written or broken encrypted memory: {error}")
        else:
            problems.append(f"unexpected file in memories/: {rel}")
    return ids, temps, problems


def mem(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run mem to completion on the store."""
    return subprocess.run(
        [*mem_command(), "--store", str(root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _editor(word: str) -> str:
    """An EDITOR that appends a line to the file it is given."""
    return f'sh -c \'printf "%s\\n" "{word}" >> "$1"\' sh'


def remote_of(root: Path) -> Path:
    """The bare repository the store syncs with."""
    return root.parent / f"{root.name}-remote.git"


def other_clone(root: Path) -> Path:
    """A second clone of the remote, whose changes each sync run has to merge."""
    return root.parent / f"{root.name}-other"


def set_up_sync(root: Path) -> None:
    """Push the store to a bare repository and clone it again beside it."""
    import pygit2

    for path in (remote_of(root), other_clone(root)):
        if path.exists():
            shutil.rmtree(path)
    pygit2.init_repository(str(remote_of(root)), bare=True, initial_head="main")
    for args in (("remote", "add", "origin", str(remote_of(root))), ("sync",)):
        result = mem(root, *args)
        if result.returncode != 0:
            raise SystemExit(f"cannot set up sync: {result.stderr.strip()}")
    cloned = subprocess.run(
        [*mem_command(), "clone", str(remote_of(root)), str(other_clone(root))],
        capture_output=True,
        text=True,
    )
    if cloned.returncode != 0:
        raise SystemExit(f"cannot clone: {cloned.stderr.strip()}")


def command_for(kind: str, root: Path, rng: random.Random, run: int) -> tuple[list[str], dict]:
    """The argument list and environment of one run."""
    env: dict[str, str] = {}
    if kind == "sync":
        # Something to merge both ways: a memory from the other clone, one edit here.
        other = other_clone(root)
        mem(other, "add", f"from the other clone in run {run} otherword{run}", "-t", "other")
        mem(other, "sync")
        args = ["sync"]
    elif kind == "add":
        args = ["add", f"crash run {run} adds crashword{run}", "-t", "crash"]
    elif kind == "edit":
        paths = sorted(committed_memories(root))
        args = ["edit", rng.choice(paths)]
        env["EDITOR"] = _editor(f"crash run {run} edits editword{run}")
    elif kind == "add-encrypted":
        args = ["add", "--encrypt", f"crash run {run} adds {SEALED_WORD.decode()}{run}"]
    elif kind == "edit-encrypted":
        paths = sorted(p for p in committed_memories(root) if p.endswith(".md.age"))
        args = ["edit", rng.choice(paths)]
        env["EDITOR"] = _editor(f"crash run {run} edits {SEALED_WORD.decode()}{run}")
    else:
        args = ["reindex"]
    return [*mem_command(), "--store", str(root), *args], env


def kill_after(argv: list[str], env: dict[str, str], delay: float) -> tuple[bool, float]:
    """Start argv, SIGKILL it after delay; return whether it was still running, and its time."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
        start_new_session=True,  # the editor's shell goes with it
    )
    try:
        try:
            proc.wait(timeout=delay)
            return False, time.perf_counter() - started
        except subprocess.TimeoutExpired:
            pass
        alive = proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return alive, time.perf_counter() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def verify(root: Path, before: dict[str, str], verified: set[str], tally: Tally) -> list[str]:
    """Check the store after a kill; return the problems found (empty when it survived)."""
    problems = check_objects(root, verified)
    if any((root / "memories").rglob("*.md.age")):
        problems += plaintext_in_objects(root)
    after = committed_memories(root)
    problems += [f"committed memory lost: {path}" for path in sorted(set(before) - set(after))]
    files, temps, file_problems = check_files(root)
    problems += file_problems
    tally.temp_files |= set(temps)
    problems += [
        f"committed memory missing from the work tree: {p}" for p in after if p not in files
    ]
    found = mem(root, "find", "seed")
    if found.returncode != 0 or "Seed memory" not in found.stdout:
        problems.append(f"mem find failed ({found.returncode}): {found.stderr.strip()[:300]}")
    if "rebuilding" in found.stderr:
        tally.rebuild_notices += 1
    listed = mem(root, "list", "-n", "0", "--json")
    if listed.returncode != 0:
        problems.append(f"mem list failed ({listed.returncode}): {listed.stderr.strip()[:300]}")
    else:
        listed_ids = sorted(m["id"] for m in json.loads(listed.stdout)["memories"])
        if listed_ids != sorted(files.values()):
            missing = set(files.values()) - set(listed_ids)
            extra = set(listed_ids) - set(files.values())
            problems.append(f"index differs from the files: missing {missing}, extra {extra}")
    checked = mem(root, "check", "--json")
    reported = {p["path"] for p in json.loads(checked.stdout or '{"problems": []}')["problems"]}
    if set(temps) - reported:
        problems.append(f"temporary files not reported by mem check: {set(temps) - reported}")
    if reported - set(temps):
        problems.append(f"mem check reports problems: {checked.stdout.strip()[:300]}")
    follow = mem(root, "add", "a follow-up write after a crash", "-t", "followup")
    if follow.returncode != 0:
        problems.append(f"the next mem add failed: {follow.stderr.strip()[:300]}")
    files, _, _ = check_files(root)
    head = committed_memories(root)
    if set(files) != set(head):
        problems.append(
            f"files and HEAD differ after the next write: {sorted(set(files) ^ set(head))[:5]}"
        )
    if remote_of(root).exists():
        problems += check_objects(remote_of(root), set())
        synced = mem(root, "sync")
        if synced.returncode != 0:
            problems.append(f"the next mem sync failed: {synced.stderr.strip()[:300]}")
        elif committed_memories(root) != committed_memories(remote_of(root)):
            problems.append("after the next sync the store and its remote differ")
    if shutil.which("git"):
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", "memories"],
            cwd=root,
            capture_output=True,
            text=True,
        )
        dirty = [
            line
            for line in status.stdout.splitlines()
            if not line.endswith(".tmp") and line.strip()
        ]
        if status.returncode != 0 or dirty:
            problems.append(f"git status is not clean after the next write: {dirty[:5]}")
    return problems


def plaintext_in_objects(root: Path) -> list[str]:
    """Objects of the repository that hold text only encrypted memories were given."""
    import pygit2

    repo = pygit2.Repository(str(root))
    return [
        f"plaintext in git object {oid}" for oid in repo.odb if SEALED_WORD in repo.odb.read(oid)[1]
    ]


def seed_encrypted(root: Path, count: int = 3) -> None:
    """An identity for the run (unless MEM_IDENTITY names one) and a few encrypted memories."""
    for args in (
        ("key", "init"),
        *(("add", "--encrypt", f"seed secret {n}") for n in range(count)),
    ):
        result = mem(root, *args)
        if result.returncode != 0:
            raise SystemExit(f"cannot set up encryption: {result.stderr.strip()}")


def usual_durations(
    root: Path, rng: random.Random, runs: int = 3, kinds: tuple[str, ...] = COMMANDS
) -> dict[str, float]:
    """Median seconds of each command run to completion."""
    durations: dict[str, float] = {}
    for kind in kinds:
        samples = []
        for number in range(runs):
            argv, env = command_for(kind, root, rng, -1 - number)
            started = time.perf_counter()
            subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=120)
            samples.append(time.perf_counter() - started)
        durations[kind] = statistics.median(samples)
    return durations


def crash_runs(
    root: Path,
    runs: int,
    seed: int,
    commands: tuple[str, ...] = COMMANDS,
    seed_count: int = 200,
    log: bool = False,
    timing_runs: int = 3,
    spread: tuple[float, float] = (0.1, 1.1),
) -> Tally:
    """Make a store at root, then kill runs commands at random moments, checking after each."""
    if root.exists():
        shutil.rmtree(root)
    seed_store(root, seed_count)
    if set(commands) & set(ENCRYPTED_COMMANDS):
        seed_encrypted(root)
    if "sync" in commands:
        set_up_sync(root)
    rng = random.Random(seed)
    durations = usual_durations(root, rng, timing_runs, commands)
    if log:
        print("usual durations: " + ", ".join(f"{k} {v:.2f} s" for k, v in durations.items()))
    tally = Tally()
    verified: set[str] = set()
    for run in range(runs):
        kind = commands[run % len(commands)] if run < len(commands) else rng.choice(commands)
        before = committed_memories(root)
        argv, env = command_for(kind, root, rng, run)
        delay = rng.uniform(*spread) * durations[kind]
        killed, seconds = kill_after(argv, env, delay)
        if not killed:  # follow the machine's load: kills are aimed at the command's usual time
            durations[kind] = 0.7 * durations[kind] + 0.3 * seconds
        tally.runs += 1
        tally.by_command[kind] = tally.by_command.get(kind, 0) + 1
        if killed:
            tally.kills += 1
            tally.kills_by_command[kind] = tally.kills_by_command.get(kind, 0) + 1
        problems = verify(root, before, verified, tally)
        for problem in problems:
            line = f"run {run} ({kind}, killed after {delay:.3f} s: {killed}): {problem}"
            tally.problems.append(line)
            if log:
                print(line, flush=True)
        if problems:
            break  # the store is broken: later runs would only repeat it
        if log and (run + 1) % 20 == 0:
            print(f"{run + 1} runs, {tally.kills} kills, no problem so far", flush=True)
    return tally


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memories", type=int, default=200, help="size of the seeded store")
    parser.add_argument("--out", type=Path, default=Path("/tmp/membench/crash"))
    parser.add_argument(
        "--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS + ENCRYPTED_COMMANDS
    )
    options = parser.parse_args(argv)
    os.environ.setdefault("MEM_AUTHOR", "crash harness <crash@example.invalid>")
    started = time.perf_counter()
    tally = crash_runs(
        options.out,
        options.runs,
        options.seed,
        tuple(options.commands),
        options.memories,
        log=True,
    )
    elapsed = time.perf_counter() - started
    print(
        f"{tally.runs} runs ({tally.by_command}), {tally.kills} killed while running"
        f" ({tally.kills_by_command}), {len(tally.temp_files)} temporary files left behind,"
        f" {tally.rebuild_notices} index rebuilds, {len(tally.problems)} problems,"
        f" {elapsed:.0f} s"
    )
    sys.exit(1 if tally.problems else 0)


if __name__ == "__main__":
    main()
