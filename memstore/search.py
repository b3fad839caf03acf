"""Queries over the search index: ranked search, listings, id lookups and relations.

`index.py` keeps the Whoosh index in step with the files; this module only reads an open index
(`SearchIndex.reading()` gives one). The query language is parsed here; how a question is turned
into a query and ranked is `query.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memstore.errors import QuerySyntaxError
from memstore.results import Filters, Listed, SearchHit
from memstore.text import lead, one_line

if TYPE_CHECKING:
    from whoosh.fields import Schema
    from whoosh.index import Index as WhooshIndex
    from whoosh.query import Query

    from memstore.query import Plan

# `mem find --related`: a memory is similar when it scores at least this share of what the
# memory itself scores on its own key terms. One shared common word ("the", "web") gives a few
# hundredths; a memory on the same subject, sharing several key terms, a third or more.
RELATED_MIN_SHARE = 0.2
# Plain words are looked for in these fields; each more field costs a posting list per word.
SEARCH_FIELDS = ("title", "tags", "body")


def search(
    ix: WhooshIndex,
    text: str,
    filters: Filters,
    limit: int,
    read_body: Callable[[str], str | None],
    marks: tuple[str, str],
    now: datetime,
) -> list[SearchHit]:
    """Ranked hits for a query, with highlighted snippets."""
    from memstore import query as questions
    from memstore import readercache, snippets

    with readercache.searcher(ix, weighting=questions.weighting()) as searcher:
        plan = plan_query(ix.schema, text, now, searcher.reader())  # type: ignore[attr-defined]
        narrowed = _filter_query(filters)
        if plan.question:
            plan.query = questions.expand(plan, searcher, read_body, narrowed)
            _add_meaning(plan, ix, searcher, text)
        results = _top(searcher, plan.query, plan.pool(limit), narrowed, plan.min_match > 1)
        nearest = _nearest_hits(plan, searcher, results, narrowed) if plan.meaning else None
        words: dict[int, frozenset[str]] = {}  # the words to mark, per results object
        hits = []
        for hit, score in plan.rank(results, limit, nearest):
            body = read_body(hit["path"]) or ""
            snippet = ""
            if body:
                if id(hit.results) not in words:
                    words[id(hit.results)] = snippets.body_words(hit.results)
                snippet = snippets.highlight(body, words[id(hit.results)], marks)
            hits.append(
                SearchHit(
                    id=hit["id"],
                    title=hit["title"],
                    path=hit["path"],
                    type=hit["type"],
                    tags=_split_tags(hit.get("tags", "")),
                    created=hit.get("created_text", ""),
                    score=round(float(score), 4),
                    snippet=one_line(snippet) or lead(body),
                    expires=hit.get("expires", ""),
                )
            )
        return hits


def find(
    ix: WhooshIndex,
    text: str,
    filters: Filters,
    limit: int,
    read_body: Callable[[str], str | None],
    reveal: Callable[[list[SearchHit]], list[SearchHit]],
    marks: tuple[str, str],
    now: datetime,
) -> list[SearchHit]:
    """Ranked hits as `mem find` gives them: expired ones below current ones, and superseded
    ones marked and ranked below their successors. reveal fills in encrypted hits' fields."""
    from memstore import freshness
    from memstore.links import order_after_successors

    hits = search(ix, text, filters, limit, read_body, marks, now)
    hits = freshness.expired_last(freshness.mark(reveal(hits), now))
    successors_of = successors(ix, [hit.id for hit in hits])
    for hit in hits:
        hit.superseded_by = successors_of.get(hit.id, [])
    return order_after_successors(hits, successors_of)


def newest(
    ix: WhooshIndex,
    filters: Filters,
    limit: int,
    reveal: Callable[[list[Listed]], list[Listed]],
    now: datetime,
    expired: bool = False,
) -> list[Listed]:
    """Memories newest first as `mem list` gives them, each with its age and whether it has
    expired; with expired, only those past their `expires` date."""
    from memstore import freshness

    if not expired:
        return freshness.mark(reveal(listing(ix, filters, limit)), now)
    dated = listing(ix, filters, 0, having="expires")
    found = [item for item in freshness.mark(reveal(dated), now) if item.expired]
    return found[:limit] if limit else found


