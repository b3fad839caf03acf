"""Check a memory's front-matter against the JSON Schema and say where each problem is.

Problems come back as ``(line, message)`` pairs, the line being the file line of the offending key
or list item, so ``mem check`` can print them as ``path:line: message`` for people editing by hand.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from memstore.yamlrules import FrontMatterComposer

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_NAME = "memory.schema.json"

ID_HINT = "26 lowercase Crockford base32 characters"
TIMESTAMP_EXAMPLE = "2026-11-21T10:55:17+01:00"
TYPE_HINT = (
    "a lowercase word: note, decision, fact, preference, procedure, event or your own,"
    " made of letters, digits, '_' and '-'"
)
LIST_HINT = "one '- item' per line, or [] for none"
JSON_TYPE_NAMES = {"string": "a string", "array": "a list", "object": "a mapping"}
# Fields whose values (or list items) are memory ids.
ID_FIELDS = ("id", "links", "supersedes")


def schema_path() -> Path:
    """Return the path of memory.schema.json, in an installed wheel or a source checkout."""
    packaged = Path(__file__).parent / "schema" / SCHEMA_NAME
    if packaged.exists():
        return packaged
    return Path(__file__).parent.parent / "schema" / SCHEMA_NAME


@functools.cache
def load_schema() -> dict[str, Any]:
    """Return the front-matter JSON Schema, read from disk once."""
    with schema_path().open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    # Imported here: jsonschema is slow to import and only checking needs it.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


@functools.cache
def schema_digest() -> str:
    """A digest of the schema: checks kept from before (checkcache) hold under this one only."""
    import hashlib

    return hashlib.sha1(json.dumps(load_schema(), sort_keys=True).encode()).hexdigest()[:16]


def fields_valid(fields: dict[str, Any]) -> bool:
    """Tell quickly whether loaded header fields pass the schema (no messages, no lines)."""
    return bool(_validator().is_valid(fields))


def validate_header(header_text: str, first_line: int) -> list[tuple[int, str]]:
    """Validate one file's YAML header; return (file line, message) problems sorted by line."""
    if _clean(header_text):
        return []
    try:
        # The reader checks for unprintable characters as soon as it is made.
        loader = FrontMatterComposer(header_text)
    except yaml.YAMLError as error:
        return [(_yaml_error_line(error, header_text, first_line), _yaml_message(error))]
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as error:
            return [(_yaml_error_line(error, header_text, first_line), _yaml_message(error))]
        duplicates = _duplicate_keys(root, first_line) if root is not None else []
        try:
            data = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError as error:
            return [(_yaml_error_line(error, header_text, first_line), _yaml_message(error))]
        except Exception as error:  # PyYAML lets e.g. ValueError escape from `!!int abc`
            return [(first_line, f"invalid YAML value: {error}")]
    finally:
        loader.dispose()

    if root is None or data is None:
        required = ", ".join(load_schema().get("required", []))
        return [(first_line, f"front-matter is empty (required fields: {required})")]
    if not isinstance(data, dict):
        return [
            (
                first_line + root.start_mark.line,
                f"front-matter must be a mapping of 'field: value' lines, not {_kind(data)}",
            )
        ]

    problems = list(duplicates)
    for schema_error in _validator().iter_errors(data):
        problems.extend(_describe(schema_error, root, header_text, first_line))
    # Keep the first of identical problems (e.g. '' fails both minLength and pattern).
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: problem[0])


def _clean(header_text: str) -> bool:
    """Tell quickly (libyaml, about 20 times faster) that a header has no problem at all.

    Only a clean header is decided here: anything else, or any doubt, goes the pure-Python way
    above, which says where each problem is. Its reader refuses characters libyaml may let
    through, so those are looked for first.
    """
    from memstore.yamlrules import FrontMatterLoader

    if yaml.reader.Reader.NON_PRINTABLE.search(header_text):
        return False
    try:
        loader = FrontMatterLoader(header_text)
        try:
            root = loader.get_single_node()
            if not isinstance(root, yaml.MappingNode) or _duplicate_keys(root, 0):
                return False
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except Exception:  # noqa: BLE001 - any failure is for the slow way to describe
        return False
    return isinstance(data, dict) and bool(data) and fields_valid(data)


# YAML errors


def _yaml_error_line(error: yaml.YAMLError, header_text: str, first_line: int) -> int:
    last = max(header_text.count("\n") - (1 if header_text.endswith("\n") else 0), 0)
    if isinstance(error, yaml.MarkedYAMLError):
        for mark in (error.problem_mark, error.context_mark):
            # A problem found at the end of the text (an unclosed quote or bracket) is better
            # shown where the construct began than on the closing fence.
            if mark is not None and mark.line <= last:
                return first_line + mark.line
        return first_line + last
    position = getattr(error, "position", None)
    if isinstance(position, int):
        return first_line + min(header_text[:position].count("\n"), last)
    return first_line


