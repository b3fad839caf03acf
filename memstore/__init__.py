"""memstore: a local-first memory store for people and AI agents, as Markdown files in git.

`from memstore import Store` is the library's front door. Names are loaded on first use so that
importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from memstore.errors import MemstoreError
    from memstore.index import Filters, SearchHit
    from memstore.memory import Memory
    from memstore.store import Store

__all__ = ["Filters", "Memory", "MemstoreError", "SearchHit", "Store"]

_HOMES = {
    "Store": "memstore.store",
    "Memory": "memstore.memory",
    "Filters": "memstore.index",
    "SearchHit": "memstore.index",
    "MemstoreError": "memstore.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'memstore' has no attribute {name!r}")
