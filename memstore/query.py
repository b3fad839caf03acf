"""Plain queries and natural-language questions, turned into Whoosh queries.

A query that uses the query language deliberately (a field name such as `tag:`, quotes, a
wildcard, uppercase `AND`/`OR`/`NOT`; parentheses only together with these) or is a few plain
words goes to the query parser, where plain words are joined by
AND. A longer run of plain words, or one ending in `?`, is read as a question: question and
function words are dropped, the remaining words (names, numbers and dates included) are joined
by OR so that a memory need not contain every word of the question, and a memory that has more
of them, or two of them side by side, ranks higher; long questions need a share of their words.
A period named in a question ("two weeks ago", "last Saturday", "in March") raises the best
candidates created in it, and counts as one of the words a memory has. Memories recorded in one
session (the `session` field) lend each other context: a memory ranks higher when its session
matches the question well, and the best sessions bring in memories that have too few of the
question's words themselves. A question shows memories of the same text once. See
docs/retrieval.md for the measurements behind each choice.
"""

from __future__ import annotations

import calendar
import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memstore.analysis import token_spans
from memstore.errors import QuerySyntaxError

if TYPE_CHECKING:
    from whoosh.fields import Schema
    from whoosh.query import Query

# Plain queries of up to this many words keep AND semantics (`cors nginx` means both words).
MAX_KEYWORD_WORDS = 3
# Fields searched for question words, with boosts at query time on top of the index-time ones
# (title x3, tags x2). A title is often the first line of the body: at full weight it counted
# that line four times over, so a question weighs it a fifth.
QUESTION_FIELDS = {"title": 0.2, "body": 1.0, "tags": 1.0}
# Extra weight of two question words found side by side in the body, at most PHRASE_SLOP apart.
PHRASE_BOOST = 1.0
PHRASE_SLOP = 1
# Score factor added to candidates created in the period a question names.
PERIOD_BOOST = 2.0
# A question's re-ranking (period, minimum match, meaning, sessions, copies) picks its first
# page from this many candidates: it can lift a memory the words alone rank low, but only one
# it is given (100: the sample's plateau, docs/retrieval.md).
CANDIDATES = 100
# A question of more topic words than MIN_MATCH_FROM needs this share of them in a memory.
MIN_MATCH_FROM = 3
MIN_MATCH_SHARE = 0.25
# Session context: a question's score of a memory gains CONTEXT_WEIGHT times the best score in
# its session (a memory without a session is a session of its own), and the memories of the
# CONTEXT_SESSIONS best sessions are candidates even with too few of the question's words.
CONTEXT_WEIGHT = 0.15
CONTEXT_SESSIONS = 3
# Question words are kept, rarest first, while the memories that have them add up to at most
# this many (0: no limit), and at least MIN_WORDS of them; see `rarest`.
POSTINGS_BUDGET = 5000
MIN_WORDS = 2
# Expansion of a question by its first results (pseudo-relevance feedback): the EXPAND_TERMS
# words that weigh most in the EXPAND_DOCS best memories (term share x rarity) are added to
# the query at EXPAND_WEIGHT, so that a memory worded like those, not like the question, can
# be found. 0 documents turns it off.
EXPAND_DOCS = 3
EXPAND_TERMS = 10
EXPAND_WEIGHT = 0.1
# The added words are the rarer ones whose memories add up to at most this many (0: no limit),
# and a question is expanded only if its own words are found in at most EXPAND_UNDER memories.
EXPAND_BUDGET = 1000
EXPAND_UNDER = 1000
# Meaning (the `semantic` extra, semantic.py): the MEANING_CANDIDATES memories nearest to a
# question join its candidates, and a candidate's score gains MEANING_WEIGHT times the spread of
# the text scores times how far its closeness to the question stands above the others' (a
# z-score; those not among the nearest count as the farthest of them). A memory with too few of
# the question's words (minimum match) stays if it is among the MEANING_ALONE nearest and its
# cosine is at least MEANING_FLOOR. 0 candidates turns it off.
MEANING_CANDIDATES = 50
MEANING_WEIGHT = 0.5
MEANING_ALONE = 5
MEANING_FLOOR = 0.2
# BM25F parameters. B = 1 normalizes term counts fully by length: a long reply that mentions a
# word once no longer outranks a short message about it.
BM25_B = 1.0
BM25_K1 = 1.2

