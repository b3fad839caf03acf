"""The YAML rules memstore reads and writes front-matter with.

One loader and one dumper, so that what is written reads back as the same value. Timestamps stay
strings (``created: 2026-11-21T10:55:17+01:00`` is text the schema checks, not a datetime that
PyYAML would re-format on the way out); everything else follows YAML 1.1 as PyYAML does.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _without_timestamps(resolvers: dict[Any, Any]) -> dict[Any, Any]:
    return {
        first: [(tag, regexp) for tag, regexp in entries if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in resolvers.items()
    }


class FrontMatterLoader(_BaseLoader):
    """Safe loader that keeps timestamps as strings."""


FrontMatterLoader.yaml_implicit_resolvers = _without_timestamps(
    yaml.SafeLoader.yaml_implicit_resolvers
)


class FrontMatterComposer(yaml.SafeLoader):
    """Pure-Python loader used when node positions (line numbers) are needed."""


FrontMatterComposer.yaml_implicit_resolvers = _without_timestamps(
    yaml.SafeLoader.yaml_implicit_resolvers
)


class FrontMatterDumper(yaml.SafeDumper):
    """Dumper for one field at a time: block lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


FrontMatterDumper.yaml_implicit_resolvers = _without_timestamps(
    yaml.SafeDumper.yaml_implicit_resolvers
)


class _DumpResolver(yaml.resolver.Resolver):
    """How the dumper tells which plain scalars would read back as something other than text."""


_DumpResolver.yaml_implicit_resolvers = FrontMatterDumper.yaml_implicit_resolvers
_RESOLVER = _DumpResolver()
# First characters of the values an implicit resolver may read as something other than text.
_RESOLVED_FIRST = frozenset(k for k in _DumpResolver.yaml_implicit_resolvers if k is not None)
# The resolvers Resolver.resolve tries for a value by its first character ("" for an empty
# value), those for any character (None) after them.
_ANY_FIRST = tuple(_DumpResolver.yaml_implicit_resolvers.get(None, []))
_IMPLICIT = {
    first: tuple(resolvers) + _ANY_FIRST
    for first, resolvers in _DumpResolver.yaml_implicit_resolvers.items()
    if first is not None
}


def load(text: str) -> Any:
    """Parse YAML text with the front-matter rules."""
    tidy = load_tidy(text)
    if tidy is not None:
        return tidy
    return yaml.load(text, Loader=FrontMatterLoader)  # noqa: S506 - a safe loader


def load_tidy(text: str) -> dict[str, Any] | None:
    """A header as memstore writes it (dump_field's plain lines), read without PyYAML; None for
    anything else, which PyYAML reads. Every value here is plain text that the dumper would
    write as it is and that reads back as that string, or a single-quoted string on one line,
    so the result is what PyYAML gives (about ten times faster: reading headers was most of a
    rebuild's and a `mem diff`'s parsing)."""
    if not text.endswith("\n") or "\r" in text:
        return None
    data: dict[str, Any] = {}
    items: list[str] | None = None  # the list a `key:` line opened
    as_itself = _reads_as_itself
    for line in text[:-1].split("\n"):
        if line[:4] == "  - ":
            item: str | None = line[4:]
            if line[4:5] == "'":
                item = _single_quoted(line[4:])
            elif not as_itself(line[4:]):
                return None
            if items is None or item is None:
                return None
            items.append(item)
            continue
        if items is not None and not items:
            return None  # `key:` with no items is null: PyYAML says so
        items = None
        if line[-1:] == ":":
            key, value = line[:-1], None
        else:
            key, sep, value = line.partition(": ")
            if not sep:
                return None
        if key in data or not _plain_key(key):
            return None
        if value is None:
            items = data[key] = []
        elif value[:1] == "'":
            quoted = _single_quoted(value)
            if quoted is None:
                return None
            data[key] = quoted
        elif as_itself(value):
            data[key] = value
        elif value == "[]":
            data[key] = []
        else:
            return None
    if items is not None and not items:
        return None
    return data


@functools.lru_cache(maxsize=256)
def _plain_key(key: str) -> bool:
    return _PLAIN_KEY.fullmatch(key) is not None and _reads_as_itself(key)


