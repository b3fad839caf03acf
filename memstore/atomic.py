"""Atomic file writes: a unique temporary file beside the target, then a rename."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

TEMP_PREFIX = ".mem-"
TEMP_SUFFIX = ".tmp"


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, data: bytes, mode: int | None = None, durable: bool = True) -> None:
    """Replace path with data so that readers see the old bytes or the new, never a part.

    With durable=False the data is not forced to disk first: fine for caches, which a crash
    may lose but never corrupt.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = _default_mode()
    import tempfile  # here: a process that only reads (the prompt hook) need not load it

    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def is_temporary(name: str) -> bool:
    """Tell whether a file name is one of our temporary files (left behind by a crash)."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def files_now_ns(folder: Path) -> int:
    """Now, by the clock that stamps the files in folder (ns), to compare with their times.

    The machine's clock and a file system's may disagree (a network share, a clock moved for a
    test): a file written here a moment ago carries the file system's own idea of now.
    """
    probe = folder / "clock"
    try:
        probe.write_bytes(b"")  # stamped by a write, as the files compared with it are
        return probe.stat().st_mtime_ns
    except OSError:  # a folder that cannot be written: the machine's clock will do
        return time.time_ns()
