"""Edits of other tools' JSON and TOML configuration files that keep every other byte as it was.

A JSON file is parsed into a tree of value spans (where each value starts and ends in the text),
and an edit changes only the text of the member or item it adds, replaces or deletes: the user's
indentation, key order, spacing and other members keep their exact bytes. A member or item is
added after the last one, in the style of its siblings (one per line with their indentation, or
inline), and deleting it takes out exactly what adding it put in, so that adding then deleting
gives back the original text. A TOML file is edited by whole tables (`[name]` to the next
header), so comments and the rest of the file are never rewritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from memstore.errors import InvalidInputError

DEFAULT_INDENT = "  "


@dataclass
class Node:
    """A JSON value and where it is in the text: [start, end)."""

    start: int
    end: int
    kind: str  # "object", "array" or "scalar"
    # Objects: (key, where the key's string starts, value); arrays: (None, start, value).
    entries: list[tuple[str | None, int, Node]] = field(default_factory=list)

    def get(self, key: str) -> Node | None:
        """The value of key in an object (the last one, as JSON parsers keep), or None."""
        found = None
        for name, _, value in self.entries:
            if name == key:
                found = value
        return found

    def value(self, text: str) -> Any:
        return json.loads(text[self.start : self.end])


def parse_json(text: str, name: str) -> Node:
    """The tree of spans of a JSON text whose top level is an object; one-line error otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{name} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno});"
            " fix it or move it away, then run 'mem setup' again (nothing was changed)"
        ) from None
    except ValueError as error:  # text JSON cannot hold (a lone surrogate)
        raise InvalidInputError(
            f"{name} is not valid JSON: {error}; fix it or move it away, then run"
            " 'mem setup' again (nothing was changed)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{name} holds a JSON {type(data).__name__}, not an object; fix it or move it away,"
            " then run 'mem setup' again (nothing was changed)"
        )
    node, _ = _scan(text, _skip(text, 0))
    return node


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _scan(text: str, at: int) -> tuple[Node, int]:
    """The value starting at `at` (valid JSON, checked before) and the index after it."""
    opener = text[at]
    if opener in "{[":
        closer = "}" if opener == "{" else "]"
        node = Node(at, at, "object" if opener == "{" else "array")
        at = _skip(text, at + 1)
        while text[at] != closer:
            key = None
            entry_start = at
            if opener == "{":
                key_node, at = _scan(text, at)
                key = json.loads(text[key_node.start : key_node.end])
                at = _skip(text, _skip(text, at) + 1)  # the colon
            value, at = _scan(text, at)
            node.entries.append((key, entry_start, value))
            at = _skip(text, at)
            if text[at] == ",":
                at = _skip(text, at + 1)
        node.end = at + 1
        return node, at + 1
    if opener == '"':
        end = at + 1
        while text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        return Node(at, end + 1, "scalar"), end + 1
    end = at
    while end < len(text) and text[end] not in ",]} \t\r\n":
        end += 1
    return Node(at, end, "scalar"), end


def _indent_unit(text: str) -> str:
    found = re.search(r"\n([ \t]+)\S", text)
    return found.group(1) if found else DEFAULT_INDENT


def _line_indent(text: str, at: int) -> str | None:
    """The whitespace before `at` on its line, or None when something else precedes it."""
    line_start = text.rfind("\n", 0, at) + 1
    lead = text[line_start:at]
    return lead if lead.strip() == "" else None


def _render(value: Any, indent: str | None, unit: str, key: str | None) -> str:
    """A member (`"key": value`) or item, laid out one per line at indent, or inline (None)."""
    head = "" if key is None else json.dumps(key, ensure_ascii=False) + ": "
    if indent is None:
        return head + json.dumps(value, ensure_ascii=False)
    body = json.dumps(value, ensure_ascii=False, indent=unit)
    return head + body.replace("\n", "\n" + indent)


def add_entry(text: str, container: Node, value: Any, key: str | None = None) -> str:
    """text with value added as the last member (key) of an object, or last item of an array."""
    unit = _indent_unit(text)
    if container.entries:
        _, last_start, last = container.entries[-1]
        indent = _line_indent(text, last_start)
        separator = "," + ("\n" + indent if indent is not None else " ")
        return text[: last.end] + separator + _render(value, indent, unit, key) + text[last.end :]
    outer = _line_indent(text, container.start)
    if outer is None:  # the container starts after a key: take that line's indentation
        line_start = text.rfind("\n", 0, container.start) + 1
        outer = re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]
    inner = outer + unit
    return (
        text[: container.start + 1]
        + "\n"
        + inner
        + _render(value, inner, unit, key)
        + "\n"
        + outer
        + text[container.end - 1 :]
    )


def replace_value(text: str, node: Node, value: Any) -> str:
    """text with one value replaced, laid out like add_entry lays out a new one."""
    start = node.start
    line_start = text.rfind("\n", 0, start) + 1
    indent = re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]
    inline = "\n" not in text[node.start : node.end] and node.kind != "scalar"
    rendered = _render(value, None if inline else indent, _indent_unit(text), None)
    return text[:start] + rendered + text[node.end :]


def delete_entry(text: str, container: Node, index: int) -> str:
    """text without one member or item of container: exactly what add_entry put in, for the
    last one; an only entry leaves the container empty (`{}` or `[]`)."""
    entries = container.entries
    _, start, value = entries[index]
    if len(entries) == 1:
        return text[: container.start + 1] + text[container.end - 1 :]
    if index == len(entries) - 1:
        return text[: entries[index - 1][2].end] + text[value.end :]
    return text[:start] + text[entries[index + 1][1] :]


# TOML: whole tables.

_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)


def table_span(text: str, name: str) -> tuple[int, int] | None:
    """Where the table `[name]` (with its own subtables) is: from its header to its last
    key line, or None if there is no such header."""
    dotted = r"\s*\.\s*".join(
        rf'(?:{re.escape(part)}|"{re.escape(part)}")' for part in name.split(".")
    )
    header = re.compile(rf"^[ \t]*\[\s*{dotted}\s*\][ \t]*(?:#.*)?$", re.MULTILINE)
    found = header.search(text)
    if found is None:
        return None
    sub = re.compile(rf"[ \t]*\[\s*{dotted}\s*\.")
    end = len(text)
    for following in _HEADER.finditer(text, found.end()):
        if text.startswith("[[", following.end() - 1) or not sub.match(text, following.start()):
            end = following.start()
            break
    # Blank lines and comments before the next header belong to what follows.
    lines = text[found.start() : end].splitlines(keepends=True)
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return found.start(), found.start() + len("".join(lines))


def add_table(text: str, block: str) -> str:
    """text with a table appended at the end, after a blank line."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text else "") + block


def delete_table(text: str, span: tuple[int, int]) -> str:
    """text without a table: what add_table appended, blank line included."""
    start, end = span
    before, after = text[:start], text[end:]
    if not after.strip():
        after = ""
    if before.endswith("\n\n") and (not after or after.startswith("\n")):
        before = before[:-1]
    elif not before and after.startswith("\n"):
        after = after[1:]
    return before + after
