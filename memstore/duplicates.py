"""Telling whether a new memory repeats one the store already has.

Two memories are **exact** duplicates when their texts are the same once case, punctuation and
spacing are set aside: the index keeps a digest of that normalised text, so the test is one term
lookup. They are **similar** when the Jaccard similarity of their words and word pairs is at least
SIMILAR; candidates come from the index: the few memories that share most of the new text's
rarest words, taken rarest first within a budget of postings (RARE_POSTINGS). A near duplicate
shares its rare words, so these find it, and the postings of common words (tens of thousands in a
large store) are never read: the check costs a few milliseconds and a few file reads, whatever
the store's size. A text whose every word is in more than RARE_POSTINGS memories is checked for
exact repeats only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Jaccard similarity of words plus word pairs from which two texts count as near duplicates:
# "We use pytest for web tests." and "Use pytest for the web tests" score 0.57.
SIMILAR = 0.5
# How many of the memories that best match the new text's rarest words are compared with it,
# and how many of its words (the rarest in the store) are searched for: rarest first, while the
# memories they are found in add up to at most RARE_POSTINGS (search.rare_words).
CANDIDATES = 5
RARE_TERMS = 6
RARE_POSTINGS = 2000
_WORD = re.compile(r"\w+")


@dataclass
class Duplicate:
    """An existing memory that a new one repeats."""

    id: str
    title: str
    path: str
    kind: str  # "exact" or "similar"
    similarity: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def words(text: str) -> list[str]:
    """The text's words in lower case, without punctuation."""
    return _WORD.findall(text.casefold())


def digest(text: str) -> str:
    """A digest of the normalised text: equal for texts that differ only in case and punctuation."""
    normal = " ".join(words(text))
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:32]


def features(text: str) -> set[str]:
    """The words of a text and its pairs of neighbouring words."""
    found = words(text)
    return set(found) | {f"{a} {b}" for a, b in zip(found, found[1:], strict=False)}


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two texts' words and word pairs, from 0 to 1."""
    left, right = features(a), features(b)
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def warning(duplicate: Duplicate) -> str:
    """The warning `mem add` gives for a duplicate."""
    return (
        f'this looks like a duplicate of {duplicate.id} "{duplicate.title}" ({duplicate.kind});'
        " it was added anyway: use --update"
        f" {duplicate.id} or --supersedes {duplicate.id} to revise a memory instead"
    )