def _single_quoted(text: str) -> str | None:
    """The string a single-quoted scalar on one line reads as (what the dumper writes for a
    title such as `Decision: drop it`); None when it is not one."""
    quoted = _SINGLE_QUOTED.fullmatch(text)
    return None if quoted is None else quoted[1].replace("''", "'")


@functools.lru_cache(maxsize=4096)  # tags, types and sources repeat from file to file
def _reads_as_itself(value: str) -> bool:
    """Whether _plain(value) is value, asking the resolvers only when they could object."""
    if (
        len(value) > _PLAIN_MAX
        or _PLAIN.fullmatch(value) is None
        or ": " in value
        or value.endswith(":")
    ):
        return False
    # No implicit type starts so, or has a space (numbers, booleans, null): text.
    return value[0] not in _RESOLVED_FIRST or " " in value or _resolves_as_text(value)


# Text that PyYAML writes as a plain scalar, unquoted and unchanged, whenever it reads back as a
# string: ASCII words and the usual punctuation of titles, ids, dates and names, single spaces.
# A `#` inside a word (`C#`) is text: only one at the start or after a space begins a comment.
_PLAIN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.,:/@+()'#-]*(?: [A-Za-z0-9_.,:/@+()'-][A-Za-z0-9_.,:/@+()'#-]*)*"
)
# A single-quoted scalar on one line: printable ASCII, a quote written twice (`''`).
_SINGLE_QUOTED = re.compile(r"'((?:[ -&(-~]|'')*)'")
_PLAIN_MAX = 1000  # far below the dumper's line width, so that nothing wraps
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _plain(value: object) -> str | None:
    """The value as a plain YAML scalar when that is what the dumper would write; else None.

    A shortcut past PyYAML's pure-Python dumper (about 0.15 ms a field), which matters for bulk
    imports; a property test checks it against the dumper.
    """
    if (
        type(value) is not str
        or len(value) > _PLAIN_MAX
        or not _PLAIN.fullmatch(value)
        or ": " in value
        or value.endswith(":")
        or not _resolves_as_text(value)
    ):
        return None
    return value


def _resolves_as_text(value: str) -> bool:
    """What _RESOLVER.resolve(ScalarNode, value, (True, False)) == str tag says, without its
    pure-Python call chain: the implicit resolvers of value's first character (and those of
    any character), the first that matches deciding. None of them is the str tag."""
    for tag, regexp in _IMPLICIT.get(value[:1], _ANY_FIRST):
        if regexp.match(value):
            return tag == _STR_TAG
    return True


def dump_field(key: str, value: Any) -> str:
    """Render one top-level field as YAML lines ending in a newline."""
    if isinstance(value, list) and not value:
        return f"{key}: []\n"
    if _PLAIN_KEY.fullmatch(key):
        plain = _plain(value)
        if plain is not None:
            return f"{key}: {plain}\n"
        if type(value) is list:
            items = [_plain(item) for item in value]
            if None not in items:
                return f"{key}:\n" + "".join(f"  - {item}\n" for item in items)
    return dump_field_slowly(key, value)


def dump_field_slowly(key: str, value: Any) -> str:
    """Render one field with PyYAML's dumper, checking that it reads back as the same value."""
    if isinstance(value, list) and not value:
        return f"{key}: []\n"
    text = _dump({key: value}, allow_unicode=True)
    if _load_or_none(text) != {key: value}:
        # Some characters (NEL, line and paragraph separators) are line breaks to YAML: escape
        # everything outside ASCII rather than let them change the value on the way back.
        text = _dump({key: value}, allow_unicode=False)
        if _load_or_none(text) is None:
            # Lone surrogates (from arguments that were not UTF-8) have escapes YAML cannot read.
            from memstore.errors import InvalidInputError

            raise InvalidInputError(f"{key}: the value is not valid UTF-8 text: give UTF-8 text")
    return text


def _load_or_none(text: str) -> Any:
    try:
        return load(text)
    except yaml.YAMLError:
        return None


def _dump(data: dict[str, Any], allow_unicode: bool) -> str:
    return yaml.dump(
        data,
        Dumper=FrontMatterDumper,
        sort_keys=False,
        allow_unicode=allow_unicode,
        default_flow_style=False,
        width=10_000,
    )
