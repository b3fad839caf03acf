"""The top hits of large queries, scored in bulk with numpy instead of one match at a time.

Whoosh walks a query's matches one memory at a time in Python: a word found in 40,000 memories
costs a few hundred milliseconds. Here each word's postings are read whole into arrays (kept in
memory per index segment, which never changes once written), scored with Whoosh's BM25F formula
in numpy and combined as the query's And and Or say. Without phrases those are the scores. With
phrases they are bounds (a phrase counts as all of its words, wherever they stand): the
memories are then taken best bound first, their phrases checked against the words' positions,
until no bound left can beat the last hit.

The hits are those Whoosh finds when it scores every match in full (its default walk can drop
a word's score from a memory: see docs/search.md); scores agree to the last bits of a sum.
Queries of other shapes (prefixes, ranges, negations), queries too small to gain, and installs
without numpy are left to Whoosh.
"""

from __future__ import annotations

import bisect
import contextlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from math import log
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from whoosh.query import Query
    from whoosh.searching import Results, Searcher

# Below this many postings in all (summed over the query's words and fields) Whoosh's own walk
# (10 to 30 microseconds a posting) is quick enough that importing numpy (0.1 to 0.3 s, once per
# process) would cost more than it saves. Once numpy is loaded (a long-lived process, the search
# service) bulk scoring is the quicker from a few thousand postings.
BULK_MIN_POSTINGS = 8_000
BULK_MIN_POSTINGS_LOADED = 3_000
# Postings kept in memory across searches, in bytes (12 bytes a posting: a document number and
# a weight; a word found in 40,000 memories takes half a megabyte). Least recently used go first.
CACHE_BYTES = 32 * 1024 * 1024
# Sums taken in another order may differ in the last bits: a bound is taken as beatable within
# this share.
SLACK = 1e-9

Term = tuple[str, bytes]  # (field, term) as Whoosh names a term


@dataclass
class _Scored:
    """Matches of part of a query: document numbers (ascending) and their scores (bounds, for
    a part with a phrase)."""

    docnums: np.ndarray
    bounds: np.ndarray

    def score_of(self, docnum: int) -> float | None:
        import numpy as np

        at = int(np.searchsorted(self.docnums, docnum))
        if at < len(self.docnums) and self.docnums[at] == docnum:
            return float(self.bounds[at])
        return None


@dataclass
class _Postings:
    """A term's postings in one segment, read whole, and where each block of them starts."""

    ids: np.ndarray  # document numbers in the segment, ascending
    weights: np.ndarray
    block_firsts: np.ndarray  # index in ids of each block's first posting
    block_offsets: list[int]  # each block's place in the postings file
    # Each posting's encoded positions, for a field that keeps them (else empty): read with
    # the rest of the block anyway, and kept so that checking a phrase reads no block again.
    values: list[bytes]
    values_bytes: int = 0

    def size(self) -> int:
        return 12 * len(self.ids) + 16 * len(self.block_offsets) + self.values_bytes


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
    schema = searcher.schema
    try:
        keys = [(name, schema[name].to_bytes(text)) for name, text in words if name in schema]
    except ValueError:
        return False
    least = BULK_MIN_POSTINGS_LOADED if "numpy" in sys.modules else BULK_MIN_POSTINGS
    if sum(_doc_frequency(searcher, *key) for key in keys) < least:
        return False
    try:
        import numpy  # noqa: F401  (an optional dependency: without it, search as usual)
    except ImportError:
        return False
    return True


def preload() -> None:
    """Import numpy now if it is installed (a process about to serve many searches)."""
    with contextlib.suppress(ImportError):
        import numpy  # noqa: F401