def _top(
    searcher: Any, query: Query, limit: int | None, narrowed: Query | None, terms: bool
) -> Any:
    """The best limit hits of a query (all for None), every match scored in full: in bulk when
    that is quicker (bulkscore.py), else by Whoosh's walk."""
    from whoosh import collectors

    from memstore import bulkscore

    if limit and bulkscore.worth_trying(searcher, query, limit):
        allowed = None if narrowed is None else set(searcher.docs_for_query(narrowed))
        found = bulkscore.top(searcher, query, limit, allowed)
        if found is not None:
            return found
    if not limit:
        return searcher.search(query, limit=None, filter=narrowed, terms=terms)
    # Whoosh's default walk swaps its matchers for cheaper ones as the top fills up
    # (`replace`), and the swap can leave a word's score out of a memory that has several of
    # the query's words: "deploy staging" then ranked first a memory that has only one of them
    # well. Skipping whole blocks that cannot make the top (block quality) stays: it is exact.
    # A query of one term has nothing to leave out, and its swap is what lets it skip.
    several = len(list(query.leaves())) > 1
    collector: Any = collectors.TopCollector(limit=limit, **({"replace": 0} if several else {}))
    if narrowed is not None:
        collector = collectors.FilterCollector(collector, allow=narrowed)
    if terms:
        collector = collectors.TermsCollector(collector)
    searcher.search_with_collector(query, collector)
    return collector.results()


def _add_meaning(plan: Plan, ix: WhooshIndex, searcher: Any, text: str) -> None:
    """Make the memories nearest to a question in meaning candidates (the semantic extra)."""
    from memstore import query as questions
    from memstore import semantic

    folder = getattr(ix.storage, "folder", None)  # type: ignore[attr-defined]
    if not questions.MEANING_CANDIDATES or folder is None or not semantic.kept(folder):
        return
    if not semantic.available():
        return

    for memory_id, blob, close in semantic.nearest(folder, text, questions.MEANING_CANDIDATES):
        for docnum in searcher.document_numbers(id=memory_id):
            # A row left behind by an edit has the blob of a file the index no longer holds.
            if searcher.stored_fields(docnum).get("blob") == blob:
                plan.meaning[docnum] = close
    nearest = sorted(plan.meaning, key=lambda docnum: -plan.meaning[docnum])
    plan.alone = {
        docnum
        for docnum in nearest[: questions.MEANING_ALONE]
        if plan.meaning[docnum] >= questions.MEANING_FLOOR
    }


def _nearest_hits(plan: Plan, searcher: Any, results: Any, narrowed: Query | None) -> Any:
    """The nearest memories in meaning that the text search did not bring, as Whoosh hits."""
    from whoosh import query as q

    pooled = {hit.docnum for hit in results}
    ids = {searcher.stored_fields(d)["id"] for d in plan.meaning if d not in pooled}
    if not ids:
        return None
    near = q.Or([q.ConstantScoreQuery(q.Term("id", memory_id), 0.0) for memory_id in sorted(ids)])
    return searcher.search(near, limit=None, filter=narrowed, terms=True)


def listing(
    ix: WhooshIndex, filters: Filters, limit: int, having: str | None = None
) -> list[Listed]:
    """Memories newest first; with having, only those with a value in that field."""
    from whoosh import query as q

    with ix.searcher() as searcher:
        results = searcher.search(
            q.Every(having) if having else q.Every(),
            limit=limit or None,
            filter=_filter_query(filters),
            sortedby=["created", "id"],  # ids sort by time too: they break ties
            reverse=True,
        )
        return [_listed(hit) for hit in results]


def by_id_prefix(ix: WhooshIndex, prefix: str, limit: int = 10) -> list[Listed]:
    """Memories whose id starts with prefix (only those with exactly that id, if any)."""
    return id_matches(ix, prefix, limit)[0]


def id_matches(ix: WhooshIndex, prefix: str, limit: int = 10) -> tuple[list[Listed], int]:
    """Up to limit memories whose id is prefix, else starts with it; and how many there are.

    Two files can hold one id (a memory file copied by hand): an exact id gives them all.
    """
    from whoosh import query as q

    with ix.searcher() as searcher:
        exact = [_listed(doc) for doc in searcher.documents(id=prefix)]
        if exact:
            return sorted(exact, key=lambda item: item.path), len(exact)
        results = searcher.search(q.Prefix("id", prefix), limit=limit, sortedby="id")
        return [_listed(hit) for hit in results], len(results)


# Relations: links, successors and duplicates (links.py, duplicates.py)


def having(ix: WhooshIndex, fieldname: str, values: list[str]) -> list[Listed]:
    """Memories with any of the values in a keyword field (links, names, digest), by id.

    Read from the postings: no query to parse or score (and no import of whoosh.query,
    which costs `mem add` 30 ms).
    """
    if not values:
        return []
    with ix.reader() as reader:  # not a searcher: whoosh.searching costs 25 ms to import
        return having_in(reader, fieldname, values)


