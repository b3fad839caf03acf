"""The lock files of memstore/locking.py: who holds a lock, written once per process."""

from __future__ import annotations

import os
from pathlib import Path

from memstore.locking import FileLock


def test_an_exclusive_lock_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "index.lock"
    path.write_text("999999999\nleft by a process long gone\n")
    with FileLock(path).hold(wait=1):
        assert path.read_text() == f"{os.getpid()}\n"


def test_taking_a_lock_again_writes_nothing(tmp_path: Path) -> None:
    # A search takes the index lock each time; its pid is there already after the first.
    path = tmp_path / "index.lock"
    lock = FileLock(path)
    with lock.hold(wait=1):
        pass
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    with lock.hold(wait=1):
        pass
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert path.read_text() == f"{os.getpid()}\n"


def test_a_shared_lock_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "index.lock"
    path.write_text("123\n")
    with FileLock(path).hold(wait=1, shared=True):
        assert path.read_text() == "123\n"
