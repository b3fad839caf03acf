"""Notes written by other tools (Obsidian, nb, zk, …): their front-matter read leniently.

memstore's own files are read strictly by `memory.parse`; a note brought in from elsewhere is
read leniently with python-frontmatter (YAML, or JSON front-matter), and its fields are turned
into plain values memstore writes back unchanged (dates become ISO 8601 text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from memstore.errors import InvalidInputError

# Fields a new memory gets from memstore itself, whatever the note says.
OWN_FIELDS = ("id", "created")


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
    """Split a note into its body and front-matter fields."""
    import frontmatter

    try:
        post = frontmatter.loads(text)
    except Exception as error:  # the library raises whatever its YAML/TOML/JSON parser raises
        raise InvalidInputError(
            f"cannot read the note's front-matter ({type(error).__name__}): fix it or add the"
            " text without it"
        ) from None
    metadata = {str(key): plain_value(value) for key, value in post.metadata.items()}
    title = metadata.pop("title", None)
    tags = metadata.pop("tags", None)
    kind = metadata.pop("type", None)
    source = metadata.pop("source", None)
    for name in OWN_FIELDS:
        metadata.pop(name, None)
    if isinstance(tags, str):
        tags = [part for part in tags.replace(",", " ").split() if part]
    return Note(
        body=post.content,
        title=str(title) if title is not None else None,
        tags=[str(tag) for tag in tags or []],
        type=str(kind) if kind is not None else None,
        source=str(source) if source is not None else None,
        extra=metadata,
    )


def plain_value(value: Any) -> Any:
    """Dates as ISO text, containers recursively; what memstore writes and reads back alike."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value
