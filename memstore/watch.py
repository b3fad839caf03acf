"""A change journal for large stores, so that a search need not stat every file.

Seeing an edit made in an editor otherwise means a stat of every memory file before each search
(about 0.3 s at 100,000 files). On Linux, a store that large gets a small background process that
watches `memories/` with inotify and appends each changed path to a journal in `.git/memstore/`;
a search then reads only the journal's new lines. The watcher holds a lock for its whole life
(the kernel releases it if the process dies), announces itself in a ready file only once every
folder is watched, and exits when the store goes away, after an idle hour, or when its journal
grows large; the next search then falls back to the full scan and starts a new one.
`MEM_WATCH=0` turns it off, `MEM_WATCH=1` turns it on for stores of any size.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memstore.locking import held, hold_for_life

# ctypes, select, signal, struct and subprocess are imported where used: searches only read the
# journal, and must not pay for what the watching process needs.

LOCK_FILE = "watch.lock"
READY_FILE = "watch.ready"
AUTO_MIN_FILES = 5_000
IDLE_SECONDS = 3600
MAX_JOURNAL_BYTES = 4 << 20
OVERFLOW = "!"
# A search creates a file with this prefix in memories/ and waits for the watcher to journal it:
# inotify keeps events in order, so every edit made before the search is then in the journal.
BARRIER_PREFIX = ".mem-barrier-"
BARRIER_WAIT = 2.0
# What the journal holds and how a watcher answers; a watcher with another value is replaced.
PROTOCOL = "2"

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_ISDIR = 0x40000000
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
)
_EVENT_FORMAT = "iIII"


def supported() -> bool:
    """Tell whether this platform has inotify."""
    return sys.platform.startswith("linux")


def wanted(file_count: int) -> bool:
    """Tell whether a store of this size should have a watcher."""
    setting = os.environ.get("MEM_WATCH", "")
    if setting == "0" or not supported():
        return False
    return setting == "1" or file_count >= AUTO_MIN_FILES


@dataclass
class Journal:
    """The live watcher's journal."""

    generation: str
    path: Path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def barrier(self, folder: Path, wait: float = BARRIER_WAIT) -> bool:
        """Wait until the watcher has journaled every change made so far; False if it did not."""
        name = f"{BARRIER_PREFIX}{os.getpid()}-{time.monotonic_ns()}.tmp"
        marker = f"#{name}\n".encode()
        start = self.size()
        try:
            os.close(os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError:
            return False  # a read-only store: the caller scans instead
        try:
            deadline = time.monotonic() + wait
            delay = 0.0005
            while time.monotonic() < deadline:
                try:
                    with open(self.path, "rb") as handle:
                        handle.seek(start)
                        if marker in handle.read():
                            return True
                except FileNotFoundError:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(folder / name)

    def read(self, offset: int) -> tuple[list[str], int]:
        """Complete lines from offset on, and the offset after them."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [OVERFLOW], offset
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode("utf-8", "replace").splitlines()
        return lines, offset + end


def live_journal(home: Path) -> Journal | None:
    """The journal of a watcher that is running and ready, or None.

    A watcher of another memstore version (after an upgrade) is stopped: it may not answer the
    barrier, and the next search starts one of this version.
    """
    try:
        generation, _, protocol = (home / READY_FILE).read_text(encoding="ascii").partition(" ")
    except OSError:
        return None
    if not generation or not held(home / LOCK_FILE):
        return None
    if protocol.strip() != PROTOCOL:
        stop(home, wait=0.5)
        return None
    return Journal(generation, home / f"watch-{generation}.journal")


# Watchers this process started and has not yet reaped. A watcher outlives the search that
# started it, so nothing waits for it there; it is reaped once it has exited, by a later start
# or stop (a long-running process such as `mem mcp` would otherwise collect zombies).
_children: set[int] = set()


def start(root: Path) -> None:
    """Start a watcher for the store at root in the background (it exits if one is running)."""
    spawn("memstore.watch", root)


def spawn(module: str, root: Path) -> None:
    """Run `python -P -m module root` in the background, detached (a watcher, the search
    service)."""
    import signal

    reap()
    # posix_spawn, not subprocess.Popen: a Popen object dropped while its process runs is a
    # leak to Python (a ResourceWarning), and this process is meant to run on.
    null_in = (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
    null_out = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    with contextlib.suppress(OSError):
        pid = os.posix_spawn(
            sys.executable,
            # -P: the folder this command was run in is not put on sys.path, so a `memstore`
            # folder there (a source checkout, a project) cannot stand in for this install.
            [sys.executable, "-P", "-m", module, str(root)],
            os.environ,
            file_actions=[null_in, *null_out],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
        _children.add(pid)


def reap() -> set[int]:
    """Collect the watchers this process started that have exited; return those still running."""
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            done = pid
        if done:
            _children.discard(pid)
    return set(_children)


def stop(home: Path, wait: float = 5.0) -> None:
    """Stop the store's watcher, if one runs: ask it to, then kill it if it has not gone."""
    import signal

    try:
        pid = int((home / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not held(home / LOCK_FILE):
        return
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + patience
        while held(home / LOCK_FILE) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not held(home / LOCK_FILE):
            # It holds its lock until it exits: once released, reaping it takes a moment at most.
            deadline = time.monotonic() + 5.0
            while pid in reap() and time.monotonic() < deadline:
                time.sleep(0.005)
            return


class _Watcher:
    """The watching process."""

    def __init__(self, root: Path, home: Path) -> None:
        import ctypes
        import secrets

        self.root = root
        self.base = root / "memories"
        self.home = home
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.get_errno = ctypes.get_errno
        self.folders: dict[int, str] = {}
        self.generation = secrets.token_hex(8)
        self.journal_path = home / f"watch-{self.generation}.journal"
        self.journal = open(self.journal_path, "ab")  # noqa: SIM115 - open for the process's life

    def add_tree(self, rel: str, announce: bool) -> None:
        """Watch a folder and those below it; with announce, journal what is already there."""
        full = self.root / rel
        wd = self.libc.inotify_add_watch(self.fd, str(full).encode(), _MASK)
        if wd < 0:
            if rel == "memories":
                raise OSError(self.get_errno(), f"inotify_add_watch {full}")
            return
        self.folders[wd] = rel
        if announce:
            self.write(f"{rel}/")
        try:
            entries = list(os.scandir(full))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                self.add_tree(f"{rel}/{entry.name}", announce)

    def write(self, line: str) -> None:
        self.journal.write(line.encode("utf-8", "surrogateescape") + b"\n")

    def run(self) -> None:
        import select

        self.add_tree("memories", announce=False)
        ready = self.home / READY_FILE
        temp = self.home / f".{READY_FILE}.{os.getpid()}"
        temp.write_text(f"{self.generation} {PROTOCOL}\n")
        os.replace(temp, ready)
        for old in self.home.glob("watch-*.journal"):
            if old != self.journal_path:
                old.unlink(missing_ok=True)
        last_event = time.monotonic()
        while True:
            readable, _, _ = select.select([self.fd], [], [], 60)
            if not readable:
                if time.monotonic() - last_event > IDLE_SECONDS or not self.base.is_dir():
                    return
                continue
            last_event = time.monotonic()
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not self.handle(data):
                return
            self.journal.flush()
            if self.journal.tell() > MAX_JOURNAL_BYTES:
                return

    def handle(self, data: bytes) -> bool:
        """Journal a batch of events; False when the watcher must stop."""
        import struct

        event = struct.Struct(_EVENT_FORMAT)
        offset = 0
        while offset + event.size <= len(data):
            wd, mask, _cookie, length = event.unpack_from(data, offset)
            name = data[offset + event.size : offset + event.size + length].rstrip(b"\0")
            offset += event.size + length
            if mask & _IN_Q_OVERFLOW:
                self.write(OVERFLOW)
                continue
            folder = self.folders.get(wd)
            if folder is None:
                continue
            if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED):
                self.folders.pop(wd, None)
                if folder == "memories":
                    self.write(OVERFLOW)
                    return False
                continue
            text = name.decode("utf-8", "surrogateescape")
            if text.startswith(BARRIER_PREFIX) and mask & _IN_CREATE:
                self.write(f"#{text}")  # every event before this one is in the journal now
                continue
            if not text or text.startswith("."):
                continue
            rel = f"{folder}/{text}"
            if mask & _IN_ISDIR:
                if mask & (_IN_CREATE | _IN_MOVED_TO):
                    self.add_tree(rel, announce=True)
                else:
                    self.write(f"{rel}/")
            else:
                self.write(rel)
        return True


def main(argv: list[str]) -> None:
    """Run a watcher for the store named on the command line, unless one already runs."""
    from memstore.gitrepo import git_dir

    root = Path(argv[0]).resolve()
    home = git_dir(root) / "memstore"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not hold_for_life(home / LOCK_FILE):
        return
    # A watcher that was killed left its ready file: until this one is ready, none is.
    (home / READY_FILE).unlink(missing_ok=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watcher = _Watcher(root, home)
    try:
        watcher.run()
    finally:
        (home / READY_FILE).unlink(missing_ok=True)
        watcher.journal_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main(sys.argv[1:])
