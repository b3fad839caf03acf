"""The YAML rules memstore reads and writes front-matter with.

One loader and one dumper, so that what is written reads back as the same value. Timestamps stay
strings (``created: 2026-11-21T10:55:17+01:00`` is text the schema checks, not a datetime that
PyYAML would re-format on the way out); everything else follows YAML 1.1 as PyYAML does.
"""

from __future__ import annotations

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


def load(text: str) -> Any:
    """Parse YAML text with the front-matter rules."""
    return yaml.load(text, Loader=FrontMatterLoader)  # noqa: S506 - a safe loader


def dump_field(key: str, value: Any) -> str:
    """Render one top-level field as YAML lines ending in a newline."""
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
