"""Context for a prompt: the most relevant memories that fit in a token budget.

`build` asks `Store.find` for the best matches of a query (or takes the newest memories when the
query is empty), leaves out memories that a newer one supersedes, and packs them greedily in
rank order: a memory that fits whole goes in whole; one that does not is cut at a line (or word)
boundary when enough budget is left for a useful part, and otherwise skipped for a smaller one
further down. Tokens are estimated as characters / 4, rounded up, without a tokenizer (no
network, no model files); the estimate is close for English prose and low for code and for
non-Latin scripts, so leave some headroom. The output is deterministic: the same store, query
and budget give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from memstore.errors import InvalidInputError, MemstoreError

if TYPE_CHECKING:
    from memstore.memory import Memory
    from memstore.results import Listed, SearchHit

CHARS_PER_TOKEN = 4
MIN_BUDGET = 100
# Candidates considered: more than ever fit in a usual budget, few enough to read quickly.
CANDIDATES = 50
# A cut memory must keep at least this many tokens of body to be worth including.
MIN_PART = 40
TRUNCATED = "[…cut to fit; `mem show {id}` has the rest]"


class Memories(Protocol):
    """What `build` reads memories through: a `Store`'s public find, list and get."""

    def find(
        self, query: str, *, limit: int = ..., marks: tuple[str, str] = ...
    ) -> list[SearchHit]: ...

    def list(self, *, limit: int = ...) -> list[Listed]: ...

    def get(self, ref: str) -> Memory: ...


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens text costs a language model: characters / 4, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class Item:
    """One memory in the context block."""

    id: str
    title: str
    date: str
    path: str
    type: str
    tags: list[str]
    score: float | None
    truncated: bool
    text: str  # the memory as rendered in the block: header, blank line, body
    tokens: int = 0
    age: str = ""
    expired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Context:
    """The memories chosen for a query within a budget, and the block they make."""

    query: str
    budget: int
    items: list[Item] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The prompt-ready block; empty when no memory was found."""
        if not self.items:
            return ""
        return preamble(self.query) + "".join(item.text for item in self.items)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "budget": self.budget,
            "tokens": self.tokens,
            "memories": [item.to_dict() for item in self.items],
            "text": self.text,
        }


def preamble(query: str) -> str:
    """The block's opening lines: what it is and how to cite it."""
    words = " ".join(query.split())
    title = f"# Memories relevant to: {words}" if words else "# The most recent memories"
    return (
        f"{title}\nFrom memstore. Each memory gives its id, date and file; cite memories by id.\n"
    )


def header(
    memory_id: str,
    title: str,
    date: str,
    path: str,
    kind: str,
    tags: list[str],
    expired: str = "",
) -> str:
    """The lines that name one memory in the block, and its expiry when past.

    Its age is left out of the block, which stays the same bytes from day to day (it is in the
    JSON items).
    """
    tagged = f" · tags: {', '.join(tags)}" if tags else ""
    stale = f" · EXPIRED {expired}" if expired else ""
    return (
        f"\n## {title}\nid: {memory_id} · date: {date} · type: {kind}{tagged}{stale}\n"
        f"path: {path}\n\n"
    )


def build(store: Memories, query: str, budget: int) -> Context:
    """The most relevant memories for query that fit in about budget tokens."""
    if budget < MIN_BUDGET:
        raise InvalidInputError(
            f"a budget of {budget} tokens is too small: give at least {MIN_BUDGET}"
        )
    result = Context(query=query, budget=budget)
    if query.strip():
        hits = store.find(query, limit=CANDIDATES, marks=("", ""))
        ranked: list[tuple[Any, float | None]] = [
            (hit, hit.score) for hit in hits if not hit.superseded_by
        ]
    else:
        ranked = [(item, None) for item in store.list(limit=CANDIDATES)]
    left = budget - estimate_tokens(preamble(query))
    for found, score in ranked:
        try:
            memory = store.get(found.path)
        except MemstoreError:  # gone since it was indexed, or encrypted to someone else
            continue
        head = header(
            memory.id,
            memory.title,
            memory.created_text[:10],
            memory.path,
            memory.type,
            memory.tags,
            found.expires[:10] if found.expired else "",
        )
        body = memory.body if memory.body.endswith("\n") else memory.body + "\n"
        whole = head + body
        cost = estimate_tokens(whole)
        truncated = False
        if cost > left:
            note = TRUNCATED.format(id=memory.id) + "\n"
            room = (left - estimate_tokens(head + note)) * CHARS_PER_TOKEN
            if room < MIN_PART * CHARS_PER_TOKEN:
                continue
            whole = head + cut(body, room - 3) + note  # cut may add " …" to its part
            cost = estimate_tokens(whole)
            truncated = True
        result.items.append(
            Item(
                id=memory.id,
                title=memory.title,
                date=memory.created_text[:10],
                path=memory.path,
                type=memory.type,
                tags=memory.tags,
                score=score,
                truncated=truncated,
                text=whole,
                tokens=cost,
                age=found.age,
                expired=found.expired,
            )
        )
        left -= cost
        if left < MIN_PART:
            break
    return result


def cut(body: str, room: int) -> str:
    """The start of body in at most room characters, ending at a line or else a word break."""
    part = body[:room]
    if "\n" in part[room // 2 :]:
        return part[: part.rindex("\n") + 1]
    if " " in part[room // 2 :]:
        return part[: part.rindex(" ")] + " …\n"
    return part[: max(room - 3, 0)] + " …\n"
