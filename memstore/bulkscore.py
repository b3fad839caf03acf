"""The top hits of large queries, scored in bulk with numpy instead of one match at a time.

Whoosh walks a query's matches one memory at a time in Python: a word found in 40,000 memories
costs a few hundred milliseconds. Here each word's postings are read whole into arrays (kept in
memory per index segment, which never changes once written), scored with BM25F in numpy and
combined as the query's And and Or say. That gives every match a bound at least as high as its
true score (a phrase counts as all of its words, wherever they are). The best of them are then
scored by Whoosh's own matcher, skipping straight to each, until no bound left can beat the last
hit: the hits, their order and their scores are Whoosh's to the last bit.

Queries of other shapes (prefixes, ranges, negations), queries too small to gain, and installs
without numpy get None, and the caller searches with Whoosh as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from whoosh.query import Query
    from whoosh.searching import Results, Searcher

# Below this many postings in all (summed over the query's words and fields) Whoosh's own walk
# is fast enough, and importing numpy (tens of milliseconds) would cost more than it saves.
BULK_MIN_POSTINGS = 20_000
# Postings kept in memory across searches, in bytes (12 bytes a posting: a document number and
# a weight). Least recently used words go first.
CACHE_BYTES = 96 * 1024 * 1024
# Bounds and Whoosh's sums may differ in the last bits (another order of additions): a bound is
# taken as beatable within this share.
SLACK = 1e-9


@dataclass
class _Scored:
    """Matches of part of a query: document numbers (ascending) and their score bounds."""

    docnums: np.ndarray
    bounds: np.ndarray


class _Unsupported(Exception):
    """The query has a part that bulk scoring does not model."""


def worth_trying(searcher: Searcher, query: Query, limit: int | None) -> bool:
    """Whether top() can score query and would be quicker than Whoosh's walk."""
    if not limit:
        return False
    from whoosh import scoring

    if type(searcher.weighting) is not scoring.BM25F:
        return False
    try:
        words = list(_leaf_terms(query))
    except _Unsupported:
        return False
    if len(words) < 2:
        return False  # one word: Whoosh skips the blocks that cannot make the top, and is quick
    reader = searcher.reader()
    if sum(reader.doc_frequency(name, text) for name, text in words) < BULK_MIN_POSTINGS:
        return False
    try:
        import numpy  # noqa: F401  (an optional dependency: without it, search as usual)
    except ImportError:
        return False
    return True


def top(
    searcher: Searcher, query: Query, limit: int, terms: bool, allowed: set[int] | None
) -> Results | None:
    """Whoosh's results for a query worth_trying() accepted: at most limit hits, best first;
    None if the query has a part not modelled here, to search as usual.

    terms: record which terms each hit matched (`Results.docterms`), as `search(terms=True)`.
    allowed: only these document numbers (a filter), or None for all.
    """
    walk = _Walk(searcher)
    try:
        scored = walk.bounds(query)
    except _Unsupported:
        return None
    scored = _without_deleted(searcher, scored, allowed)
    if walk.phrases:
        return _checked_top(searcher, query, scored, limit, terms)
    return _scored_top(searcher, query, scored, limit, walk.leaves if terms else None)


def _leaf_terms(query: Query) -> Any:
    """The (field, term) pairs a query reads; raises _Unsupported for a shape not modelled."""
    from whoosh import query as q

    kind = type(query)
    if kind is q.Term:
        yield query.fieldname, query.text  # type: ignore[attr-defined]
    elif isinstance(query, q.Phrase) and kind.matcher is q.Phrase.matcher:
        if len(query.words) < 2:  # type: ignore[attr-defined]
            raise _Unsupported  # Whoosh scores a phrase of one word its own way
        for word in query.words:  # type: ignore[attr-defined]
            yield query.fieldname, word  # type: ignore[attr-defined]
    elif kind in (q.And, q.Or):
        if kind is q.Or and (query.minmatch or query.scale):  # type: ignore[attr-defined]
            raise _Unsupported
        for child in query.subqueries:  # type: ignore[attr-defined]
            yield from _leaf_terms(child)
    else:
        raise _Unsupported