def having_in(reader: Any, fieldname: str, values: list[str]) -> list[Listed]:
    """`having` with a reader the caller has open."""
    docnums: set[int] = set()
    for value in dict.fromkeys(value.lower() for value in values):
        if reader.doc_frequency(fieldname, value):
            docnums.update(reader.postings(fieldname, value).all_ids())
    found = [
        _listed(reader.stored_fields(docnum)) for docnum in docnums if not reader.is_deleted(docnum)
    ]
    return sorted(found, key=lambda item: (item.id, item.path))


def successors(ix: WhooshIndex, memory_ids: list[str]) -> dict[str, list[str]]:
    """For each id, the ids of the memories whose `supersedes` names it.

    Read from the postings, as having() does: the terms, not the stored value (an encrypted
    memory stores none), and no query to score.
    """
    from memstore import readercache

    wanted = {memory_id.lower(): memory_id for memory_id in memory_ids}
    found: dict[str, list[str]] = {}
    with readercache.searcher(ix) as searcher:
        for sub, _ in searcher.leaf_searchers():
            segment = sub.reader()
            for term in sorted(wanted.keys() & _superseded_in(segment)):
                for docnum in sorted(segment.postings("supersedes", term).all_ids()):
                    if not segment.is_deleted(docnum):
                        successor = segment.stored_fields(docnum)["id"]
                        found.setdefault(wanted[term], []).append(successor)
    return found


# Segment name -> the ids its memories supersede (a segment never changes once written).
_superseded: dict[str, frozenset[str]] = {}


def _superseded_in(segment: Any) -> frozenset[str]:
    """The ids the memories of one index segment supersede: few, and read once per segment."""
    name = segment.segment().segment_id() if segment.segment() is not None else None
    if name is not None and name in _superseded:
        return _superseded[name]
    ids = frozenset(term.decode() for term in segment.lexicon("supersedes"))
    if name is not None:
        if len(_superseded) > 1000:
            _superseded.clear()
        _superseded[name] = ids
    return ids


def similar(
    ix: WhooshIndex,
    text: str,
    limit: int,
    exclude: frozenset[str] = frozenset(),
    rarest: int = 0,
    min_share: float = 0.0,
    budget: int = 0,
) -> list[tuple[Listed, float]]:
    """The memories that best match the key terms of a text ("more like this"), scored.

    With min_share, only those scoring at least that share of the best score, which is the
    text's own memory's when it is in the index (it has every key term).

    With rarest, the terms are the text's rarest words in the store instead (at most that
    many, and with budget only while the memories they are in add up to at most budget; see
    `rare_words`): their short posting lists keep the search cheap where common words would
    score thousands of memories, and a near copy of the text shares them (duplicate checks).
    """
    if rarest:
        with ix.reader() as reader:
            words = rare_words(ix.schema, reader, text, rarest, budget)  # type: ignore[attr-defined]
            return sharing_words(reader, words, limit, exclude)
    from whoosh import query as q

    with ix.searcher() as searcher:
        terms = searcher.key_terms_from_text("body", text, numterms=12)
        if not terms:
            return []
        wanted = q.Or([q.Term("body", word, boost=weight) for word, weight in terms])
        results = searcher.search(wanted, limit=limit + len(exclude))
        found = [(_listed(hit), round(float(hit.score or 0.0), 4)) for hit in results]
    least = min_share * max((score for _, score in found), default=0.0)
    kept = [(item, score) for item, score in found if item.id not in exclude]
    return [(item, score) for item, score in kept if score >= least and score > 0][:limit]


def rare_words(schema: Any, reader: Any, text: str, count: int, budget: int = 0) -> list[str]:
    """The text's words that the index has, rarest first: at most count of them, and with a
    budget, only while the memories they are found in add up to at most budget.

    The budget bounds the postings a caller reads whatever the store's size: a word found in
    more memories than fit is left out, and so is every commoner one.
    """
    analyzed = schema["body"].process_text(text, mode="index")
    counted = sorted((reader.doc_frequency("body", word), word) for word in set(analyzed))
    chosen: list[str] = []
    spent = 0
    for frequency, word in counted:
        if not frequency:
            continue
        if len(chosen) == count or (budget and spent + frequency > budget):
            break
        chosen.append(word)
        spent += frequency
    return chosen


