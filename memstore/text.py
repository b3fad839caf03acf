"""Text shaped for one line of output: an error's message, a snippet, the lead of a body."""

from __future__ import annotations


def one_line(text: str) -> str:
    """The text on one line: runs of white space, line breaks included, made one space."""
    return " ".join(text.split())


def error_line(error: BaseException) -> str:
    """An error's message on one line to quote inside a sentence (no final full stop); its type
    when it has no message."""
    return one_line(str(error)).rstrip(".") or type(error).__name__


def lead(body: str, length: int = 160) -> str:
    """The start of a body on one line, cut at a word with an ellipsis when it is longer."""
    text = one_line(body)
    return text if len(text) <= length else text[:length].rsplit(" ", 1)[0] + "…"
