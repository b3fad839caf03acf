"""memstore: a local-first memory store for people and AI agents, as Markdown files in git.

`from memstore import Store` is the library's front door. Names are loaded on first use so that
importing the package stays cheap.

The modules depend on each other in one direction, in layers (docs/architecture.md, checked by
tests/test_layers.py). Imports inside functions are for start-up cost only, to keep pygit2,
whoosh, pyrage, yaml and the MCP SDK out of `mem --help`; none of them may point to a higher
layer.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Not typing.TYPE_CHECKING: importing typing (and re, enum, collections with it) costs the fast
# paths (the prompt hook, `mem find` answered by the search service) a few milliseconds each.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memstore.errors import MemstoreError
    from memstore.memory import Memory
    from memstore.results import Filters, SearchHit
    from memstore.store import Store

__all__ = ["Filters", "Memory", "MemstoreError", "SearchHit", "Store"]

_HOMES = {
    "Store": "memstore.store",
    "Memory": "memstore.memory",
    "Filters": "memstore.results",
    "SearchHit": "memstore.results",
    "MemstoreError": "memstore.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'memstore' has no attribute {name!r}")


DISTRIBUTION = "memstore-git"  # the name on the package index; `memstore` there is another project


def version() -> str:
    """The installed version of memstore (from the memstore-git distribution's metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return __version__