# Words that carry no topic in a question: function words (pronouns, auxiliaries, articles,
# prepositions, conjunctions, question words), taken from two standard English stop word lists
# and nothing else, so that no word is there because of how some set of questions is worded.
# Only questions lose them; a keyword query keeps every word. Sources, vendored verbatim:
# the Snowball project's English stop word list (snowballstem.org, algorithms/english/stop.txt,
# BSD 3-clause licence) and NLTK's (nltk_data corpora/stopwords/english, 179 words, Apache 2.0
# licence), which extends Snowball's with "can", "will", "just", "now" and the pieces a word
# with an apostrophe is cut into ("don", "t", "ll", ...).
SNOWBALL_STOP_WORDS = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing would should could ought i'm you're he's she's it's we're they're i've you've we've
    they've i'd you'd he'd she'd we'd they'd i'll you'll he'll she'll we'll they'll isn't
    aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't won't wouldn't shan't
    shouldn't can't cannot couldn't mustn't let's that's who's what's here's there's when's
    where's why's how's a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very
"""
NLTK_STOP_WORDS = """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them
    their theirs themselves what which who whom this that that'll these those am is are was
    were be been being have has had having do does did doing a an the and but if or because
    as until while of at by for with about against between into through during before after
    above below to from up down in out on off over under again further then once here there
    when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don don't should should've now d ll m o re ve y
    ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven
    haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
    shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
"""
_STOP_TEXT = SNOWBALL_STOP_WORDS + NLTK_STOP_WORDS
# A word with an apostrophe is cut into its pieces by the tokenizer ("don't": "don", "t").
QUESTION_STOP_WORDS = frozenset(re.split(r"[\s']+", _STOP_TEXT)) - {""}
# Stands for the named period among the question's words (which are numbered from 0).
_PERIOD = -1
# Deliberate query-language syntax: marks that mean something only to the query parser, and
# that people do not write in a sentence. A field name and a colon, a double quote, an uppercase
# AND/OR/NOT, a wildcard `*`, a boost (`nginx^2`) or a range (`[a TO b]`). Punctuation that
# written questions use (parentheses, dashes, `+`, `~`, apostrophes, `?`) is not syntax on its
# own: parentheses group only together with one of the marks above.
_SYNTAX = re.compile(
    r"""["*]|\b(?:AND|OR|NOT)\b|\S\^[\d.]*(?=[\s)]|$)|[\[{][^\]}]*\s(?i:to)\s"""
    r"""|\b(?:title|body|tags?|type|source|session|created|id|path|dir):"""
)


