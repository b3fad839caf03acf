"""One memory as `mem show` and the MCP `show` tool give it: the memory and its neighbours.

A memory alone can mislead: a newer memory may supersede it, and others may link to it. `view`
gathers the memory, the memories that supersede it and those that link to it, through a
`Store`'s public get, successors and backlinks; `View.to_dict` is the object of
`mem show --json` and of the MCP `show` tool, built in this one place for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from memstore import freshness

if TYPE_CHECKING:
    from memstore.memory import Memory
    from memstore.results import Listed


class Memories(Protocol):
    """What `view` reads through: a `Store`'s public get, successors and backlinks."""

    def get(self, ref: str) -> Memory: ...

    def successors(self, ref: str) -> list[Listed]: ...

    def backlinks(self, ref: str) -> list[Listed]: ...


@dataclass
class View:
    """A memory, the memories that supersede it and those that link to it (newest first)."""

    memory: Memory
    superseded_by: list[Listed]
    backlinks: list[Listed]
    now: datetime  # for its age and whether it has expired

    def to_dict(self) -> dict[str, Any]:
        """The memory's fields and text, whether it expired and its age, its wiki link, and its
        neighbours by id and title."""
        from memstore.links import wiki_link

        data = freshness.describe(self.memory.to_dict(), self.now)
        data["wikilink"] = wiki_link(self.memory)
        data["superseded_by"] = [{"id": m.id, "title": m.title} for m in self.superseded_by]
        data["backlinks"] = [{"id": m.id, "title": m.title} for m in self.backlinks]
        return data


def view(memories: Memories, ref: str, now: datetime) -> View:
    """The memory named by ref (an id, a unique id prefix or a path) with its neighbours."""
    memory = memories.get(ref)
    return View(memory, memories.successors(memory.id), memories.backlinks(memory.id), now)
