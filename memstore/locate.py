"""Where the store is: --store, MEM_STORE, the store around the current folder, or the default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = ".memstore.toml"
DEFAULT_NAME = "default"


def data_home() -> Path:
    """The platform's folder for user data (XDG_DATA_HOME honoured everywhere)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    return Path.home() / ".local" / "share"


def default_store_path() -> Path:
    """The store used when nothing else names one."""
    return data_home() / "memstore" / DEFAULT_NAME


def is_store(path: Path) -> bool:
    """Tell whether path is the root of a store."""
    return (path / MARKER).is_file() and (path / ".git").exists()


def find_enclosing_store(start: Path) -> Path | None:
    """The nearest store at or above start, found the way git finds .git."""
    current = start.resolve()
    for folder in (current, *current.parents):
        if is_store(folder):
            return folder
    return None


def choose_store(explicit: str | None, cwd: Path | None = None) -> tuple[Path, bool]:
    """The store to use and whether it is the default one (which is created on first write)."""
    if explicit:
        return Path(explicit).expanduser(), False
    env = os.environ.get("MEM_STORE")
    if env:
        return Path(env).expanduser(), False
    enclosing = find_enclosing_store(cwd or Path.cwd())
    if enclosing is not None:
        return enclosing, False
    return default_store_path(), True