# The forms of `created:` a query error suggests.
DATE_FORMS = (
    "created:2026, created:2026-11, created:2026-11-21, created:today,"
    " created:[2026-01-01 to 2026-03-31] or created:>2026-06"
)
_OPERATORS = ("AND", "OR", "NOT")
_CREATED = re.compile(r"""\bcreated:(\[[^\]]*\]?|[<>]=?[^\s()]*|'[^']*'|"[^"]*"|[^\s()]*)""")
_NUMERIC_DATE = re.compile(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?")


def check_syntax(text: str) -> None:
    """Refuse what the query parser would quietly turn into another query.

    An unclosed quote, parentheses that do not pair up (`web (cors`; in a question they are
    punctuation), an operator with no word on one side (`web OR`, `OR web`) and an impossible
    date (`created:2026-13`) raise QuerySyntaxError, as ripgrep refuses a bad pattern.
    """
    if text.count('"') % 2:
        raise QuerySyntaxError(
            f'the query {text!r} has an unclosed quote: end the phrase with ", or leave the'
            " quote out; see 'mem find --help'"
        )
    unquoted = re.sub(r'"[^"]*"', " phrase ", text)
    if not is_question(text):  # in a question, parentheses are punctuation
        _check_parentheses(text, unquoted)
    words = unquoted.replace("(", " ( ").replace(")", " ) ").split()
    for number, word in enumerate(words):
        if word not in _OPERATORS:
            continue
        before = words[number - 1] if number else None
        after = words[number + 1] if number + 1 < len(words) else None
        if after is None or after in ("AND", "OR", ")"):
            where = "ends with" if after is None else "has nothing to search for after"
        elif word != "NOT" and (before is None or before in _OPERATORS or before == "("):
            where = "starts with" if before is None else "has nothing to search for before"
        else:
            continue
        raise QuerySyntaxError(
            f"the query {text!r} {where} {word}: give a search word on each side of {word},"
            f" or write {word.lower()!r} in lower case to search for the word;"
            " see 'mem find --help'"
        )
    for found in _CREATED.finditer(text):
        value = found[1].strip("[]'\"<>=")
        for part in re.split(r"\s*\bto\b\s*", value, flags=re.IGNORECASE):
            if not _valid_date(part.strip()):
                raise date_error(text, part.strip())


def _check_parentheses(text: str, unquoted: str) -> None:
    """Refuse a query whose parentheses do not pair up: the parser would drop the odd one."""
    depth = 0
    for char in unquoted:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise QuerySyntaxError(
                    f"the query {text!r} has a ) with no ( before it: open the group with (,"
                    " or leave the parenthesis out; see 'mem find --help'"
                )
    if depth:
        raise QuerySyntaxError(
            f"the query {text!r} has an unclosed parenthesis: close the group with ), or"
            " leave the parenthesis out; see 'mem find --help'"
        )


def date_error(text: str, value: str) -> QuerySyntaxError:
    """The error for a `created:` value that is not a date."""
    shown = f"the date {value!r}" if value else "a date"
    return QuerySyntaxError(
        f"cannot read {shown} in the query {text!r}: use {DATE_FORMS}; see 'mem find --help'"
    )


def _valid_date(value: str) -> bool:
    """False for a numeric date that names no day (2026-13, 2026-02-30); words pass through."""
    found = _NUMERIC_DATE.fullmatch(value)
    if not found:
        return True  # the date parser judges words such as `today`, and reports its failures
    try:
        datetime(int(found[1]), int(found[2] or 1), int(found[3] or 1))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DateSignal:
    """The period a question points at, in naive wall-clock time like `created` in the index."""

    start: datetime
    end: datetime


@dataclass
class Plan:
    """How to run a query: the Whoosh query, and for questions the date signal."""

    query: Query
    question: bool = False
    dates: DateSignal | None = None
    # For questions: which question word each (field, term) stands for, and how many of the
    # words a memory must contain.
    words: dict[tuple[str, str], int] = field(default_factory=dict)
    min_match: int = 1
    # For questions with the semantic extra: the nearest memories' closeness, by document number.
    meaning: dict[int, float] = field(default_factory=dict)
    # Those of them close enough to stay without the question's words (MEANING_ALONE).
    alone: set[int] = field(default_factory=set)
    _wordless: set[int] = field(default_factory=set)

    def pool(self, limit: int) -> int | None:
        """How many hits to ask Whoosh for (None for all) to give limit after re-ranking."""
        if limit and self.question:
            return max(limit, CANDIDATES)
        return limit or None

    def rank(self, results: Any, limit: int, nearest: Any = None) -> list[tuple[Any, float]]:
        """Whoosh hits with their final scores, best first, at most limit (0: all).

        nearest: hits of memories near the question in meaning that results does not have.
        """
        # Not list(results): that asks len(results), which counts every match of the query.
        hits = list(iter(results))
        text = [hit.score or 0.0 for hit in hits]
        if nearest is not None:
            more = list(iter(nearest))
            hits += more
            text += [0.0] * len(more)
            self._wordless = {hit.docnum for hit in more}
        text = fuse(text, [hit.docnum for hit in hits], self.meaning)
        scores = rescore(list(zip(text, [_created(hit) for hit in hits], strict=True)), self.dates)
        ranked = list(zip(hits, scores, strict=True))
        if self.question:
            ranked = once_each(in_context(ranked, [self._enough(hit) for hit in hits]))
        return ranked[: limit or None]

    def _enough(self, hit: Any) -> bool:
        """Whether a hit has enough of the question's words; the named period counts as one."""
        if hit.docnum in self.alone:
            return True
        if hit.docnum in self._wordless:
            return False  # brought in by meaning alone, not close enough for that
        if self.min_match <= 1:
            return True
        found = {self.words.get((name, text.decode("utf-8"))) for name, text in hit.matched_terms()}
        found.discard(None)
        if self.dates is not None and _within(_created(hit), self.dates):
            found.add(_PERIOD)
        return len(found) >= self.min_match


def fuse(scores: list[float], docnums: list[int], meaning: dict[int, float]) -> list[float]:
    """Text scores raised by closeness in meaning, in the text scores' own units (see
    MEANING_WEIGHT)."""
    if not meaning or not scores or not MEANING_WEIGHT:
        return scores
    close = list(meaning.values())
    mean = sum(close) / len(close)
    spread = _deviation(close, mean)
    if not spread:
        return scores
    # With no text score to measure by (no word of the question matched), closeness alone ranks.
    scale = MEANING_WEIGHT * (_deviation(scores, sum(scores) / len(scores)) or 1.0)
    floor = min(close)
    return [
        score + scale * (meaning.get(docnum, floor) - mean) / spread
        for score, docnum in zip(scores, docnums, strict=True)
    ]


def _deviation(values: list[float], mean: float) -> float:
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values))