class _Walk:
    """Scores a query's parts in bulk, noting each term's matches and whether a phrase needs
    its positions checked."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.leaves: list[tuple[tuple[str, bytes], np.ndarray]] = []
        self.phrases = False

    def bounds(self, query: Query) -> _Scored:
        """Every match of query, scored; a phrase is scored as if its words stood together."""
        from whoosh import query as q

        kind = type(query)
        if kind is q.Term:
            return _boosted(self.term(query.fieldname, query.text), query.boost)  # type: ignore[attr-defined]
        if isinstance(query, q.Phrase):
            field = self.searcher.schema[query.fieldname]  # type: ignore[attr-defined]
            # A field without positions matches all of the words, as Whoosh does.
            self.phrases |= bool(field.format and field.format.supports("positions"))
            parts = [self.term(query.fieldname, word) for word in query.words]  # type: ignore[attr-defined]
            return _boosted(_all_of(parts), query.boost)
        children = [self.bounds(child) for child in query.subqueries]  # type: ignore[attr-defined]
        if len(children) == 1:
            return children[0]  # Whoosh ignores the boost of a group of one
        combined = _all_of(children) if kind is q.And else _any_of(children)
        return _boosted(combined, query.boost)

    def term(self, fieldname: str, text: str | bytes) -> _Scored:
        """BM25F scores of one term in one field, for every memory that has it: Whoosh's
        bm25(), over arrays."""
        import numpy as np

        searcher = self.searcher
        if fieldname not in searcher.schema:
            return _nothing()
        field = searcher.schema[fieldname]
        if not field.scorable:
            raise _Unsupported
        try:
            btext = field.to_bytes(text)
        except ValueError:
            return _nothing()
        if (fieldname, btext) not in searcher.reader():
            return _nothing()  # as Whoosh's Term.matcher
        scorer = searcher.weighting.scorer(searcher, fieldname, btext)
        idf, avgfl, b, k1 = scorer.idf, scorer.avgfl, scorer.B, scorer.K1  # type: ignore[attr-defined]
        docnums, scores = [], []
        for leaf, offset in _leaves(searcher):
            ids, weights = _postings(leaf, fieldname, btext)
            if not len(ids):
                continue
            lengths = _lengths(leaf, fieldname)[ids]
            scores.append(
                idf * ((weights * (k1 + 1)) / (weights + k1 * ((1 - b) + b * lengths / avgfl)))
            )
            docnums.append(ids.astype(np.int64) + offset)
        if not docnums:
            return _nothing()
        found = _Scored(np.concatenate(docnums), np.concatenate(scores))
        self.leaves.append(((fieldname, btext), found.docnums))
        return found


def _nothing() -> _Scored:
    import numpy as np

    return _Scored(np.empty(0, np.int64), np.empty(0))


def _boosted(scored: _Scored, boost: float) -> _Scored:
    if boost == 1.0:
        return scored
    return _Scored(scored.docnums, scored.bounds * boost)


def _all_of(parts: list[_Scored]) -> _Scored:
    import numpy as np

    docnums, bounds = parts[0].docnums, parts[0].bounds
    for part in parts[1:]:
        docnums, mine, theirs = np.intersect1d(
            docnums, part.docnums, assume_unique=True, return_indices=True
        )
        bounds = bounds[mine] + part.bounds[theirs]
    return _Scored(docnums, bounds)


def _any_of(parts: list[_Scored]) -> _Scored:
    import numpy as np

    everything = np.concatenate([part.docnums for part in parts])
    docnums, where = np.unique(everything, return_inverse=True)
    bounds = np.bincount(where, weights=np.concatenate([part.bounds for part in parts]))
    return _Scored(docnums, bounds)


def _leaves(searcher: Searcher) -> list[tuple[Any, int]]:
    return [(sub.reader(), offset) for sub, offset in searcher.leaf_searchers()]


def _without_deleted(searcher: Searcher, scored: _Scored, allowed: set[int] | None) -> _Scored:
    import numpy as np

    removed: list[int] = []
    for leaf, offset in _leaves(searcher):
        if leaf.has_deletions():
            removed.extend(offset + docnum for docnum in leaf.deleted_docs_set)
    keep = np.ones(len(scored.docnums), dtype=bool)
    if removed:
        keep &= ~np.isin(scored.docnums, np.array(removed, dtype=np.int64))
    if allowed is not None:
        keep &= np.isin(scored.docnums, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
    if keep.all():
        return scored
    return _Scored(scored.docnums[keep], scored.bounds[keep])


def _best_first(scored: _Scored) -> np.ndarray:
    """Positions in scored, best score first and, among equal scores, the lower document
    number first (Whoosh's order)."""
    import numpy as np

    return np.lexsort((scored.docnums, -scored.bounds))


def _scored_top(
    searcher: Searcher,
    query: Query,
    scored: _Scored,
    limit: int,
    leaves: list[tuple[tuple[str, bytes], np.ndarray]] | None,
) -> Results:
    """Without phrases the bulk scores are the scores: the top is read off them."""
    import numpy as np
    from whoosh.searching import Results

    best = _best_first(scored)[:limit]
    top_n = [
        (float(score), int(docnum))
        for score, docnum in zip(scored.bounds[best], scored.docnums[best], strict=True)
    ]
    results = Results(searcher, query, top_n)
    results._total = len(scored.docnums)  # len(results): every match, as Whoosh counts
    if leaves is not None:
        docnums = scored.docnums[best]
        matched: dict[int, list[Any]] = {int(docnum): [] for docnum in docnums}
        # A term is matched where the memory has it: what the question rules count
        # (query.Plan). Whoosh's own record of an And's terms depends on how far its walk got.
        for term, having in dict(leaves).items():
            for docnum in docnums[np.isin(docnums, having)]:
                matched[int(docnum)].append(term)
        _set_terms(results, matched)
    return results


def _checked_top(
    searcher: Searcher, query: Query, scored: _Scored, limit: int, terms: bool
) -> Results:
    """With phrases, a bulk score is a bound: the best bounds are scored by Whoosh's own
    matcher (which checks the positions) until no bound left can beat the last hit."""
    from whoosh.searching import Results

    order = _best_first(scored)
    found: list[tuple[float, int]] = []
    matched: dict[int, list[Any]] = {}
    start, batch = 0, limit * 2 + 16
    while start < len(order):
        chosen = scored.docnums[order[start : start + batch]]
        start += batch
        batch *= 2
        for docnum, score, words in _score_exactly(searcher, query, sorted(chosen.tolist()), terms):
            found.append((score, docnum))
            matched[docnum] = words
        found.sort(key=lambda pair: (-pair[0], pair[1]))
        if start >= len(order) or len(found) < limit:
            continue
        if found[limit - 1][0] > float(scored.bounds[order[start]]) * (1 + SLACK) + SLACK:
            break
    top_n = found[:limit]
    results = Results(searcher, query, top_n)
    results.collector = _Count(searcher, query, scored)  # len(results) counts when asked
    if terms:
        _set_terms(results, {docnum: matched[docnum] for _, docnum in top_n})
    return results


class _Count:
    """Counts every match of a query with phrases, if len(results) asks: their positions are
    checked by Whoosh's matcher, memory by memory."""

    def __init__(self, searcher: Searcher, query: Query, scored: _Scored) -> None:
        self.searcher, self.query, self.scored = searcher, query, scored

    def count(self) -> int:
        docnums = sorted(self.scored.docnums.tolist())
        return len(_score_exactly(self.searcher, self.query, docnums, False))


def _set_terms(results: Results, matched: dict[int, list[Any]]) -> None:
    """The matched terms of each hit, as Whoosh's TermsCollector records them."""
    results.docterms = matched
    termdocs: dict[Any, list[int]] = {}
    for docnum in sorted(matched):
        for term in matched[docnum]:
            termdocs.setdefault(term, []).append(docnum)
    results.termdocs = termdocs


def _score_exactly(
    searcher: Searcher, query: Query, docnums: list[int], terms: bool
) -> list[tuple[int, float, list[Any]]]:
    """Whoosh's score of each document that matches (docnums ascending), segment by segment."""
    context = searcher.context(needs_current=terms)
    scored = []
    leaves = searcher.leaf_searchers()
    for position, (sub, offset) in enumerate(leaves):
        end = leaves[position + 1][1] if position + 1 < len(leaves) else None
        local = [d - offset for d in docnums if d >= offset and (end is None or d < end)]
        if not local:
            continue
        matcher = query.matcher(sub, context)
        term_matchers = list(matcher.term_matchers()) if terms else []
        for docnum in local:
            if not matcher.is_active():
                break
            matcher.skip_to(docnum)
            if not matcher.is_active() or matcher.id() != docnum:
                continue
            words = list(
                dict.fromkeys(
                    tm.term() for tm in term_matchers if tm.is_active() and tm.id() == docnum
                )
            )
            scored.append((docnum + offset, matcher.score(), words))
    return scored


# Postings and lengths, kept per index segment (a segment never changes once written; deletions
# are read anew each search).

_cache: OrderedDict[tuple[str, str, bytes], tuple[Any, Any]] = OrderedDict()
_cache_bytes = 0
_lock = threading.Lock()


def _segment_key(leaf: Any) -> str:
    """A segment's name: random, given when it is written, so a copy of a store shares it only
    with segments of the same content."""
    segment = leaf.segment()
    if segment is None:
        raise _Unsupported
    return str(segment.segment_id())


def _postings(leaf: Any, fieldname: str, btext: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A term's document numbers (ascending) and weights in one segment, deleted ones too."""
    global _cache_bytes
    import numpy as np

    key = (_segment_key(leaf), fieldname, btext)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if (fieldname, btext) in leaf:
        ids, weights = _read_postings(leaf, fieldname, btext)
    else:
        ids, weights = [], []
    found = (np.array(ids, dtype=np.int32), np.array(weights, dtype=np.float64))
    with _lock:
        _cache[key] = found
        _cache_bytes += 12 * len(ids)
        while _cache_bytes > CACHE_BYTES and len(_cache) > 1:
            _, (old, _weights) = _cache.popitem(last=False)
            _cache_bytes -= 12 * len(old)
    return found


def _read_postings(leaf: Any, fieldname: str, btext: bytes) -> tuple[list[int], list[float]]:
    from itertools import accumulate

    from whoosh.codec import whoosh3

    matcher = leaf._terms.matcher(fieldname, btext, leaf.schema[fieldname].format)
    ids: list[int] = []
    weights: list[float] = []
    if type(matcher) is not whoosh3.W3LeafMatcher:
        while matcher.is_active():  # another codec: the matcher's public interface
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
        return ids, weights
    # Whole blocks at a time: the block's id deltas and weights, as W3LeafMatcher reads them.
    while True:
        matcher._read_data()
        matcher._read_weights()
        block_ids = matcher._data[0]
        ids.extend(block_ids if matcher._byteids else accumulate(block_ids))
        weights.extend(matcher._weights)
        if matcher._lastblock:
            return ids, weights
        matcher._goto(matcher._nextoffset)


def _lengths(leaf: Any, fieldname: str) -> np.ndarray:
    """The field's length in every document of a segment, as Whoosh scores it."""
    global _cache_bytes
    import numpy as np
    from whoosh.codec import whoosh3
    from whoosh.util.numeric import byte_to_length

    key = (_segment_key(leaf), fieldname, b"\0lengths")
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key][0]  # type: ignore[no-any-return]
    count = leaf.doc_count_all()
    table = np.array([byte_to_length(byte) for byte in range(256)], dtype=np.float64)
    column = leaf._perdoc._cached_reader(whoosh3._lenfield(fieldname), whoosh3.LENGTHS_COLUMN)
    codes = np.zeros(count, dtype=np.uint8)
    if column is not None:
        stored = column._dbfile.get(column._basepos, min(column._count, count))
        codes[: len(stored)] = np.frombuffer(stored, dtype=np.uint8)
    lengths = table[codes]
    with _lock:
        _cache[key] = (lengths, None)
        _cache_bytes += 8 * count
    return lengths
