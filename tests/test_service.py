"""The search service of large stores: real `mem` processes, a real service, real sockets."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from memstore import ids, quickadd, quickfind, service, watch
from memstore.store import Store
from tests.conftest import mem_ok, run_mem

pytestmark = pytest.mark.skipif(not watch.supported(), reason="the service runs beside inotify")


@pytest.fixture
def served(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store with a watcher and a search service, both stopped afterwards."""
    monkeypatch.setenv("MEM_WATCH", "1")
    store.add("Pool sizing for the billing service", tags=["postgres"])
    store.add("The staging deploy needs a health check before traffic")
    home = store.git_dir / "memstore"
    mem_ok("--store", str(store.root), "find", "pool")  # starts the watcher, then the service
    mem_ok("--store", str(store.root), "find", "pool")
    wait_for_service(store.root)
    yield store
    stop_everything(home)


def stop_everything(home: Path) -> None:
    service.stop(home)
    deadline = time.monotonic() + 20
    while running := watch.reap():
        assert time.monotonic() < deadline, f"processes left running: {running}"
        watch.stop(home)
        service.stop(home)
        time.sleep(0.05)
    watch.stop(home)


def answer(store_root: Path, query: str, **changes: object) -> dict | None:
    path = quickfind.socket_path(str(store_root))
    assert path is not None
    request = quickfind.request_for(str(store_root), query, 11, ("", ""))
    request.update(changes)
    return quickfind.ask(path, request, timeout=20)


def titles(reply: dict | None) -> list[str]:
    assert reply is not None and reply.get("ok") is True, reply
    return [hit["title"] for hit in reply["hits"]]


