"""A hit's snippet: the best passages of its body with the matched words marked.

The passages are the ones Whoosh's highlighter picks with a ``ContextFragmenter`` (200
characters at most, 60 of context each side, no character limit), its basic fragment scorer and
passages in text order, character for character. Whoosh gets there through five chained
generators and a token object per word; here one loop over the words does the same, which makes
a hit's snippet several times cheaper (about half of a search at 100,000 memories was spent on
snippets). `tests/test_snippets.py` holds the two to the same output.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from heapq import nlargest
from typing import Any

from memstore.analysis import index_pieces

MAX_CHARS = 200  # the longest passage
SURROUND = 60  # context kept before the first and after the last matched word of a passage
BETWEEN = " … "  # between two passages of one snippet


def body_words(results: Any, field: str = "body") -> frozenset[str]:
    """The terms to mark in a hit of these Whoosh results: every term the results matched in
    the field, or the query's terms when the results did not record them (as Whoosh does)."""
    if results.has_matched_terms():
        terms = [term for term in results.matched_terms() if term[0] == field]
    else:
        terms = list(results.query_terms(expand=True, fieldname=field))
    from_bytes = results.searcher.schema[field].from_bytes
    return frozenset(from_bytes(term[1]) for term in terms)


def highlight(text: str, words: frozenset[str], marks: tuple[str, str], top: int = 2) -> str:
    """The top passages of text that hold words, in text order, each word wrapped in marks."""
    if not words:
        return ""
    chosen = nlargest(top, ((_score(passage), passage) for passage in _passages(text, words)))
    passages = [passage for score, passage in chosen if score >= 1]
    passages.sort(key=lambda passage: passage.start)
    return BETWEEN.join(passage.format(text, marks) for passage in passages)


class _Passage:
    __slots__ = ("start", "end", "matches")

    def __init__(self, start: int, end: int, matches: list[tuple[str, int, int]]) -> None:
        self.start, self.end, self.matches = start, end, matches

    def __lt__(self, other: _Passage) -> bool:
        # Ties of score are broken by position, as Whoosh's fragments are.
        return self.start < other.start

    def format(self, text: str, marks: tuple[str, str]) -> str:
        out = []
        index = self.start
        # Overlapping matches (CJK pairs, a compound and its parts): the longest at a place wins.
        for _, start, end in sorted(self.matches, key=lambda m: (m[1], m[1] - m[2])):
            if start < index:
                continue
            if start > index:
                out.append(text[index:start])
            out.append(f"{marks[0]}{text[start:end]}{marks[1]}")
            index = end
        out.append(text[index : self.end])
        return "".join(out)


def _score(passage: _Passage) -> float:
    # Whoosh's BasicFragmentScorer: the matches, times 100 per distinct matched term.
    return float(len(passage.matches)) * ((len({m[0] for m in passage.matches}) * 100) or 1)


def _marked(text: str, words: frozenset[str]) -> Iterator[tuple[str, int, int, bool]]:
    """The index-time tokens of text, each with whether it is a word to mark; consecutive
    overlapping marked tokens merged into one, as Whoosh merges them."""
    merged: list[Any] | None = None  # [term, start, end] of the marked run being merged
    for term, start, end in index_pieces(text):
        if term not in words:
            if merged is not None:
                yield merged[0], merged[1], merged[2], True
                merged = None
            yield term, start, end, False
        elif merged is None:
            merged = [term, start, end]
        elif start <= merged[2]:
            if end > merged[2]:
                merged[0] += term[merged[2] - end :]
                merged[2] = end
        else:
            yield merged[0], merged[1], merged[2], True
            merged = None
            yield term, start, end, True
    if merged is not None:
        yield merged[0], merged[1], merged[2], True


def _passages(text: str, words: frozenset[str]) -> Iterator[_Passage]:
    """Whoosh's ContextFragmenter.fragment_tokens over the marked tokens of text."""
    first: int | None = None  # where the passage being built starts
    firsts: deque[int] = deque()  # starts of the unmarked tokens just before it
    countdown = -1  # characters of context left; below 0 when no passage is being built
    matches: list[tuple[str, int, int]] = []
    end = 0
    length = 0
    for term, start, end, marked in _marked(text, words):
        width = end - start
        if countdown < 0 and not marked:
            firsts.append(start)
            while firsts and end - firsts[0] > SURROUND:
                firsts.popleft()
        elif length + width > MAX_CHARS:
            countdown = 0
        elif marked:
            countdown = SURROUND
            if first is None:
                if firsts:
                    first = firsts[0]
                else:
                    first = start
                    countdown += SURROUND
            matches.append((term, start, end))
        if countdown >= 0:
            length += width
            countdown -= width
            if countdown <= 0:
                yield _Passage(first if first is not None else 0, end, matches)
                matches = []
                firsts = deque()
                first = None
                length = 0
    if matches:
        yield _Passage(first if first is not None else 0, end, matches)