def sharing_words(
    reader: Any, words: list[str], limit: int, exclude: frozenset[str] = frozenset()
) -> list[tuple[Listed, float]]:
    """The memories that have most of these words; the score is how many.

    Counting postings instead of scoring keeps this to a few milliseconds for short posting
    lists (see `rare_words`).
    """
    from collections import Counter

    shared: Counter[int] = Counter()
    for word in words:
        shared.update(reader.postings("body", word).all_ids())
    found: list[tuple[Listed, float]] = []
    for docnum, count in shared.most_common():
        if len(found) == limit:
            break
        if reader.is_deleted(docnum):
            continue
        item = _listed(reader.stored_fields(docnum))
        if item.id not in exclude:
            found.append((item, float(count)))
    return found


def _listed(hit: Any) -> Listed:
    return Listed(
        id=hit.get("id", ""),
        title=hit.get("title", ""),
        path=hit["path"],
        type=hit.get("type", ""),
        tags=_split_tags(hit.get("tags", "")),
        created=hit.get("created_text", ""),
        expires=hit.get("expires", ""),
    )


def _split_tags(text: str) -> list[str]:
    return [tag for tag in text.split(",") if tag]


def _filter_query(filters: Filters) -> Query | None:
    from whoosh import query as q

    parts: list[Query] = [q.Term("tags", tag.lower()) for tag in filters.tags]
    if filters.type:
        parts.append(q.Term("type", filters.type.lower()))
    if filters.session:
        parts.append(q.Term("session", filters.session))
    if filters.since or filters.until:
        parts.append(q.DateRange("created", _naive(filters.since), _naive(filters.until)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else q.And(parts)


def _naive(moment: datetime | None) -> datetime | None:
    """A moment as local wall-clock time, the way `created` is indexed."""
    if moment is None:
        return None
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def plan_query(schema: Schema, text: str, now: datetime, reader: Any = None) -> Plan:
    """A question becomes an OR of its rarer topic words with a date signal; the rest is parsed."""
    from memstore import query as questions

    if questions.is_question(text):
        built = questions.question_query(schema, text, reader)
        if built is not None:
            query, words = built
            return questions.Plan(
                query,
                question=True,
                dates=questions.date_signal(text, _naive(now) or now),
                words=words,
                min_match=questions.min_match(len(set(words.values()))),
            )
    return questions.Plan(parse_query(schema, text, now))


def parse_query(schema: Schema, text: str, now: datetime) -> Query:
    """Parse the query language; raise QuerySyntaxError with a one-line reason."""
    from whoosh import qparser, query

    from memstore.query import check_syntax, date_error

    if not text.strip():
        raise QuerySyntaxError("the query is empty: give some words to search for")
    check_syntax(text)

    class Phrase(query.Phrase):
        """A phrase that falls back to all of its words in fields without positions (tags)."""

        def __init__(self, fieldname: str, words: list[str], **kwargs: Any) -> None:
            kwargs.setdefault("degrade", True)
            super().__init__(fieldname, words, **kwargs)

    parser = qparser.MultifieldParser(list(SEARCH_FIELDS), schema, phraseclass=Phrase)
    parser.add_plugin(qparser.FieldAliasPlugin({"tags": ["tag"]}))
    parser.add_plugin(qparser.GtLtPlugin())
    unread: list[str] = []  # dates the date parser could not read
    if "created" in text:
        from whoosh.qparser.dateparse import DateParserPlugin

        parser.add_plugin(DateParserPlugin(basedate=_naive(now), callback=unread.append))
    try:
        parsed = parser.parse(text)
    except Exception as error:
        if "is not a parseable date" in str(error):
            raise date_error(text, str(error).split("'")[1]) from None
        raise QuerySyntaxError(
            f"cannot parse the query {text!r}: {error}; see 'mem find --help'"
        ) from None
    if unread:
        raise date_error(text, unread[0])
    for node in _walk(parsed):
        if isinstance(node, query.qcore._NullQuery):
            continue
        if type(node).__name__ == "ErrorQuery" or hasattr(node, "message"):
            message = getattr(node, "message", "invalid query")
            raise QuerySyntaxError(
                f"cannot parse the query {text!r}: {message}; see 'mem find --help'"
            )
    if parsed is query.NullQuery or isinstance(parsed, query.qcore._NullQuery):
        raise QuerySyntaxError(
            f"the query {text!r} has no words to search for; see 'mem find --help'"
        )
    return parsed


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in node.children() if hasattr(node, "children") else ():
        yield from _walk(child)
