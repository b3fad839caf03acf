"""Inter-process locks on lock files (flock): released by the kernel when a process dies."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

POLL_SECONDS = 0.05
# How long a write (or a sync to a local remote) waits for another mem process: MEM_LOCK_TIMEOUT.
WRITE_LOCK_WAIT = float(os.environ.get("MEM_LOCK_TIMEOUT", "60"))


def cannot_write(error: OSError) -> bool:
    """Tell whether an error says the store may be read but not written (read-only, no rights)."""
    return error.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def held(path: Path) -> bool:
    """Whether another process holds an exclusive lock on the file (a resident process's
    lock file: held for as long as it runs)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def hold_for_life(path: Path) -> bool:
    """Take the file's exclusive lock for the rest of this process and write its pid there;
    False when another process holds it. A resident process (the watcher, the search service)
    runs only while it holds its lock: `held` tells the others."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return True  # the descriptor stays open, and the lock held, until the process ends


class FileLock:
    """An exclusive lock held through an open file; never left behind by a killed process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def hold(self, wait: float | None, shared: bool = False) -> Iterator[None]:
        """Hold the lock; wait up to `wait` seconds (None: forever), else raise TimeoutError.

        shared: hold it with other shared holders (readers), but not with an exclusive one.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            if not shared or not cannot_write(error):
                raise
            # A reader of a store it cannot write: flock works on a file open for reading, so
            # it still waits for the writers of those who can.
            fd = os.open(self.path, os.O_RDONLY)
        try:
            deadline = None if wait is None else time.monotonic() + wait
            mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError(str(self.path)) from None
                    time.sleep(POLL_SECONDS)
            try:
                if not shared:
                    _write_pid(fd)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _write_pid(fd: int) -> None:
    # Who holds the lock, for a person looking at it. A process that takes the same lock again
    # and again (a search after each keystroke of an agent) finds its pid there already and
    # writes nothing: truncating a file costs a journal write, a millisecond or more.
    pid = f"{os.getpid()}\n".encode()
    if os.pread(fd, len(pid) + 1, 0) != pid:
        os.ftruncate(fd, 0)
        os.pwrite(fd, pid, 0)