def _yaml_message(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or "invalid YAML"
        if "'\\t'" in problem:
            return "invalid YAML: a tab cannot be used here (indent and separate with spaces)"
        context = f" ({error.context})" if error.context else ""
        return f"invalid YAML: {problem}{context}"
    if isinstance(error, yaml.reader.ReaderError):
        character = error.character
        code = f"U+{character:04X}" if isinstance(character, int) else repr(character)
        return f"invalid YAML: character {code} is not allowed in a YAML file"
    return f"invalid YAML: {error}"


def _duplicate_keys(root: yaml.Node, first_line: int) -> list[tuple[int, str]]:
    """Report top-level keys written twice: YAML keeps only the last, silently."""
    if not isinstance(root, yaml.MappingNode):
        return []
    seen: dict[str, int] = {}
    problems = []
    for key_node, _ in root.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
            continue
        line = first_line + key_node.start_mark.line
        if key_node.value in seen:
            problems.append(
                (
                    line,
                    f"duplicate field {key_node.value!r} (also on line {seen[key_node.value]});"
                    " only the last one counts",
                )
            )
        else:
            seen[key_node.value] = line
    return problems


# Schema errors


def _locate(root: yaml.Node, path: Sequence[Any]) -> tuple[int | None, yaml.Node | None]:
    """Follow a JSON path through the YAML nodes: (0-based line of the last key or item, node)."""
    line: int | None = None
    node: yaml.Node | None = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            # The last of duplicate keys is the one YAML keeps.
            for key_node, value_node in reversed(node.value):
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    line, node = key_node.start_mark.line, value_node
                    break
            else:
                return line, None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line, None
            node = node.value[part]
            line = node.start_mark.line
        else:
            return line, None
    return line, node


def _label(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _plain_text(node: yaml.Node | None, header_text: str) -> str | None:
    """The source text of an unquoted, untagged scalar, which quoting would turn into a string."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    if header_text.startswith("!", node.start_mark.index):
        return None
    return str(node.value)


def _describe(
    error: ValidationError, root: yaml.Node, header_text: str, first_line: int
) -> list[tuple[int, str]]:
    path = list(error.absolute_path)
    line, node = _locate(root, path)
    at = first_line + (line if line is not None else 0)
    label = _label(path)
    field = path[0] if path else None
    value: Any = error.instance  # typed "Any | Unset" by recent jsonschema stubs
    kind = error.validator

    if kind == "required":
        required: Any = error.validator_value
        missing = [name for name in required if name not in value]
        return [(first_line, f"missing required field {name!r}") for name in missing]
    if kind == "uniqueItems" and isinstance(value, list):
        return _duplicate_items(value, path, root, first_line) or [
            (at, f"{label}: items must not repeat")
        ]
    if kind == "type":
        return [(at, _type_message(label, field, value, error.validator_value, node, header_text))]
    if kind in ("minLength", "pattern"):
        return [(at, _value_message(label, field, path, value, kind))]
    return [(at, f"{label}: {error.message}" if label else error.message)]


def _type_message(
    label: str, field: Any, value: Any, expected: Any, node: yaml.Node | None, header_text: str
) -> str:
    wanted = [expected] if isinstance(expected, str) else list(expected)
    raw = _plain_text(node, header_text)
    if field == "supersedes" and label == "supersedes":
        return f"{label}: must be a memory id or a list of memory ids, not {_kind(value)}"
    if "array" in wanted:
        return f"{label}: must be a list ({LIST_HINT}), not {_kind(value)}"
    if value is None and not raw:
        return f"{label}: must not be empty"
    if "string" in wanted and raw:
        # An unquoted yes, 12 or null is read as a boolean, number or nothing, not text.
        return f"{label}: {raw} is read as {_kind(value)}; put it in quotes"
    expected_name = " or ".join(JSON_TYPE_NAMES.get(name, name) for name in wanted)
    return f"{label}: must be {expected_name}, not {_kind(value)}"


def _value_message(label: str, field: Any, path: list[Any], value: Any, kind: str) -> str:
    if field in ID_FIELDS:
        return f"{label}: {value!r} is not a valid memory id ({ID_HINT})"
    if field == "created":
        return (
            f"{label}: {value!r} is not an ISO 8601 timestamp with seconds and an offset"
            f" (e.g. {TIMESTAMP_EXAMPLE})"
        )
    if field == "expires":
        return (
            f"{label}: {value!r} is not an ISO date or timestamp"
            f" (e.g. 2027-01-31 or {TIMESTAMP_EXAMPLE})"
        )
    if field == "type":
        return f"{label}: {value!r} is not a valid type ({TYPE_HINT})"
    if field == "tags" and len(path) == 2 and kind == "pattern":
        return f"{label}: {value!r} must not contain spaces or commas"
    if kind == "minLength" or (field == "title" and not value.strip()):
        return f"{label}: must not be empty"
    return f"{label}: {value!r} is not valid"


def _duplicate_items(
    items: list[Any], path: list[Any], root: yaml.Node, first_line: int
) -> list[tuple[int, str]]:
    problems = []
    for index, item in enumerate(items):
        # Compare type too, so that True and 1 count as different, as in JSON.
        if any(type(item) is type(earlier) and item == earlier for earlier in items[:index]):
            line, _ = _locate(root, [*path, index])
            problems.append(
                (
                    first_line + (line or 0),
                    f"{_label([*path, index])}: {item!r} is listed more than once",
                )
            )
    return problems
