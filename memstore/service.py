"""The search service of a large store: a resident process that answers `mem find`.

A cold `mem find` pays for importing typer and Whoosh and opening the index before it searches.
Where a change watcher runs (large stores, `watch.py`), `mem find` also starts this process; it
keeps those modules loaded and answers plain searches over a Unix socket in the store's
`.git/memstore/` (mode 0600, in a folder of mode 0700), which `quickfind.py` asks before the CLI
is loaded; the prompt hook (`quickrecall.py`, a request of kind "recall") asks it too, and starts
it as `mem find` does; so does a plain `mem add` (`quickadd.py`, kind "add"), which it runs as
the client would, for a client whose writer's settings are its own.

Each answer is a `Store.find` (or the hook's `recall.answer`) of a store opened for that
request, exactly what the CLI would run: the index catches up first through the watcher's
journal and its barrier, so an edit made before the request is found. A recall's shown ids are
recorded for its session once the text is sent, before the connection closes (which the client
waits for): a service killed in between leaves them to be shown again, never a prompt that got
nothing. The request kind is a field of the request, not a new protocol header: client and
service are always the same code (the code stamp below), and a header that an older service
could not read would keep it from seeing that its code changed and exiting.

The service refuses (and the client searches in process) a request of another protocol or of a
kind it does not know, from another memstore install or after its own code changed on disk
(then it also exits), with other settings (identity, time zone, data folders), for another root,
and any request whose search fails; errors are the CLI's to report. It holds a lock for its whole
life, so a second one exits at once; it exits when its store's folder is deleted or moved, when
the store's watcher has stopped (which is what `mem` and tests stop), after an idle hour, or on
SIGTERM, and removes its socket. A socket left behind by a killed service refuses connections,
and the next service replaces it.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memstore import quickadd, quickfind, watch
from memstore.locking import held, hold_for_life

LOCK_FILE = "service.lock"
CHECK_SECONDS = 2.0
IDLE_SECONDS = watch.IDLE_SECONDS
READ_TIMEOUT = 5.0


class _Collecting:
    """A reporter that keeps each request's notices and warnings, as the CLI prints them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _say(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)

    def notice(self, message: str) -> None:
        self._say(f"mem: {message}")

    def warning(self, message: str) -> None:
        self._say(f"mem: warning: {message}")

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Any:
        yield lambda step: None


def running(home: Path) -> bool:
    """Tell whether a service holds the store's service lock."""
    return held(home / LOCK_FILE)


def start_if_wanted(root: Path, home: Path) -> None:
    """Start the store's search service in the background when its watcher runs and it does not.

    Only stores that have a watcher get one: those are the stores large enough for a cold
    command to cost more than its start-up (or where `MEM_WATCH=1` asks for one).
    """
    if not watch.supported() or os.environ.get("MEM_WATCH") == "0":
        return
    if not (home / watch.READY_FILE).exists() or running(home):
        return
    if quickfind.socket_path(str(root)) is None:
        return
    watch.spawn("memstore.service", root)


