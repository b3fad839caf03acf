"""Code-aware text analysis for the ``title`` and ``body`` fields.

Words are runs of letters and digits joined by code-ish punctuation (``-_./@:\\``), with an
optional ``++`` or ``#`` suffix so that ``C++`` and ``C#`` survive. At index time a compound
such as ``src/app.py`` or ``fooBar`` yields the whole word plus its parts (split on punctuation,
camelCase and letter/digit boundaries); at query time it yields only the parts, which the query
parser turns into a phrase. Everything is lowercased and NFKC-normalized; purely alphabetic
terms are stemmed (Porter2, the English Snowball stemmer). Runs of Chinese, Japanese or Korean
characters, written without spaces, become overlapping character pairs (``デプロイ`` is
``デプ``, ``プロ``, ``ロイ``), so that a word inside a sentence is found as a phrase of its pairs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from whoosh.analysis import Analyzer, Filter, Token, Tokenizer
from whoosh.lang.porter2 import stem


def _mark_class() -> str:
    # Combining marks (Mn/Mc/Me) in the blocks where they occur in practice: Latin, Greek,
    # Cyrillic, Hebrew, Arabic, Indic, South-East Asian, kana voicing marks. Variation selectors
    # (U+FE00..) are left out so that emoji stay tokenless. Scanning these blocks and writing
    # ranges keeps import (scan plus regex compile) to a few milliseconds.
    spans = (
        (0x0300, 0x2000),
        (0x20D0, 0x2100),
        (0x2CE0, 0x2E00),
        (0x3000, 0x3100),
        (0xA660, 0xAB00),
        (0xFE20, 0xFE30),
    )
    codes = [
        code
        for first, last in spans
        for code in range(first, last)
        if unicodedata.category(chr(code)).startswith("M")
    ]
    ranges: list[str] = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        low, high = re.escape(chr(codes[i])), re.escape(chr(codes[j]))
        ranges.append(low if i == j else f"{low}-{high}")
        i = j + 1
    return "".join(ranges)


_MARK = _mark_class()
# A letter or digit (``\w`` without the underscore); combining marks may follow it so that
# decomposed accents and Indic vowel signs do not split a word.
_SEGMENT = rf"[^\W_]+(?:[{_MARK}]+[^\W_]+)*[{_MARK}]*"
_JOINER = r"[-_./@:\\]"
# Joiners only count between two segments, so sentence punctuation stays out of tokens. The
# suffix may not be followed by a word character, so ``C++11`` is ``C`` and ``11``.
_TOKEN_RE = re.compile(rf"{_SEGMENT}(?:{_JOINER}+{_SEGMENT})*(?:\+\+(?![+\w])|#(?!\w))?")

# (text, start offset in the word, end offset in the word, position offset)
_Piece = tuple[str, int, int, int]
# (pieces at index time, pieces at query time, positions the word occupies)
_Split = tuple[tuple[_Piece, ...], tuple[_Piece, ...], int]

_CACHE_SIZE = 50_000


@lru_cache(maxsize=_CACHE_SIZE)
def _normalize(text: str) -> str:
    # NFKC folds fullwidth letters, ligatures and composed/decomposed accents to one form.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    if text.isalpha():
        text = stem(text)
    return text


def _is_simple(word: str) -> bool:
    # The common case (one plain ASCII word or number) skips the part splitter.
    if not word.isascii():
        return False
    if word.isalpha():
        return word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())
    return word.isdigit()


def _part_spans(word: str) -> list[tuple[int, int]]:
    """Split a word into parts at punctuation, camelCase, digit and script boundaries."""
    spans: list[tuple[int, int]] = []
    start = -1  # start of the current part, -1 between parts
    kind = ""  # "d" digits, "u" capitals only so far, "l" cased word, "o" uncased letters
    last_cap = -1  # latest capital of an all-caps part: HTTPServer splits before the S
    for i, char in enumerate(word):
        if char.isdecimal():
            new = "d"
        elif char.isupper() or char.istitle():
            new = "u"
        elif char.islower():
            new = "l"
        elif char.isalnum():
            new = "o"
        elif start >= 0 and not char.isascii() and unicodedata.category(char)[0] == "M":
            continue  # a combining mark belongs to the letter before it
        else:
            if start >= 0:
                spans.append((start, i))
                start = -1
            continue
        if start < 0:
            start, kind, last_cap = i, new, i
        elif new == "u":
            if kind != "u":
                spans.append((start, i))
                start, kind = i, "u"
            last_cap = i
        elif new == "l" and kind == "u":
            if last_cap > start:
                spans.append((start, last_cap))
                start = last_cap
            kind = "l"
        elif new != kind:
            spans.append((start, i))
            start, kind = i, new
    if start >= 0:
        spans.append((start, len(word)))
    return spans


# Scripts written without spaces between words (Han, kana, and Hangul, whose words are long
# runs too): a run of them is indexed as overlapping character pairs, so that any word of two
# or more characters inside it is found as a phrase of its pairs.
_CJK_RE = re.compile(
    "[\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f]+"
)


def _cjk_split(word: str) -> _Split:
    """Pieces of a word with CJK runs: each run as character pairs, the rest as words."""
    pieces: list[_Piece] = []
    offset = 0
    at = 0
    for run in _CJK_RE.finditer(word):
        for start, end in _part_spans(word[at : run.start()]):
            pieces.append((_normalize(word[at + start : at + end]), at + start, at + end, offset))
            offset += 1
        first, last = run.span()
        if last - first == 1:
            pieces.append((_normalize(word[first:last]), first, last, offset))
            offset += 1
        for i in range(first, last - 1):
            pieces.append((_normalize(word[i : i + 2]), i, i + 2, offset))
            offset += 1
        at = last
    for start, end in _part_spans(word[at:]):
        pieces.append((_normalize(word[at + start : at + end]), at + start, at + end, offset))
        offset += 1
    return tuple(pieces), tuple(pieces), max(offset, 1)


@lru_cache(maxsize=_CACHE_SIZE)
def _analyze_word(word: str) -> str | _Split:
    """Return the term for a simple word, or the index-time and query-time pieces of a compound."""
    if _is_simple(word):
        return _normalize(word)
    if _CJK_RE.search(word):
        return _cjk_split(word)

    suffix = 2 if word.endswith("++") else 1 if word.endswith("#") else 0
    core = word[: len(word) - suffix]
    spans = _part_spans(core)
    if not spans:
        return (), (), 0
    if suffix and spans[-1][1] == len(core):
        # Keep C++ / objective-c++ atomic in their last part.
        spans[-1] = (spans[-1][0], len(word))
    if len(spans) == 1 and spans[0] == (0, len(word)):
        return _normalize(word)

    parts = tuple(
        (_normalize(word[start:end]), start, end, offset)
        for offset, (start, end) in enumerate(spans)
    )
    index: list[_Piece] = [(_normalize(word), 0, len(word), 0)]
    run_start = 0
    for offset, piece in enumerate(parts):
        index.append(piece)
        if offset + 1 < len(spans) and _joins(word, spans[offset], spans[offset + 1]):
            continue
        # A camelCase run inside a longer word (myApp in myApp.js, OAuth in OAuth2) is also
        # indexed joined, at the position of its last part, so that a lowercase query such as
        # ``myapp.js`` or ``oauth2`` still finds it as a phrase.
        start, end = spans[run_start][0], spans[offset][1]
        if run_start < offset and (start, end) != (0, len(word)):
            index.append((_normalize(word[start:end]), start, end, offset))
        run_start = offset + 1
    return tuple(index), parts, len(spans)


def _joins(word: str, left: tuple[int, int], right: tuple[int, int]) -> bool:
    # Two parts belong to one camelCase run when they touch and neither is a number.
    return left[1] == right[0] and not word[left[0]].isdecimal() and not word[right[0]].isdecimal()


class CodeTokenizer(Tokenizer):
    """Yields code-aware words (``foo-bar``, ``src/app.py``, ``C++``) as single raw tokens."""

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        """Yield one reused Token per word of ``value``."""
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            t.text = value
            if positions:
                t.pos = start_pos
            if chars:
                t.startchar = start_char
                t.endchar = start_char + len(value)
            yield t
            return
        pos = start_pos
        for match in _TOKEN_RE.finditer(value):
            start, end = match.span()
            t.text = value[start:end]
            if positions:
                t.pos = pos
                pos += 1
            if chars:
                t.startchar = start_char + start
                t.endchar = start_char + end
            yield t


class CodeFilter(Filter):
    """Lowercases, stems and splits compound tokens; see the module docstring."""

    # Whoosh filters take the token stream, not the Composable (value, **kwargs) signature.
    def __call__(self, tokens: Iterable[Token]) -> Iterator[Token]:  # type: ignore[override]
        """Yield the index-time or query-time pieces of each token, renumbering positions."""
        shift = 0  # extra positions taken by the parts of earlier compounds
        for t in tokens:
            found = _analyze_word(t.text)
            if isinstance(found, str):
                t.text = found
                if shift and t.positions:
                    t.pos += shift
                yield t
                continue
            index, query, width = found
            positions, chars = t.positions, t.chars
            if positions:
                base = t.pos + shift
            if chars:
                first = t.startchar
            for text, start, end, offset in query if t.mode == "query" else index:
                t.text = text
                if positions:
                    t.pos = base + offset
                if chars:
                    t.startchar = first + start
                    t.endchar = first + end
                yield t
            shift += width - 1


def index_pieces(text: str) -> Iterator[tuple[str, int, int]]:
    """The terms of text as the index analyzes it, each with its start and end offsets: what
    ``text_analyzer()`` yields at index time, without a token object per term."""
    for match in _TOKEN_RE.finditer(text):
        start, end = match.span()
        found = _analyze_word(match.group())
        if isinstance(found, str):
            yield found, start, end
        else:
            for term, first, last, _ in found[0]:
                yield term, start + first, start + last


def index_positions(text: str) -> dict[str, list[int]]:
    """Each term of text as the index analyzes it, with the positions it takes, in order: the
    positions ``text_analyzer()`` gives its tokens at index time, without a token object per
    term (a full rebuild writes them straight to the index, bulkwrite.py)."""
    found: dict[str, list[int]] = {}
    pos = 0
    for word in _TOKEN_RE.findall(text):
        analyzed = _analyze_word(word)
        if isinstance(analyzed, str):
            positions = found.get(analyzed)
            if positions is None:
                found[analyzed] = [pos]
            else:
                positions.append(pos)
            pos += 1
            continue
        pieces, _, width = analyzed
        for term, _, _, offset in pieces:
            positions = found.get(term)
            if positions is None:
                found[term] = [pos + offset]
            else:
                positions.append(pos + offset)
        pos += width
    return found


def token_spans(text: str) -> list[tuple[int, int]]:
    """The start and end offsets of the words of text, as the tokenizer cuts them."""
    return [match.span() for match in _TOKEN_RE.finditer(text)]


def text_analyzer() -> Analyzer:
    """Return the analyzer for the free-text ``title`` and ``body`` fields."""
    return CodeTokenizer() | CodeFilter()