def top(searcher: Searcher, query: Query, limit: int, allowed: set[int] | None) -> Results | None:
    """The results of a query worth_trying() accepted, as Whoosh's `search(terms=True)` gives
    them: at most limit hits, best first, with the query's terms each hit has
    (`Results.docterms`); None if the index has a part not modelled here.

    allowed: only these document numbers (a filter), or None for all.
    """
    from whoosh.searching import Results

    walk = _Walk(searcher)
    try:
        scored = _without_deleted(searcher, walk.bounds(query), allowed)
        if walk.phrases:
            top_n = _checked_top(walk, query, scored, limit)
        else:
            best = _best_first(scored, limit)[:limit]
            top_n = [
                (float(score), int(docnum))
                for score, docnum in zip(scored.bounds[best], scored.docnums[best], strict=True)
            ]
    except _Unsupported:
        return None
    results = Results(searcher, query, top_n)
    # len(results) counts every match, as Whoosh's does; with phrases only when asked.
    if walk.phrases:
        results.collector = _Count(walk, query, scored)  # type: ignore[assignment]
    else:
        results._total = len(scored.docnums)  # type: ignore[assignment]
    # Recorded even for a caller that does not read them: highlighting then takes the terms
    # from the hits instead of expanding the query again for every hit (a millisecond each).
    _set_terms(results, walk, [docnum for _, docnum in top_n])
    return results


def _leaf_terms(query: Any) -> Any:
    """The (field, term) pairs a query reads; raises _Unsupported for a shape not modelled."""
    from whoosh import query as q

    kind = type(query)
    if kind is q.Term:
        yield query.fieldname, query.text
    elif isinstance(query, q.Phrase) and kind.matcher is q.Phrase.matcher:
        if len(query.words) < 2:
            raise _Unsupported  # Whoosh scores a phrase of one word its own way
        for word in query.words:
            yield query.fieldname, word
    elif kind in (q.And, q.Or):
        if kind is q.Or and (query.minmatch or query.scale):
            raise _Unsupported
        for child in query.subqueries:
            yield from _leaf_terms(child)
    else:
        raise _Unsupported


class _Walk:
    """Scores a query's parts in bulk, keeping each term's matches for the exact scores of
    phrases and for the terms each hit has."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.terms: dict[Term, _Scored] = {}
        self.phrases = False  # whether some phrase needs its positions checked
        self._offsets = [offset for _, offset in searcher.leaf_searchers()]
        self._segments = [sub.reader() for sub, _ in searcher.leaf_searchers()]

    def bounds(self, query: Any) -> _Scored:
        """Every match of query, scored; a phrase is scored as if its words stood together."""
        from whoosh import query as q

        kind = type(query)
        if kind is q.Term:
            return _boosted(self.term(query.fieldname, query.text), query.boost)
        if isinstance(query, q.Phrase):
            self.phrases |= self._positional(query.fieldname)
            parts = [self.term(query.fieldname, word) for word in query.words]
            return _boosted(_all_of(parts), query.boost)
        children = [self.bounds(child) for child in query.subqueries]
        if len(children) == 1:
            return children[0]  # Whoosh ignores the boost of a group of one
        combined = _all_of(children) if kind is q.And else _any_of(children)
        return _boosted(combined, query.boost)

    def exact(self, query: Any, docnum: int) -> float | None:
        """One memory's score for query, its phrases checked; None if it does not match."""
        from whoosh import query as q

        kind = type(query)
        if kind is q.Term:
            found = self.terms.get(self._key(query.fieldname, query.text))
            score = found.score_of(docnum) if found is not None else None
            return None if score is None else score * query.boost
        if isinstance(query, q.Phrase):
            keys = [self._key(query.fieldname, word) for word in query.words]
            scores = [
                self.terms[key].score_of(docnum) if key in self.terms else None for key in keys
            ]
            present = [score for score in scores if score is not None]
            if len(present) < len(scores):
                return None
            if self._positional(query.fieldname) and not self._in_order(keys, docnum, query.slop):
                return None
            return sum(present) * query.boost
        children = [self.exact(child, docnum) for child in query.subqueries]
        if len(children) == 1:
            return children[0]
        found_scores = [score for score in children if score is not None]
        if not found_scores or (kind is q.And and len(found_scores) < len(children)):
            return None
        return sum(found_scores) * query.boost

    def term(self, fieldname: str, text: str | bytes) -> _Scored:
        """BM25F scores of one term in one field, for every memory that has it: Whoosh's
        bm25(), over arrays."""
        import numpy as np

        searcher = self.searcher
        if fieldname not in searcher.schema:
            return _nothing()
        if not searcher.schema[fieldname].scorable:
            raise _Unsupported
        key = self._key(fieldname, text)
        if key in self.terms:
            return self.terms[key]
        frequency = _doc_frequency(searcher, *key)
        if not frequency:
            return _nothing()  # as Whoosh's Term.matcher
        # What BM25FScorer takes from the searcher (Weighting.idf's formula), without reading
        # the term's statistics.
        weighting = searcher.weighting
        idf = log(searcher.doc_count_all() / (frequency + 1)) + 1
        avgfl = searcher.avg_field_length(fieldname) or 1
        b = weighting._field_B.get(fieldname, weighting.B)
        k1 = weighting.K1
        docnums, scores = [], []
        for segment, offset in zip(self._segments, self._offsets, strict=True):
            postings = _postings(segment, *key)
            if not len(postings.ids):
                continue
            weights = postings.weights
            lengths = _lengths(segment, fieldname)[postings.ids]
            normalised = weights + k1 * ((1 - b) + b * lengths / avgfl)
            scores.append(idf * ((weights * (k1 + 1)) / normalised))
            docnums.append(postings.ids.astype(np.int64) + offset)
        found = _Scored(np.concatenate(docnums), np.concatenate(scores)) if docnums else _nothing()
        self.terms[key] = found
        return found

    def _key(self, fieldname: str, text: str | bytes) -> Term:
        try:
            return fieldname, self.searcher.schema[fieldname].to_bytes(text)
        except ValueError:
            return fieldname, b""  # no such term: Whoosh matches nothing

    def _positional(self, fieldname: str) -> bool:
        """Whether the field keeps positions (else a phrase matches all of its words)."""
        field = self.searcher.schema[fieldname]
        return bool(field.format and field.format.supports("positions"))

    def _in_order(self, keys: list[Term], docnum: int, slop: int) -> bool:
        """Whether the words stand in order in the memory, each within slop places after the
        one before (Whoosh's SpanNear2 with ordered=True and mindist=1)."""
        ends = set(self._positions(keys[0], docnum))
        for key in keys[1:]:
            ends = {
                place
                for place in self._positions(key, docnum)
                if any(end < place <= end + slop for end in ends)
            }
            if not ends:
                return False
        return True

    def _positions(self, key: Term, docnum: int) -> list[int]:
        """Where a term stands in one memory, from its kept postings."""
        import numpy as np

        segment_number = bisect.bisect_right(self._offsets, docnum) - 1
        segment = self._segments[segment_number]
        local = docnum - self._offsets[segment_number]
        postings = _postings(segment, *key)
        at = int(np.searchsorted(postings.ids, local))
        return segment.schema[key[0]].format.decode_positions(postings.values[at])