def stop(home: Path, wait: float = 5.0) -> None:
    """Stop the store's service, if one runs (SIGTERM, then SIGKILL)."""
    import signal

    try:
        pid = int((home / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        if not running(home):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + patience
        while running(home) and time.monotonic() < deadline:
            time.sleep(0.02)
    deadline = time.monotonic() + 5.0
    while pid in watch.reap() and time.monotonic() < deadline:
        time.sleep(0.005)


class _Service:
    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        self.code = quickfind.code_stamp()
        self.settings = quickfind.settings()
        self.writer = quickadd.writer_settings()
        self.identity = _identity(home)
        self.path = home / quickfind.SOCKET_NAME
        self.listener: Any = None
        self.socket_identity: tuple[int, int] | None = None
        self.last_request = time.monotonic()
        self.after_answer: Callable[[], None] | None = None

    def listen(self) -> None:
        import socket

        self.path.unlink(missing_ok=True)  # left by a killed service: this one holds the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self.listener = listener

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        with contextlib.suppress(OSError):
            if _identity(self.path) == self.socket_identity:
                self.path.unlink()

    def run(self) -> None:
        import select

        self.listen()
        self.socket_identity = _identity(self.path)
        while True:
            readable, _, _ = select.select([self.listener], [], [], CHECK_SECONDS)
            if readable:
                connection, _ = self.listener.accept()
                with connection:
                    if not self.serve(connection):
                        return
                self.last_request = time.monotonic()
            elif not self.still_wanted():
                return
            else:
                watch.reap()  # watchers this service's searches started and that have exited

    def still_wanted(self) -> bool:
        """False once the store is gone or moved, its watcher stopped, or after an idle hour."""
        if _identity(self.home) != self.identity or not (self.root / "memories").is_dir():
            return False
        if _identity(self.path) != self.socket_identity:
            return False  # someone removed or replaced the socket
        if not held(self.home / watch.LOCK_FILE):
            return False
        return time.monotonic() - self.last_request < IDLE_SECONDS

    def serve(self, connection: Any) -> bool:
        """Answer one request; False when the service must stop."""
        connection.settimeout(READ_TIMEOUT)
        try:
            chunks = []
            while chunk := connection.recv(1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
            request = None
            if data.startswith(quickfind.HEADER):
                request = marshal.loads(data[len(quickfind.HEADER) :])
        except (OSError, EOFError, ValueError, TypeError):
            return True
        self.after_answer = None
        answer, keep_going = self.answer(request)
        try:
            connection.sendall(quickfind.HEADER + marshal.dumps(answer))
        except OSError:  # the client gave up (and recalls in process): nothing was shown
            return keep_going
        if self.after_answer is not None:
            # Once sent, and before the connection closes, which the client waits for: the next
            # request finds this one's record, and a service killed in between only leaves
            # memories to be shown again.
            with contextlib.suppress(Exception):
                self.after_answer()
        return keep_going

    def answer(self, request: Any) -> tuple[dict[str, Any], bool]:
        if not isinstance(request, dict):
            return {"refused": "protocol"}, True
        if request.get("code") != self.code:
            # Another install, or this one upgraded or edited since the service started: a
            # service whose code on disk changed exits, and the next `mem find` starts a new one.
            return {"refused": "version"}, quickfind.code_stamp(_package()) == self.code
        if [tuple(item) for item in request.get("settings", [])] != self.settings:
            return {"refused": "settings"}, True
        if request.get("root") != str(self.root) or _identity(self.home) != self.identity:
            return {"refused": "root"}, self.still_wanted()
        kind = request.get("kind", "find")
        if kind not in ("find", "recall", "add"):
            return {"refused": "protocol"}, True
        if kind == "add" and [tuple(item) for item in request.get("writer", [])] != self.writer:
            return {"refused": "settings"}, True
        served = {"find": self.search, "recall": self.recall, "add": self.add}[kind]
        try:
            return served(request), True
        except Exception:  # the client runs the command itself and reports the error its way
            return {"refused": "error"}, True

    def search(self, request: dict[str, Any]) -> dict[str, Any]:
        from memstore.store import Store

        reporter = _Collecting()
        store = Store.open(self.root, reporter=reporter)
        marks = request["marks"]
        found = store.find(request["query"], limit=request["limit"], marks=(marks[0], marks[1]))
        return {
            "ok": True,
            "hits": [hit.to_dict() for hit in found],
            "notices": reporter.lines,
        }

    def recall(self, request: dict[str, Any]) -> dict[str, Any]:
        """The prompt hook's text, as `hook.run` gives it; the shown ids are recorded once it
        is sent (`serve`)."""
        from memstore import recall
        from memstore.store import Store

        budget = request["budget"]
        if budget is not None and not isinstance(budget, int):
            raise TypeError("budget")
        tokens = recall.checked_budget(budget)
        payload = recall.read_payload(str(request["payload"]))
        store = Store(self.root)
        text, session, shown = recall.answer(store, payload, tokens)
        if session and shown:
            self.after_answer = lambda: recall.remember(store, session, shown, time.time_ns())
        return {"ok": True, "text": text}

    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        """A plain `mem add`, as `quickadd.add_here` runs it (`add_parsed`): its output, notices
        and exit status. The client's id makes a second try of the same add (in the client,
        when this one was not answered) find the memory instead of adding it again."""
        from memstore.errors import MemstoreError
        from memstore.store import Store

        args = quickadd.AddArgs(**request["args"])
        reporter = _Collecting()
        try:
            store = Store.open(self.root, reporter=reporter)
            out = quickadd.add_parsed(store, args, str(request["id"]))
        except MemstoreError as error:
            return {
                "ok": True,
                "status": error.exit_status,
                "out": None,
                "notices": [*reporter.lines, f"mem: error: {error}"],
            }
        return {"ok": True, "status": 0, "out": out, "notices": reporter.lines}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _package() -> str:
    return os.path.dirname(os.path.abspath(quickfind.__file__))


def main(argv: list[str]) -> None:
    """Run the search service of the store named on the command line, unless one runs."""
    from memstore.gitrepo import git_dir

    root = Path(argv[0]).resolve()
    home = git_dir(root) / "memstore"
    if not home.is_dir():
        return
    if not hold_for_life(home / LOCK_FILE):
        return
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    service = _Service(root, home)
    # Load what a search needs before listening: the first request is then as quick as the rest.
    from memstore import authoring, bulkscore, gitindex, jsontext, relations, yamlrules

    bulkscore.preload()
    del authoring, gitindex, jsontext, relations, yamlrules  # loaded for the first add
    with contextlib.suppress(Exception):
        service.search({"query": "memstore", "limit": 1, "marks": ["", ""]})
        service.recall({"payload": '{"prompt": "memstore"}', "budget": None})
    try:
        service.run()
    finally:
        service.close()


if __name__ == "__main__":
    main(sys.argv[1:])
