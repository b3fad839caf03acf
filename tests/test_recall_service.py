"""The prompt hook answered by the search service: real `mem recall` processes, a real service."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memstore import quickfind, quickrecall, service, watch
from memstore.store import Store
from tests.conftest import run_mem
from tests.test_recall import TOUCHED_BY_EVERY_SEARCH, files_under, fill
from tests.test_service import gone, service_pid, stop_everything

pytestmark = pytest.mark.skipif(not watch.supported(), reason="the service runs beside inotify")

# The hook in process: MEM_WATCH=0 asks no service (and starts none).
IN_PROCESS = {"MEM_WATCH": "0"}
PROMPTS = (
    "why does the payments worker get ECONNRESET from pgbouncer?",
    "how do we deploy the billing service",
    "write a haiku about autumn leaves",
    "when is team lunch",
    "what did the database backups say",
)


def payload(prompt: str, session: str, **extra: object) -> str:
    return json.dumps({"prompt": prompt, "session_id": session, **extra})


def hook(store: Store, data: str, *args: str, env: dict[str, str] | None = None) -> tuple:
    result = run_mem("--store", str(store.root), "recall", *args, input=data, env=env)
    return result.returncode, result.stdout, result.stderr


def ask(store: Store, data: str, **changes: object) -> dict | None:
    """A recall request straight to the service, as the hook sends it."""
    root = str(store.root)
    path = quickfind.socket_path(root)
    assert path is not None
    request = quickrecall.request_for(root, data, None)
    request.update(changes)
    return quickfind.ask(path, request, timeout=20)


def wait_for_recall_service(store: Store) -> None:
    """Run the hook until the service answers it: the hook starts the watcher, then the service."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (ask(store, "{}") or {}).get("ok"):
            return
        assert hook(store, "{}")[0] == 0
        time.sleep(0.1)
    raise AssertionError("the search service did not start")