def _nothing() -> _Scored:
    import numpy as np

    return _Scored(np.empty(0, np.int64), np.empty(0))


def _boosted(scored: _Scored, boost: float) -> _Scored:
    if boost == 1.0:
        return scored
    return _Scored(scored.docnums, scored.bounds * boost)


def _all_of(parts: list[_Scored]) -> _Scored:
    """Matches of every part, their scores summed in the parts' order."""
    return _combined(parts, need=len(parts))


def _any_of(parts: list[_Scored]) -> _Scored:
    """Matches of any part, their scores summed in the parts' order."""
    return _combined(parts, need=1)


def _combined(parts: list[_Scored], need: int) -> _Scored:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    if need > 1 and any(not len(part.docnums) for part in parts):
        return _nothing()
    docnums = np.concatenate([part.docnums for part in parts])
    if not len(docnums):
        return _nothing()
    # Counted over every document number at once (a few hundred microseconds at 100,000
    # memories): quicker than merging sorted arrays.
    size = int(docnums.max()) + 1
    weights = np.concatenate([part.bounds for part in parts])
    totals = np.bincount(docnums, weights=weights, minlength=size)
    found = np.flatnonzero(np.bincount(docnums, minlength=size) >= need)
    return _Scored(found, totals[found])


def _without_deleted(searcher: Searcher, scored: _Scored, allowed: set[int] | None) -> _Scored:
    import numpy as np

    removed: list[int] = []
    for sub, offset in searcher.leaf_searchers():
        segment = sub.reader()
        if segment.has_deletions():
            removed.extend(offset + docnum for docnum in segment.deleted_docs_set)
    keep = np.ones(len(scored.docnums), dtype=bool)
    if removed:
        keep &= ~np.isin(scored.docnums, np.array(removed, dtype=np.int64))
    if allowed is not None:
        keep &= np.isin(scored.docnums, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
    if keep.all():
        return scored
    return _Scored(scored.docnums[keep], scored.bounds[keep])


def _best_first(scored: _Scored, count: int) -> np.ndarray:
    """Positions in scored of at least the best count (all of those tied with the last),
    best score first and, among equal scores, the lower document number first (Whoosh's
    order). Only those are sorted: a partial sort is twenty times quicker than a whole one."""
    import numpy as np

    if count < len(scored.bounds):
        threshold = np.partition(scored.bounds, len(scored.bounds) - count)[-count]
        chosen = np.flatnonzero(scored.bounds >= threshold)
    else:
        chosen = np.arange(len(scored.bounds))
    return chosen[np.lexsort((scored.docnums[chosen], -scored.bounds[chosen]))]


def _checked_top(walk: _Walk, query: Any, scored: _Scored, limit: int) -> list[tuple[float, int]]:
    """The best limit (score, docnum) pairs: memories taken best bound first, each scored with
    its phrases checked, until the last hit beats every bound left."""
    found: list[tuple[float, int]] = []  # (-score, docnum), best first
    order = _best_first(scored, limit * 4 + 64)
    done = 0
    while done < len(order):
        bound, docnum = float(scored.bounds[order[done]]), int(scored.docnums[order[done]])
        if len(found) >= limit and -found[limit - 1][0] > bound * (1 + SLACK) + SLACK:
            break
        score = walk.exact(query, docnum)
        if score is not None:
            bisect.insort(found, (-score, docnum))
        done += 1
        if done == len(order) < len(scored.bounds):
            order = _best_first(scored, len(scored.bounds))  # rare: most bounds were too high
    return [(-score, docnum) for score, docnum in found[:limit]]


class _Count:
    """Counts every match of a query with phrases when len(results) asks."""

    def __init__(self, walk: _Walk, query: Any, scored: _Scored) -> None:
        self.walk, self.query, self.scored = walk, query, scored

    def count(self) -> int:
        docnums = self.scored.docnums.tolist()
        return sum(self.walk.exact(self.query, docnum) is not None for docnum in docnums)


def _set_terms(results: Results, walk: _Walk, docnums: list[int]) -> None:
    """The query's terms each hit has, as Whoosh's TermsCollector records them. (Whoosh's own
    record of an And's or a phrase's terms depends on where its walk stopped; a term a memory
    has is what the question rules count, query.Plan.)"""
    import numpy as np

    wanted = np.array(sorted(docnums), dtype=np.int64)
    matched: dict[int, list[Term]] = {docnum: [] for docnum in docnums}
    termdocs: dict[Term, list[int]] = {}
    for term, found in walk.terms.items():
        if not len(found.docnums):
            continue
        # Looked up in the term's sorted document numbers (isin would sort them all again).
        at = np.minimum(np.searchsorted(found.docnums, wanted), len(found.docnums) - 1)
        having = wanted[found.docnums[at] == wanted].tolist()
        for docnum in having:
            matched[docnum].append(term)
        if having:
            termdocs[term] = having
    results.docterms = matched
    results.termdocs = termdocs


# Postings and lengths, kept per index segment (a segment never changes once written; deletions
# are read anew each search).

_cache: OrderedDict[tuple[str, str, bytes], Any] = OrderedDict()
_cache_bytes = 0
_frequencies: dict[tuple[str, str, bytes], int] = {}
_lock = threading.Lock()


def _segment_key(segment: Any) -> str:
    """A segment's name: random, given when it is written, so a copy of a store shares it only
    with segments of the same content."""
    found = segment.segment()
    if found is None:
        raise _Unsupported
    return str(found.segment_id())


def _kept(key: tuple[str, str, bytes]) -> Any:
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def _keep(key: tuple[str, str, bytes], value: Any, size: int) -> None:
    global _cache_bytes
    with _lock:
        if key not in _cache:
            _cache_bytes += size
        _cache[key] = value
        while _cache_bytes > CACHE_BYTES and len(_cache) > 1:
            _, old = _cache.popitem(last=False)
            _cache_bytes -= old.size() if isinstance(old, _Postings) else 8 * len(old)


def _postings(segment: Any, fieldname: str, btext: bytes) -> _Postings:
    """A term's postings in one segment, deleted memories' too."""
    import numpy as np

    key = (_segment_key(segment), fieldname, btext)
    found = _kept(key)
    if found is None:
        if (fieldname, btext) in segment:
            found = _read_postings(segment, fieldname, btext)
        else:
            empty = np.empty(0, np.int64)
            found = _Postings(empty.astype(np.int32), empty.astype(np.float64), empty, [], [])
        _keep(key, found, found.size())
    return found


def _doc_frequency(searcher: Searcher, fieldname: str, btext: bytes) -> int:
    """How many memories have the term (deleted ones too, as Whoosh counts), summed over the
    segments, each segment's count kept."""
    total = 0
    for sub, _ in searcher.leaf_searchers():
        segment = sub.reader()
        if segment.segment() is None:  # an empty index
            total += segment.doc_frequency(fieldname, btext)
            continue
        key = (_segment_key(segment), fieldname, btext)
        with _lock:
            count = _frequencies.get(key)
        if count is None:
            count = segment.doc_frequency(fieldname, btext)
            with _lock:
                if len(_frequencies) > 100_000:
                    _frequencies.clear()
                _frequencies[key] = count
        total += count
    return total


def _raw_matcher(segment: Any, fieldname: str, btext: bytes) -> Any:
    """Whoosh's matcher of a term's postings in a segment, deleted memories not filtered out;
    _Unsupported for a codec other than Whoosh 3's, whose blocks this module reads."""
    from whoosh.codec import whoosh3

    matcher = segment._terms.matcher(fieldname, btext, segment.schema[fieldname].format)
    if type(matcher) is not whoosh3.W3LeafMatcher:
        raise _Unsupported
    return matcher


def _read_postings(segment: Any, fieldname: str, btext: bytes) -> _Postings:
    """Every block of a term's postings, as W3LeafMatcher reads them one posting at a time."""
    from itertools import accumulate

    import numpy as np

    matcher = _raw_matcher(segment, fieldname, btext)
    format = segment.schema[fieldname].format
    positional = bool(format and format.supports("positions"))
    ids: list[int] = []
    weights: list[float] = []
    values: list[bytes] = []
    firsts: list[int] = []
    offsets: list[int] = []
    place = matcher._baseoffset
    while True:
        matcher._goto(place)
        firsts.append(len(ids))
        offsets.append(place)
        matcher._read_data()
        matcher._read_weights()
        block_ids = matcher._data[0]
        ids.extend(block_ids if matcher._byteids else accumulate(block_ids))
        weights.extend(matcher._weights)
        if positional:
            matcher._read_values()
            values.extend(matcher._values)
        if matcher._lastblock:
            break
        place = matcher._nextoffset
    return _Postings(
        np.array(ids, dtype=np.int32),
        np.array(weights, dtype=np.float64),
        np.array(firsts, dtype=np.int64),
        offsets,
        values,
        # a bytes object's own size, its length, and the list's pointer to it
        sum(map(len, values)) + 41 * len(values),
    )


def _lengths(segment: Any, fieldname: str) -> np.ndarray:
    """The field's length in every memory of a segment, as Whoosh scores it (one byte each)."""
    import numpy as np
    from whoosh.codec import whoosh3
    from whoosh.util.numeric import byte_to_length

    key = (_segment_key(segment), fieldname, b"\0lengths")
    found = _kept(key)
    if found is not None:
        return found
    count = segment.doc_count_all()
    table = np.array([byte_to_length(byte) for byte in range(256)], dtype=np.float64)
    column = segment._perdoc._cached_reader(whoosh3._lenfield(fieldname), whoosh3.LENGTHS_COLUMN)
    codes = np.zeros(count, dtype=np.uint8)
    if column is not None:
        stored = column._dbfile.get(column._basepos, min(column._count, count))
        codes[: len(stored)] = np.frombuffer(stored, dtype=np.uint8)
    lengths = table[codes]
    _keep(key, lengths, 8 * count)
    return lengths
