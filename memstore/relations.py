"""How memories relate: links both ways, supersedes, duplicates and "more like this".

Read through the index (`search`), never by reading every file. The link syntax and the rules
of `supersedes` are in `links`; what makes two texts duplicates is in `duplicates`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from memstore import duplicates as repeats
from memstore import ids, links, search
from memstore.core import check_limit
from memstore.errors import AmbiguousIdError, MemoryNotFoundError
from memstore.links import MIN_PREFIX, RelatedHit, key
from memstore.memory import Memory
from memstore.results import Listed
from memstore.search import RELATED_MIN_SHARE
from memstore.text import lead

if TYPE_CHECKING:
    from memstore.core import Core
    from memstore.duplicates import Duplicate


def duplicates(
    core: Core,
    text: str,
    *,
    exclude: Iterable[str] = (),
    budget: int = repeats.RARE_POSTINGS,
) -> list[Duplicate]:
    """Memories that a new memory with this text would repeat: exact first, then similar.

    Similar ones are looked for among the memories sharing the text's rarest words, within a
    budget of postings read (see `duplicates`).
    """
    skip = frozenset(exclude)
    found: dict[str, Duplicate] = {}
    with core.index.reading() as ix, ix.reader() as reader:
        same = search.having_in(reader, "digest", [repeats.digest(text)])
        for item in core.reveal(same):
            if item.id not in skip:
                found[item.id] = repeats.Duplicate(item.id, item.title, item.path, "exact", 1.0)
        words = search.rare_words(reader.schema, reader, text, repeats.RARE_TERMS, budget)
        near = search.sharing_words(reader, words, repeats.CANDIDATES, skip | set(found))
    for item, _ in near:
        score = repeats.similarity(text, core.read_body(item.path) or "")
        if score >= repeats.SIMILAR:
            core.reveal([item])
            found[item.id] = repeats.Duplicate(
                item.id, item.title, item.path, "similar", round(score, 3)
            )
    return sorted(found.values(), key=lambda d: (d.kind != "exact", -d.similarity, d.id))


def resolve_link(core: Core, target: str) -> str:
    """The id a link target names: an id, id prefix or path, else a title or alias."""
    try:
        return core.get(target).id
    except MemoryNotFoundError:
        with core.index.reading() as ix:
            named = search.having(ix, "names", [key(target)])
        if len(named) == 1:
            return named[0].id
        if not named:
            raise
        shown = ", ".join(item.id for item in named[:3])
        raise AmbiguousIdError(
            f"{len(named)} memories are named {target!r} ({shown}): give an id"
        ) from None


def backlinks(core: Core, ref: str) -> list[Listed]:
    """The memories that link to ref (by `links:` or a `[[wiki link]]`), newest first."""
    memory = core.get(ref)
    with core.index.reading() as ix:
        return core.reveal(_linking(core, ix, memory))


def successors(core: Core, ref: str) -> list[Listed]:
    """The memories whose `supersedes` names ref, newest first."""
    memory = core.get(ref)
    with core.index.reading() as ix:
        newer = search.successors(ix, [memory.id]).get(memory.id, [])
        found = search.having(ix, "id", newer)
    return core.reveal(sorted(found, key=lambda item: item.id, reverse=True))


def _linking(core: Core, ix: Any, memory: Memory) -> list[Listed]:
    wanted = [memory.id, *links.names(memory), *links.id_prefixes(memory.id)]
    found = [item for item in search.having(ix, "links", wanted) if item.id != memory.id]
    return sorted(found, key=lambda item: item.id, reverse=True)


def related(core: Core, ref: str, limit: int = 10) -> list[RelatedHit]:
    """Memories related to ref: by supersedes and links (both ways) first, then similar text.

    Each hit says how it is related: "supersedes", "superseded by", "links to", "linked from"
    or "similar" (a "more like this" search on the memory's key terms, scored).
    """
    check_limit(limit)
    memory = core.get(ref)
    relations: dict[str, str] = {}

    def note(ids_: Iterable[str], relation: str) -> None:
        for other in ids_:
            if other != memory.id:
                relations.setdefault(other, relation)

    with core.index.reading() as ix:
        note(_existing(core, ix, memory.supersedes), "supersedes")
        note(search.successors(ix, [memory.id]).get(memory.id, []), "superseded by")
        outgoing = [_link_ids(core, ix, target) for target in links.targets(memory)]
        note((i for ids_ in outgoing for i in ids_), "links to")
        note((item.id for item in _linking(core, ix, memory)), "linked from")
        text = f"{memory.title}\n{memory.body}"
        near = search.similar(
            ix,
            text,
            limit or 10,
            frozenset({memory.id, *relations}),
            min_share=RELATED_MIN_SHARE,
        )
        by_id = {item.id: item for item in search.having(ix, "id", [*relations])}
    hits: list[RelatedHit] = []
    for other, relation in relations.items():
        if other in by_id:
            item = by_id[other]
            snippet = lead(core.read_body(item.path) or "")
            hits.append(RelatedHit(**item.to_dict(), score=0.0, snippet=snippet, relation=relation))
    for item, score in near:
        snippet = lead(core.read_body(item.path) or "")
        hits.append(RelatedHit(**item.to_dict(), score=score, snippet=snippet))
    return core.reveal(hits[:limit] if limit else hits)


def _existing(core: Core, ix: Any, memory_ids: list[str]) -> list[str]:
    return [item.id for item in search.having(ix, "id", memory_ids)]


def _link_ids(core: Core, ix: Any, target: str) -> list[str]:
    """The ids a link target (as a key) names, resolved through the index."""
    exact = search.having(ix, "id", [target])
    if exact:
        return [exact[0].id]
    named = search.having(ix, "names", [target])
    if named:
        return [item.id for item in named]
    if len(target) >= MIN_PREFIX and ids.looks_like_id_prefix(target):
        matches = search.by_id_prefix(ix, target)
        return [matches[0].id] if len(matches) == 1 else []
    return []