def wait_for_service(root: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = answer(root, "pool")
        if reply is not None and reply.get("ok"):
            return
        with contextlib.suppress(Exception):  # the watcher must run for the service to start
            mem_ok("--store", str(root), "find", "pool")
        time.sleep(0.1)
    raise AssertionError("the search service did not start")


def service_pid(root: Path) -> int:
    return int((root / ".git" / "memstore" / service.LOCK_FILE).read_text().split()[0])


def gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        watch.reap()
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":  # exited; its parent has not collected it yet
            return True
        time.sleep(0.05)
    return False


def test_the_service_prints_what_the_cli_prints(served: Store) -> None:
    root = str(served.root)
    assert titles(answer(served.root, "pool")) == ["Pool sizing for the billing service"]
    fast = [mem_ok("--store", root, "find", *args) for args in (["pool"], ["pool", "--json"])]
    fast.append(mem_ok("--store", root, "find", "health", "-n", "1"))
    fast.append(mem_ok("--store", root, "find", "nothingmatchesthis"))
    slow_env = {"MEM_WATCH": "0"}  # no service asked: the CLI searches in process
    slow = [
        mem_ok("--store", root, "find", "pool", env=slow_env),
        mem_ok("--store", root, "find", "pool", "--json", env=slow_env),
        mem_ok("--store", root, "find", "health", "-n", "1", env=slow_env),
        mem_ok("--store", root, "find", "nothingmatchesthis", env=slow_env),
    ]
    assert [(r.stdout, r.stderr) for r in fast] == [(r.stdout, r.stderr) for r in slow]
    assert "Pool sizing" in fast[0].stdout
    assert fast[3].stderr == "no memories found\n"


def test_a_service_answer_loads_neither_typer_nor_whoosh_nor_pygit2(served: Store) -> None:
    code = (
        "import sys\n"
        "from memstore import quickfind\n"
        f"status = quickfind.run(['--store', {str(served.root)!r}, 'find', 'pool'])\n"
        "heavy = {'typer', 'click', 'whoosh', 'pygit2', 'yaml'} & set(sys.modules)\n"
        "print(status, sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "0 []"
    assert "Pool sizing" in result.stdout


def test_the_socket_is_private(served: Store) -> None:
    path = served.git_dir / "memstore" / quickfind.SOCKET_NAME
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_edit_made_just_before_the_query_is_found(served: Store) -> None:
    memory = served.find("pool")[0]
    path = served.root / memory.path
    for round_ in range(5):
        word = f"zanzibarword{round_}"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"\nAlso {word}.\n")
        assert titles(answer(served.root, word)) == [memory.title]  # at once, no pause
    folder = served.root / "memories" / "2031" / "07"
    folder.mkdir(parents=True)
    shutil.copy(path, folder / "copied-by-hand.md")
    found = answer(served.root, "zanzibarword4")
    assert found is not None
    assert sorted(hit["path"] for hit in found["hits"]) == sorted(
        [memory.path, "memories/2031/07/copied-by-hand.md"]
    )
    path.unlink()
    (folder / "copied-by-hand.md").unlink()
    assert titles(answer(served.root, "zanzibarword4")) == []


def killed_while_asked(served: Store, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `mem ARGS` while the service is stopped (it takes the request but cannot answer),
    then kill the service; the command's result, and the service's pid."""
    pid = service_pid(served.root)
    os.kill(pid, signal.SIGSTOP)
    try:
        command = [sys.executable, "-m", "memstore", "--store", str(served.root), *args]
        running = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)
        assert running.poll() is None  # waiting for the answer
    finally:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    out, err = running.communicate(timeout=60)
    return subprocess.CompletedProcess(command, running.returncode, out, err), pid


def test_a_service_killed_mid_query_leaves_the_search_to_the_cli(served: Store) -> None:
    search, pid = killed_while_asked(served, "find", "pool")
    assert search.returncode == 0, search.stderr
    assert "Pool sizing for the billing service" in search.stdout
    assert gone(pid)


def test_a_socket_left_behind_is_refused_and_replaced(served: Store) -> None:
    pid = service_pid(served.root)
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    sock = served.git_dir / "memstore" / quickfind.SOCKET_NAME
    assert sock.exists()  # nobody removed it
    assert answer(served.root, "pool") is None  # refused at once: nobody listens
    result = mem_ok("--store", str(served.root), "find", "pool")
    assert "Pool sizing for the billing service" in result.stdout
    wait_for_service(served.root)  # that search started a new service on a new socket
    assert service_pid(served.root) != pid


def test_other_versions_and_settings_are_refused(served: Store) -> None:
    assert answer(served.root, "pool", code="another install") == {"refused": "version"}
    other = [*quickfind.settings(), ("MEM_IDENTITY", "/somewhere/else")]
    assert answer(served.root, "pool", settings=sorted(other)) == {"refused": "settings"}
    assert answer(served.root, "pool", root="/another/store") == {"refused": "root"}
    assert titles(answer(served.root, "pool"))  # and it goes on answering


def test_a_service_whose_code_changed_refuses_and_exits(served: Store, tmp_path: Path) -> None:
    home = served.git_dir / "memstore"
    service.stop(home)
    package = tmp_path / "copy" / "memstore"
    shutil.copytree(Path(quickfind.__file__).parent, package)
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    other = subprocess.Popen(
        [sys.executable, "-m", "memstore.service", str(served.root)],
        env=env,
        cwd=package.parent,  # `-m` looks in the current folder first
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        their_code = quickfind.code_stamp(str(package))
        deadline = time.monotonic() + 30
        while (answer(served.root, "pool", code=their_code) or {}).get("ok") is not True:
            assert time.monotonic() < deadline, "the copy's service did not start"
            time.sleep(0.1)
        # This install's client is refused by the other install's service, and searches itself.
        assert answer(served.root, "pool") == {"refused": "version"}
        result = mem_ok("--store", str(served.root), "find", "pool")
        assert "Pool sizing for the billing service" in result.stdout
        assert other.poll() is None  # another install's clients are no reason to stop
        # Its install is upgraded (its code changes on disk): the new client is refused, and
        # the service exits, for the next search to start one of the new code.
        module = package / "search.py"
        module.write_text(module.read_text() + "\n")
        upgraded = quickfind.code_stamp(str(package))
        assert answer(served.root, "pool", code=upgraded) == {"refused": "version"}
        assert other.wait(timeout=15) == 0
        assert not (home / quickfind.SOCKET_NAME).exists()
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_a_moved_store_is_not_answered_for_and_its_service_exits(served: Store) -> None:
    pid = service_pid(served.root)
    moved = served.root.parent / "moved"
    served.root.rename(moved)
    try:
        result = mem_ok("--store", str(moved), "find", "pool")
        assert "Pool sizing for the billing service" in result.stdout
        assert gone(pid)
    finally:
        stop_everything(moved / ".git" / "memstore")
        moved.rename(served.root)


def test_a_deleted_store_takes_its_service_with_it(served: Store) -> None:
    pid = service_pid(served.root)
    home = served.git_dir / "memstore"
    shutil.rmtree(served.root)
    assert gone(pid)
    stop_everything(home)


def test_plain_find_is_all_the_client_takes() -> None:
    parse = quickfind.parse_argv
    assert parse(["find", "deploy", "staging"]) == (None, "deploy staging", 10, False)
    assert parse(["--store", "/s", "find", "x", "--json", "-n", "3"]) == ("/s", "x", 3, True)
    assert parse(["--store=/s", "find", "--limit=0", "x"]) == ("/s", "x", 0, False)
    for other in (
        ["find"],
        ["find", "x", "--tag", "web"],
        ["find", "--conflicts"],
        ["find", "x", "-n", "-1"],
        ["find", "--", "-x"],
        ["find", " "],
        ["list"],
        ["--store", "/s"],
        ["--traceback", "find", "x"],
        ["find", "x", "--help"],
    ):
        assert parse(other) is None, other


def add_request(root: Path, text: str, memory_id: str, **changes: object) -> dict:
    parsed = quickadd.parse_argv(["--store", str(root), "add", text])
    assert parsed is not None
    request = {
        **quickfind.addressed(str(root)),
        "kind": "add",
        "writer": quickadd.writer_settings(),
        "id": memory_id,
        "args": vars(parsed),
        **changes,
    }
    path = quickfind.socket_path(str(root))
    assert path is not None
    reply = quickfind.ask(path, request, timeout=60)
    assert reply is not None
    return reply


def committed_bodies(root: Path) -> list[str]:
    repo = pygit2.Repository(str(root))
    found = []
    for path in repo.index:
        if path.path.startswith("memories/"):
            text = repo[repo.head.peel(pygit2.Commit).tree[path.path].id].data.decode()
            found.append(text.split("\n---\n", 1)[1].strip())
    return sorted(found)


def test_a_plain_add_is_made_by_the_service_as_the_cli_would_make_it(
    served: Store, tmp_path: Path
) -> None:
    root = str(served.root)
    copy = tmp_path / "copy"  # the same store, for the same adds in process
    shutil.copytree(served.root, copy, ignore=shutil.ignore_patterns("*.sock", "*.lock"))
    code = (
        "import sys\n"
        "from memstore import quickadd\n"
        "status = quickadd.run(sys.argv[1:])\n"
        "heavy = {'typer', 'click', 'whoosh', 'pygit2', 'yaml'} & set(sys.modules)\n"
        "print(status, sorted(heavy))\n"
    )
    served_runs = [
        subprocess.run(
            [sys.executable, "-c", code, "--store", root, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for args in (
            ["add", "Pool sizing for the billing service"],  # a duplicate: warned of
            ["--json", "add", "The queue drains at night", "-t", "queue", "--title", "Drain"],
            ["add", "bad tag", "-t", "two words"],
        )
    ]
    slow_env = {"MEM_WATCH": "0"}  # no service asked: the add runs in process
    here = [
        run_mem("--store", str(copy), "add", "Pool sizing for the billing service", env=slow_env),
        run_mem(
            "--store", str(copy), "--json", "add", "The queue drains at night", "-t", "queue",
            "--title", "Drain", env=slow_env,
        ),
        run_mem("--store", str(copy), "add", "bad tag", "-t", "two words", env=slow_env),
    ]  # fmt: skip
    for fast, slow in zip(served_runs, here, strict=True):
        *printed, last = fast.stdout.splitlines()
        assert last == f"{slow.returncode} []"  # the same status, with nothing heavy loaded
        in_copy = slow.stdout.rstrip("\n").replace(str(copy), root)
        assert unique("\n".join(printed)) == unique(in_copy)
        assert unique(fast.stderr) == unique(slow.stderr)
    assert "added " in served_runs[0].stdout
    assert "looks like a duplicate" in served_runs[0].stderr
    assert '"title": "Drain"' in served_runs[1].stdout
    assert "mem: error: tag 'two words'" in served_runs[2].stderr
    assert committed_bodies(served.root).count("The queue drains at night") == 1
    assert "Drain" in titles(answer(served.root, "drains"))  # indexed by the service


def unique(text: str) -> str:
    """Text with ids, short ids and times masked: two adds differ in those only."""
    text = re.sub(r"\b[0-9a-z]{26}\b", "<id>", text)
    text = re.sub(r"-[0-9a-z]{8}\.md\b", "-<short>.md", text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)


def test_an_add_the_service_may_have_made_is_not_made_twice(served: Store) -> None:
    memory_id = ids.new_id()
    reply = add_request(served.root, "The cache is warmed at boot", memory_id)
    assert reply["status"] == 0 and memory_id in reply["out"]
    # The client did not get that answer (a service killed before it answered): it adds in
    # process with the same id, and finds the memory instead of adding it again.
    text = "The cache is warmed at boot"
    parsed = quickadd.parse_argv(["--store", str(served.root), "add", text])
    assert parsed is not None
    assert quickadd.add_here(parsed, memory_id) == 0
    assert committed_bodies(served.root).count("The cache is warmed at boot") == 1
    # The same id for other text is refused, and nothing is added.
    again = add_request(served.root, "Something else entirely", memory_id)
    assert again["status"] != 0 and "is taken" in again["notices"][-1]
    assert "Something else entirely" not in committed_bodies(served.root)


def test_a_writer_with_other_settings_is_refused(served: Store) -> None:
    other = [*quickadd.writer_settings(), ("GIT_AUTHOR_NAME", "Somebody Else")]
    reply = add_request(served.root, "Not through the service", ids.new_id(), writer=other)
    assert reply == {"refused": "settings"}
    assert "Not through the service" not in committed_bodies(served.root)
    result = mem_ok(
        "--store", str(served.root), "add", "Through the client", env={"USER": "someone-else"}
    )
    assert "added " in result.stdout
    assert "Through the client" in committed_bodies(served.root)


def test_an_add_made_in_process_starts_the_service(served: Store) -> None:
    home = served.git_dir / "memstore"
    service.stop(home)
    assert not service.running(home)
    mem_ok("--store", str(served.root), "add", "The backup runs at two")
    deadline = time.monotonic() + 30
    while not service.running(home):
        assert time.monotonic() < deadline, "the add did not start the service"
        time.sleep(0.05)


def test_the_service_s_add_follows_the_encryption_policy(served: Store) -> None:
    served.key_init()
    marker = served.root / ".memstore.toml"
    marker.write_text(marker.read_text() + '\n[encrypt]\ntags = ["private"]\n')
    code = (
        "import sys\n"
        "from memstore import quickadd\n"
        "status = quickadd.run(sys.argv[1:])\n"
        "print(status, 'pygit2' in sys.modules)\n"
    )
    args = ["--store", str(served.root), "add", "The vault code is in the safe", "-t", "private"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr  # made by the service
    added = [m for m in served.list() if "private" in m.tags]
    assert len(added) == 1 and added[0].path.endswith(".md.age")
    assert b"vault" not in (served.root / added[0].path).read_bytes()


def test_a_service_killed_mid_add_leaves_the_add_to_the_command(served: Store) -> None:
    adding, pid = killed_while_asked(served, "add", "Killed add")
    assert adding.returncode == 0, adding.stderr
    assert adding.stdout.startswith("added ")
    assert committed_bodies(served.root).count("Killed add") == 1
    assert gone(pid)
    # The add made in process started a new service: let it start, for the fixture to stop it.
    deadline = time.monotonic() + 30
    while not service.running(served.git_dir / "memstore") and time.monotonic() < deadline:
        time.sleep(0.05)