def in_context(ranked: list[tuple[Any, float]], enough: list[bool]) -> list[tuple[Any, float]]:
    """Hits re-scored with their session's best score, best first (see CONTEXT_WEIGHT).

    enough tells, for each hit, whether it has enough of the question's words; of the others,
    only those of the best sessions stay.
    """

    def session_of(hit: Any) -> tuple[str, str]:
        session = hit.get("session")
        return ("session", session) if session else ("memory", hit["id"])

    best: dict[tuple[str, str], float] = {}
    for (hit, score), ok in zip(ranked, enough, strict=True):
        if ok:
            key = session_of(hit)
            best[key] = max(best.get(key, 0.0), score)
    sessions = sorted((key for key in best if key[0] == "session"), key=lambda key: -best[key])
    leading = set(sessions[:CONTEXT_SESSIONS])
    scored = [
        (hit, score + CONTEXT_WEIGHT * best.get(session_of(hit), score))
        for (hit, score), ok in zip(ranked, enough, strict=True)
        if ok or session_of(hit) in leading
    ]
    scored.sort(key=lambda pair: -pair[1])  # stable: ties keep Whoosh's order
    return scored


def once_each(ranked: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    """Hits with the text of a better hit left out: one copy answers a question."""
    seen: set[str] = set()
    kept = []
    for hit, score in ranked:
        digest = hit.get("digest")
        if digest:
            if digest in seen:
                continue
            seen.add(digest)
        kept.append((hit, score))
    return kept


def min_match(count: int) -> int:
    """How many of a question's count topic words a memory must contain."""
    if count <= MIN_MATCH_FROM:
        return 1
    return max(1, int(count * MIN_MATCH_SHARE))


def is_question(text: str) -> bool:
    """Whether text is read as a natural-language question rather than the query language."""
    if _SYNTAX.search(text):
        return False
    words = text.split()
    if len(words) <= MAX_KEYWORD_WORDS:
        # A short plain query is keywords, unless it asks (`where is nginx?`): `cor?` alone
        # is a wildcard.
        return len(words) >= 2 and text.rstrip().endswith("?") and "?" not in text.rstrip()[:-1]
    return True


def question_words(text: str) -> list[str]:
    """The words of a question that name its topic, in order, without repeats."""
    seen: set[str] = set()
    kept: list[str] = []
    for whole in (text[start:end] for start, end in token_spans(text)):
        # A compound (`art-related`, `src/app.py`) is kept whole, and its parts as words too.
        parts = [whole]
        if re.search(r"[-_./@:\\]", whole):
            parts += [piece for piece in re.split(r"[-_./@:\\]+", whole) if piece]
        for word in parts:
            low = word.lower()
            if low in QUESTION_STOP_WORDS or low in seen:
                continue
            seen.add(low)
            kept.append(word)
    return kept


def question_query(
    schema: Schema, text: str, reader: Any = None
) -> tuple[Query, dict[tuple[str, str], int]] | None:
    """An OR of the question's topic words over the searched fields, and the word of each term.

    With the index's reader, only the rarest words are kept (see `rarest`). None if the question
    has no topic words.
    """
    from whoosh import query as q

    words = question_words(text)
    if reader is not None:
        words = rarest(schema, reader, words)
    if not words:
        return None
    clauses: list[Query] = []
    word_of: dict[tuple[str, str], int] = {}
    for number, word in enumerate(words):
        per_field: list[Query] = []
        for name, boost in QUESTION_FIELDS.items():
            if name not in schema or not boost:
                continue
            terms = _terms(schema, name, word)
            for term in terms:
                word_of.setdefault((name, term), number)
            if len(terms) == 1:
                per_field.append(q.Term(name, terms[0], boost=boost))
            elif terms:
                per_field.append(q.Phrase(name, terms, boost=boost, degrade=True))
        if per_field:
            clauses.append(per_field[0] if len(per_field) == 1 else q.Or(per_field))
    if not clauses:
        return None
    if PHRASE_BOOST:
        clauses.extend(_pairs(schema, text, words))
    return (clauses[0] if len(clauses) == 1 else q.Or(clauses)), word_of


def rarest(schema: Schema, reader: Any, words: list[str], budget: int | None = None) -> list[str]:
    """The question's words that fit the scoring budget, rarest first, in question order.

    Scoring an OR costs a few microseconds per memory that has any of its words, so a word found
    in many memories costs the most and, being common, says the least. Words are taken from the
    rarest while the memories they are found in add up to at most budget (POSTINGS_BUDGET by
    default), and at least MIN_WORDS of them. In a store of a few thousand memories every word fits.
    """
    budget = POSTINGS_BUDGET if budget is None else budget
    if not budget:
        return words
    counts = {}
    for word in words:
        terms = _terms(schema, "body", word)
        counts[word] = min((reader.doc_frequency("body", term) for term in terms), default=0)
    chosen: set[str] = set()
    spent = 0
    for word in sorted(words, key=lambda word: counts[word]):
        if len(chosen) >= MIN_WORDS and spent + counts[word] > budget:
            break
        chosen.add(word)
        spent += counts[word]
    return [word for word in words if word in chosen]


def _pairs(schema: Schema, text: str, words: list[str]) -> list[Query]:
    """Phrase clauses for topic words that follow each other in the question."""
    from whoosh import query as q

    spans = token_spans(text)
    order = [text[start:end].lower() for start, end in spans]
    kept = {word.lower() for word in words}
    pairs: list[Query] = []
    for left, right in zip(order, order[1:], strict=False):
        if left in kept and right in kept:
            terms = _terms(schema, "body", left) + _terms(schema, "body", right)
            pairs.append(q.Phrase("body", terms, slop=PHRASE_SLOP, boost=PHRASE_BOOST))
    return pairs


def expand(
    plan: Plan, searcher: Any, read_body: Callable[[str], str | None], filter: Any = None
) -> Query:
    """The question's query widened by the words that weigh most in its first results."""
    from collections import Counter

    from whoosh import query as q

    if not EXPAND_DOCS or not EXPAND_TERMS:
        return plan.query
    reader = searcher.reader()
    # A second search doubles the cost: worth it only while the first is cheap.
    cost = sum(reader.doc_frequency(name, text) for name, text in plan.words if name == "body")
    if cost > EXPAND_UNDER:
        return plan.query
    first = searcher.search(plan.query, limit=EXPAND_DOCS, filter=filter)
    analyzer = searcher.schema["body"].analyzer
    known = {text for name, text in plan.words if name == "body"}
    known |= {token.text for token in analyzer(_STOP_TEXT)}  # "the" says nothing here either
    share: dict[str, float] = {}
    for hit in first:
        counts = Counter(token.text for token in analyzer(read_body(hit["path"]) or ""))
        length = sum(counts.values()) or 1
        for term, count in counts.items():
            if term not in known and len(term) > 2 and not term.isdigit():
                share[term] = share.get(term, 0.0) + count / length
    total = reader.doc_count_all()
    weighed = []
    for term, part in share.items():
        found_in = reader.doc_frequency("body", term)
        # A word of one memory brings nothing else back; one of most memories, everything.
        if 1 < found_in <= total / 2:
            weighed.append((part * math.log(1 + (total - found_in + 0.5) / (found_in + 0.5)), term))
    extra: list[Query] = []
    spent = 0
    for _, term in sorted(weighed, reverse=True):
        if len(extra) == EXPAND_TERMS:
            break
        found_in = reader.doc_frequency("body", term)
        if EXPAND_BUDGET and spent + found_in > EXPAND_BUDGET:
            continue
        spent += found_in
        extra.append(q.Term("body", term, boost=EXPAND_WEIGHT))
    return q.Or([plan.query, *extra]) if extra else plan.query


def weighting() -> object:
    """The scoring model of searches."""
    from whoosh import scoring

    return scoring.BM25F(B=BM25_B, K1=BM25_K1)


def rescore(scored: list[tuple[float, datetime | None]], signal: DateSignal | None) -> list[float]:
    """Scores raised for memories created in the period the question names."""
    if signal is None:
        return [score for score, _ in scored]
    return [
        score * (1 + PERIOD_BOOST) if _within(created, signal) else score
        for score, created in scored
    ]


def _within(created: datetime | None, signal: DateSignal) -> bool:
    return created is not None and signal.start <= created <= signal.end


def _terms(schema: Schema, name: str, word: str) -> list[str]:
    """The terms a word stands for in a field: analyzed words for text, lowercase for tags."""
    field = schema[name]
    if not field.analyzer or name == "tags":
        return [word.lower()]
    return [token.text for token in field.analyzer(word, mode="query")]


# Dates in questions

_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple of": 2,
    "few": 3,
}
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_AGO = re.compile(
    r"\b(\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|couple of|few)"
    r"\s+(day|week|month|year)s?\s+ago\b"
)
_PAST = re.compile(
    r"\b(?:past|last|previous)\s+(\d+|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|couple of|few)\s+(day|week|month|year)s?\b"
)
_LAST = re.compile(r"\b(last|past|previous)\s+(week|weekend|month|year)\b")
_LAST_DAY = re.compile(r"\b(?:last|on|this past)\s+(" + "|".join(_WEEKDAYS) + r")\b")
_MONTH_DAY = re.compile(
    r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
    r"(?:\s+(\d{1,2})(?:st|nd|rd|th)?)?(?:,?\s+(\d{4}))?\b",
    re.IGNORECASE,
)
_DAY_MONTH = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th)?\s+of\s+(" + "|".join(_MONTHS) + r")\b(?:,?\s+(\d{4}))?"
)
_ISO = re.compile(r"\b(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b")


