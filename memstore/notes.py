"""Notes written by other tools (Obsidian, nb, zk, …): their front-matter read leniently.

memstore's own files are read strictly by `memory.parse`; a note brought in from elsewhere is
read leniently with python-frontmatter (YAML, or JSON front-matter), and its fields are turned
into plain values memstore writes back unchanged (dates become ISO 8601 text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from memstore.errors import InvalidInputError

# Fields a new memory gets from memstore itself, whatever the note says.
OWN_FIELDS = ("id", "created")
TOML_FENCE = "+++"


@dataclass
class Note:
    """A foreign note: its body, the fields memstore knows, and the rest kept as they are."""

    body: str
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    type: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_note(text: str) -> Note:
    """Split a note into its body and front-matter fields.

    Raises InvalidInputError when the front-matter cannot be read or a field has the wrong type.
    """
    try:
        metadata, body = split_front_matter(text)
    except ValueError as error:
        raise InvalidInputError(f"{error}: fix it or add the text without it") from None
    title = text_field(metadata.pop("title", None), "title")
    tags = tag_list(metadata.pop("tags", None))
    kind = text_field(metadata.pop("type", None), "type")
    source = text_field(metadata.pop("source", None), "source")
    for name in OWN_FIELDS:
        metadata.pop(name, None)
    return Note(body=body, title=title, tags=tags, type=kind, source=source, extra=metadata)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A note's front-matter as plain values, and its body.

    YAML (`---`) and JSON front-matter are read with python-frontmatter, TOML (`+++`) with
    tomllib. Raises ValueError saying the front-matter cannot be read.
    """
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if lines and lines[0].rstrip() == TOML_FENCE:
        import tomllib

        closing = next((i for i in range(1, len(lines)) if lines[i].rstrip() == TOML_FENCE), None)
        if closing is None:
            raise ValueError("the note's TOML front-matter is not closed (no line '+++')")
        try:
            metadata: dict[str, Any] = tomllib.loads("".join(lines[1:closing]))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"cannot read the note's TOML front-matter ({error})") from None
        body = "".join(lines[closing + 1 :])
    else:
        import frontmatter

        try:
            post = frontmatter.loads(text)
        except Exception as error:  # the library raises whatever its YAML/JSON parser raises
            raise ValueError(
                f"cannot read the note's front-matter ({type(error).__name__})"
            ) from None
        metadata, body = post.metadata, post.content
    return {str(key): plain_value(value) for key, value in metadata.items()}, body


def text_field(value: Any, name: str) -> str | None:
    """A field that must be text; a number is taken as its text, anything else is refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(
        f"'{name}' must be text, not {_kind(value)} ({value!r}): write it as one line of text"
    )


def tag_list(value: Any) -> list[str]:
    """Tags as a list of words: a list, or one word or number (taken as a one-tag list).

    Text such as "a, b" or "a b", as some notes write them, is split into words.
    """
    if value is None:
        return []
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, list) and all(
        isinstance(tag, str | int | float) and not isinstance(tag, bool) for tag in value
    ):
        return [str(tag) for tag in value]
    raise InvalidInputError(
        f"'tags' must be a list of words, not {_kind(value)} ({value!r}): write e.g. tags: [a, b]"
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def plain_value(value: Any) -> Any:
    """Dates as ISO text, containers recursively; what memstore writes and reads back alike."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value