@pytest.fixture
def served(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store with memories, a watcher and a search service started by the hook itself."""
    monkeypatch.setenv("MEM_WATCH", "1")
    fill(store)
    wait_for_recall_service(store)
    yield store
    stop_everything(store.git_dir / "memstore")


def test_the_hook_starts_the_service_and_prints_what_it_prints_in_process(served: Store) -> None:
    # served: the hook started the service. Each prompt, in sessions of its own, both ways.
    for number, prompt in enumerate(PROMPTS):
        fast = hook(served, payload(prompt, f"fast-{number}"))
        slow = hook(served, payload(prompt, f"slow-{number}"), env=IN_PROCESS)
        assert fast == slow, prompt
    assert "pgbouncer pool size for billing" in hook(served, payload(PROMPTS[0], "x"))[1]
    # The same for a smaller budget, the session-start digest and bad input.
    for data, args in (
        (payload(PROMPTS[0], "budget"), ("--budget", "60")),
        (json.dumps({"hook_event_name": "SessionStart", "session_id": "d", "cwd": "/"}), ()),
        ("not json", ()),
        (payload(PROMPTS[0], "small"), ("--budget", "5")),
    ):
        fast = hook(served, data, *args)
        assert fast == hook(served, data, *args, env=IN_PROCESS)
    assert hook(served, "not json")[0] == 1
    answered = ask(served, payload(PROMPTS[0], "direct"))
    assert answered is not None and answered["ok"] is True
    assert "pgbouncer pool size for billing" in answered["text"]


def test_a_memory_is_shown_once_per_session_with_or_without_the_service(served: Store) -> None:
    first = hook(served, payload(PROMPTS[0], "s1"))[1]
    assert "pgbouncer pool size for billing" in first
    assert hook(served, payload(PROMPTS[0], "s1")) == (0, "", "")
    assert hook(served, payload(PROMPTS[0], "s1"), env=IN_PROCESS) == (0, "", "")
    # The other way round: shown in process, not again by the service.
    assert hook(served, payload(PROMPTS[0], "s2"), env=IN_PROCESS)[1] == first
    assert hook(served, payload(PROMPTS[0], "s2")) == (0, "", "")


def test_a_silent_prompt_answered_by_the_service_writes_nothing(served: Store) -> None:
    for path in (served.root / "memories").rglob("*.md"):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    hook(served, payload(PROMPTS[2], "warm"))
    before = files_under(served.root)
    assert hook(served, payload(PROMPTS[2], "quiet")) == (0, "", "")
    changed = {Path(p).name for p, v in files_under(served.root).items() if before.get(p) != v}
    # The barrier the service's catch-up asks of the watcher is a line in the watcher's journal.
    journal = {name for name in changed if name.startswith("watch-")}
    assert changed - journal - TOUCHED_BY_EVERY_SEARCH == set()
    assert "pgbouncer" in hook(served, payload(PROMPTS[0], "loud"))[1]
    changed = {Path(p).name for p, v in files_under(served.root).items() if before.get(p) != v}
    assert "recall.json" in changed


def test_an_edit_made_just_before_the_prompt_is_recalled(served: Store) -> None:
    path = served.root / served.find("pgbouncer")[0].path
    for round_ in range(3):
        word = f"quokkaflux{round_}"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"\nAlso {word} broke.\n")
        text = hook(served, payload(f"what about {word}?", f"edit-{round_}"))[1]
        assert f"Also {word} broke." in text  # at once, no pause


@pytest.mark.parametrize("by", ["--store", "the hook's cwd"])
def test_a_hook_the_service_answers_loads_no_heavy_module(served: Store, by: str) -> None:
    modules = ("typer", "whoosh", "pygit2", "yaml", "memstore.store", "memstore.recall")
    if by == "--store":
        data, args = payload(PROMPTS[0], "modules"), ["--store", str(served.root)]
    else:  # the store around the folder the session runs in, as in process
        data, args = payload(PROMPTS[0], "cwd", cwd=str(served.root / "memories")), []
    code = (
        "import sys, runpy, io, atexit;"
        f" sys.stdin = io.StringIO({data!r});"
        f" sys.argv = ['memstore', *{args!r}, 'recall'];"
        f" atexit.register(lambda: print([m for m in {modules!r} if m in sys.modules],"
        " file=sys.stderr));"
        " runpy.run_module('memstore', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "[]\n")
    assert "pgbouncer pool size for billing" in result.stdout


def test_a_killed_service_leaves_the_hook_in_process(served: Store, tmp_path: Path) -> None:
    expected = hook(served, payload(PROMPTS[0], "expected"), env=IN_PROCESS)
    stdin = tmp_path / "hook.json"
    stdin.write_text(payload(PROMPTS[0], "killed"))
    pid = service_pid(served.root)
    os.kill(pid, signal.SIGSTOP)  # it accepts nothing now: the hook waits on it
    try:
        with stdin.open() as given:
            waiting = subprocess.Popen(
                [sys.executable, "-m", "memstore", "--store", str(served.root), "recall"],
                stdin=given,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        time.sleep(1.0)
        assert waiting.poll() is None  # waiting for the answer
    finally:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    out, err = waiting.communicate(timeout=60)
    assert (waiting.returncode, out, err) == expected
    assert gone(pid)
    # Its socket is left behind, refused at once: the hook recalls in process, and starts a
    # new service.
    assert (served.git_dir / "memstore" / quickfind.SOCKET_NAME).exists()
    assert hook(served, payload(PROMPTS[0], "after")) == expected
    wait_for_recall_service(served)
    assert service_pid(served.root) != pid


def test_a_service_of_another_install_leaves_the_hook_in_process(
    served: Store, tmp_path: Path
) -> None:
    data = payload(PROMPTS[0], "refused")
    assert ask(served, data, code="another install") == {"refused": "version"}
    assert ask(served, data, kind="something new") == {"refused": "protocol"}
    assert ask(served, data, budget="many") == {"refused": "error"}
    home = served.git_dir / "memstore"
    service.stop(home)
    package = tmp_path / "copy" / "memstore"
    shutil.copytree(Path(quickfind.__file__).parent, package)
    other = subprocess.Popen(
        [sys.executable, "-m", "memstore.service", str(served.root)],
        env={**os.environ, "PYTHONPATH": str(package.parent)},
        cwd=package.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        their_code = quickfind.code_stamp(str(package))
        deadline = time.monotonic() + 30
        while (ask(served, "{}", code=their_code) or {}).get("ok") is not True:
            assert time.monotonic() < deadline, "the copy's service did not start"
            time.sleep(0.1)
        assert ask(served, data) == {"refused": "version"}
        expected = hook(served, payload(PROMPTS[0], "expected"), env=IN_PROCESS)
        assert "pgbouncer pool size for billing" in expected[1]
        assert hook(served, data) == expected
        assert other.poll() is None  # another install's hooks are no reason to stop
    finally:
        other.kill()
        other.wait()
