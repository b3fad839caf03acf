"""How memories refer to each other: `links:` ids, `[[wiki links]]` in bodies, `supersedes:`.

A wiki link `[[target]]` or `[[target|shown text]]` names a memory by, in this order: its id, its
file name without `.md` (Obsidian's own rule, so `[[<file stem>|Title]]` works in both), its
title or one of its `aliases` (case-insensitive, spaces collapsed), or a unique id prefix of at
least MIN_PREFIX characters. A `#heading` or `^block` after the target is ignored. Links inside
code (fenced blocks and `inline spans`) are not links. See docs/links.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from memstore import ids
from memstore.memory import ENCRYPTED_SUFFIX, SUFFIX
from memstore.results import SearchHit

if TYPE_CHECKING:
    from memstore.memory import Memory

WIKI_LINK = re.compile(r"\[\[([^\[\]\n]+)\]\]")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# Shorter prefixes of an id are too likely to be a word ("cafe", "bed").
MIN_PREFIX = 8

Hit = TypeVar("Hit", bound=SearchHit)


@dataclass
class RelatedHit(SearchHit):
    """A memory related to another: how ("links to", "similar", …), with a score when similar."""

    relation: str = "similar"


@dataclass(frozen=True)
class WikiLink:
    """One `[[target|alias]]` in a body: the target as written, and its line in the body."""

    target: str
    alias: str | None
    line: int


def wiki_links(body: str) -> list[WikiLink]:
    """The wiki links of a body, outside code blocks and code spans, in order."""
    found: list[WikiLink] = []
    fence: str | None = None
    for number, line in enumerate(body.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1) == fence:
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if "[[" not in line:
            continue
        for match in WIKI_LINK.finditer(_CODE_SPAN.sub(_blank, line)):
            inner = match.group(1)
            target, _, alias = inner.partition("|")
            target = re.split(r"[#^]", target, maxsplit=1)[0].strip()
            if target:
                found.append(WikiLink(target, alias.strip() or None if alias else None, number))
    return found


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def key(text: str) -> str:
    """How a name is compared: lower case, spaces collapsed, no commas (index keywords)."""
    return " ".join(text.replace(",", " ").split()).lower()


def stem(path: str) -> str:
    """A memory file's name without its folder and `.md` / `.md.age` (what Obsidian links to)."""
    name = path.rsplit("/", 1)[-1]
    return name.removesuffix(ENCRYPTED_SUFFIX).removesuffix(SUFFIX)


def aliases(memory: Memory) -> list[str]:
    """The memory's `aliases` (Obsidian's field): a list of texts, or one text."""
    value = memory.fields.get("aliases")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str | int | float)]
    return []


def names(memory: Memory) -> list[str]:
    """The keys a wiki link can name this memory by, besides its id: file stem, title, aliases."""
    found = [key(stem(memory.path)), key(memory.title), *(key(a) for a in aliases(memory))]
    return list(dict.fromkeys(name for name in found if name))


def targets(memory: Memory) -> list[str]:
    """Every target the memory links to, as keys: `links:` ids, then wiki-link targets."""
    found = [key(link) for link in memory.links]
    found += [key(link.target) for link in wiki_links(memory.body)]
    return list(dict.fromkeys(name for name in found if name))


def wiki_link(memory: Memory) -> str:
    """The wiki link to write for a memory: it resolves in memstore and in Obsidian alike."""
    title = memory.title.replace("|", "-").replace("]]", "] ]")
    return f"[[{stem(memory.path)}|{title}]]"


def id_prefixes(memory_id: str) -> list[str]:
    """The prefixes of an id a wiki link may use (MIN_PREFIX characters and more)."""
    return [memory_id[:n] for n in range(MIN_PREFIX, len(memory_id) + 1)]