def date_signal(text: str, now: datetime) -> DateSignal | None:
    """The period a question names ("two weeks ago", "last Saturday", "in March") around now."""
    low = text.lower()
    day = timedelta(days=1)
    found = _AGO.search(low)
    if found:
        count = int(found[1]) if found[1].isdigit() else _NUMBERS[found[1]]
        span = count * _UNIT_DAYS[found[2]]
        center = now - timedelta(days=span)
        slack = timedelta(days=max(2, span // 4))
        return DateSignal(center - slack, center + slack)
    found = _PAST.search(low)
    if found:
        count = int(found[1]) if found[1].isdigit() else _NUMBERS[found[1]]
        return DateSignal(now - timedelta(days=count * _UNIT_DAYS[found[2]] + 1), now + day)
    found = _LAST.search(low)
    if found:
        unit = found[2]
        if unit == "weekend":
            saturday = now - timedelta(days=(now.weekday() - 5) % 7 or 7)
            return DateSignal(saturday - day, saturday + 2 * day)
        if unit == "week":
            return DateSignal(now - 14 * day, now - 3 * day)
        if unit == "month":
            first = now.replace(day=1)
            return DateSignal(_month_start(first - day) - 3 * day, first + 3 * day)
        return DateSignal(
            now.replace(year=now.year - 1, month=1, day=1), now.replace(month=1, day=1)
        )
    if "yesterday" in low:
        return DateSignal(now - 2 * day, now)
    found = _LAST_DAY.search(low)
    if found:
        back = (now.weekday() - _WEEKDAYS[found[1]]) % 7 or 7
        target = now - timedelta(days=back)
        return DateSignal(target - day, target + day)
    found = _ISO.search(low)
    if found:
        with contextlib.suppress(ValueError):
            iso = now.replace(year=int(found[1]), month=int(found[2]), day=int(found[3]))
            return DateSignal(iso - day, iso + day)
    found = _DAY_MONTH.search(low)
    if found:
        return _month_day(now, _MONTHS[found[2]], int(found[1]), found[3])
    for found in _MONTH_DAY.finditer(text):  # month names are capitalized: "may" is a verb
        name = found[1]
        if not name[0].isupper() or (name.lower() == "may" and not found[2]):
            continue
        return _month_day(now, _MONTHS[name.lower()], int(found[2]) if found[2] else None, found[3])
    return None


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _month_day(now: datetime, month: int, day: int | None, year: str | None) -> DateSignal | None:
    """The named day (or whole month), in the latest year not after now unless a year is given."""
    when = int(year) if year else now.year
    if not year and (month, day or 1) > (now.month, now.day):
        when -= 1
    try:
        if day:
            target = now.replace(year=when, month=month, day=day, hour=0, minute=0)
            return DateSignal(target - timedelta(days=1), target + timedelta(days=2))
        start = now.replace(year=when, month=month, day=1, hour=0, minute=0)
    except ValueError:
        return None
    last = calendar.monthrange(when, month)[1]
    return DateSignal(start, start + timedelta(days=last))


def _created(hit: Any) -> Any:
    """A hit's stored `created`, or None; the column would make one up for a memory without it."""
    return hit.fields().get("created")