@dataclass
class Resolver:
    """Resolves link targets against a set of memories held in memory (for whole-store checks)."""

    by_id: dict[str, str] = field(default_factory=dict)  # id: path
    by_name: dict[str, list[str]] = field(default_factory=dict)  # key: ids
    by_stem: dict[str, list[str]] = field(default_factory=dict)  # key: ids
    _sorted_ids: list[str] = field(default_factory=list)

    def add(self, memory_id: str, path: str, name_keys: Iterable[str] = ()) -> None:
        """Make a memory known: its id, its file, and its other names (title, aliases)."""
        self.by_id[memory_id] = path
        self.by_stem.setdefault(key(stem(path)), []).append(memory_id)
        for name in name_keys:
            self.by_name.setdefault(name, []).append(memory_id)
        self._sorted_ids = []

    def resolve(self, target: str) -> list[str]:
        """The ids a target names (none when it is broken; several for a shared title)."""
        wanted = key(target)
        if wanted in self.by_id:
            return [wanted]
        if wanted in self.by_stem:
            return list(self.by_stem[wanted])
        if wanted.endswith(SUFFIX) and key(stem(wanted)) in self.by_stem:  # [[name.md]]
            return list(self.by_stem[key(stem(wanted))])
        if "/" in wanted and key(stem(wanted)) in self.by_stem:  # [[folder/name]]
            return list(self.by_stem[key(stem(wanted))])
        if wanted in self.by_name:
            return list(dict.fromkeys(self.by_name[wanted]))
        if len(wanted) >= MIN_PREFIX and ids.looks_like_id_prefix(wanted):
            return self._by_prefix(wanted)
        return []

    def _by_prefix(self, prefix: str) -> list[str]:
        import bisect

        if not self._sorted_ids:
            self._sorted_ids = sorted(self.by_id)
        start = bisect.bisect_left(self._sorted_ids, prefix)
        found = []
        for memory_id in self._sorted_ids[start : start + 2]:
            if memory_id.startswith(prefix):
                found.append(memory_id)
        return found if len(found) == 1 else []


def link_lines(memory: Memory, first_body_line: int) -> list[tuple[str, int, str]]:
    """Each link of a memory as (target, file line, how it is written), for `mem check`."""
    found: list[tuple[str, int, str]] = []
    header = memory.header_lines or []
    for memory_id in memory.links:
        line = next((n + 2 for n, text in enumerate(header) if memory_id in text), 2)
        found.append((memory_id, line, f"links: {memory_id}"))
    for link in wiki_links(memory.body):
        found.append((link.target, first_body_line + link.line - 1, f"[[{link.target}]]"))
    return found


def order_after_successors(hits: Sequence[Hit], successors: dict[str, list[str]]) -> list[Hit]:
    """Move each superseded hit to just below the lowest-ranked of its successors among the hits.

    Everything else keeps its order; a memory superseded by one that was not found stays where
    it is. Chains (a superseded by b superseded by c) end up in order c, b, a.
    """
    ordered = list(hits)
    for _ in range(len(ordered)):  # a fixed point within n passes, even for chains
        moved = False
        for hit in list(ordered):
            later = [s for s in successors.get(hit.id, []) if s != hit.id]
            positions = [i for i, other in enumerate(ordered) if other.id in later]
            if not positions:
                continue
            here = ordered.index(hit)
            last = max(positions)
            if here < last:
                ordered.insert(last, ordered.pop(here))
                moved = True
        if not moved:
            break
    return ordered


def supersedes_value(existing: Any, new_id: str) -> list[str]:
    """The `supersedes` list with one more id (a single id is turned into a list)."""
    current = [existing] if isinstance(existing, str) else list(existing or [])
    return current if new_id in current else [*current, new_id]


def broken_links(
    memories: Iterable[Memory], other_ids: Iterable[str] = ()
) -> list[tuple[str, int, str]]:
    """Links that name no memory, as (path, line, message), for `mem check`.

    other_ids are memories that exist but could not be read (encrypted, without the key).
    """
    facts = [(memory.path, memory.id, *link_facts(memory)) for memory in memories]
    return unresolved_links(facts, other_ids)


def link_facts(memory: Memory) -> tuple[list[str], list[tuple[str, int, str]]]:
    """What checking links needs of a memory: its other names, and its links as link_lines."""
    first_body_line = len(memory.header_lines or []) + 3
    return names(memory)[1:], link_lines(memory, first_body_line)


def unresolved_links(
    facts: Iterable[tuple[str, str, Sequence[str], Sequence[Sequence[Any]]]],
    other_ids: Iterable[str] = (),
) -> list[tuple[str, int, str]]:
    """broken_links over (path, id, other names, link lines) of each memory, as kept by checks."""
    batch = list(facts)
    if not any(lines for _, _, _, lines in batch):
        return []  # no link to resolve: spare building the resolver (most stores)
    resolver = Resolver()
    for path, memory_id, other_names, _ in batch:
        if memory_id:
            resolver.add(memory_id, path, other_names)
    for memory_id in other_ids:
        resolver.add(memory_id, f"{memory_id}{ENCRYPTED_SUFFIX}")
    found: list[tuple[str, int, str]] = []
    for path, _, _, lines in batch:
        for target, line, written in lines:
            if not resolver.resolve(target):
                found.append(
                    (
                        path,
                        line,
                        f"broken link {written}: no memory has this id, file name, title or alias",
                    )
                )
    return found
