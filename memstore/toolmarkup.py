"""Tool-call markup leaked from a model into a value it saves.

A model calls a tool by writing its arguments in some markup: XML-like tags named after each
parameter, or generic parameter and invoke tags. When that markup is misread, one argument's value
runs past its end and swallows the markup that should have closed it, often with the arguments
after it: a title that ends with a closing title tag followed by the memory's text, or a text that
holds a closing parameter tag and the opening of the next parameter. Saved as it is, the memory is
wrong and the other arguments are lost; the MCP server refuses it and tells the model what happened,
so that it calls the tool again.

The rule looks only outside Markdown code (fenced blocks and code spans), so that a note can quote
any markup in code, and it takes two shapes of markup:

- the tags of tool-call syntaxes themselves, anywhere: a `parameter` tag (`name="x"` or `=x`),
  an `invoke` tag, a `function_calls` or `tool_call` tag, a `function=` tag or its closing tag, or
  any tag in the `antml:` namespace. Plain HTML and XML have no such tags.
- a closing tag named after one of the tool's own parameters (a closing `title` tag, for a tool
  that takes `title`) that nothing before it in the value opened, and that ends the value or its
  line or is followed by another tag: the shape of a value that ran past its end. A balanced
  `<title>A page` … closing tag in a note about HTML stays, and so does one mentioned mid-sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from memstore.errors import InvalidInputError
from memstore.text import lead

# The tags of tool-call syntaxes: never part of HTML or of a usual XML vocabulary.
_CALL_TAG = re.compile(
    r"</?(?:[A-Za-z_][\w-]*:)?(?:parameter|invoke|function_calls|tool_call)(?=[\s=>/])[^<>\n]*>?"
    r"|</?function(?=[=>])[^<>\n]*>?"
    r"|</?antml:[\w-]+[^<>\n]*>?",
    re.IGNORECASE,
)
# A parameter named after the markup that swallowed it: name="x", =x, or a tag <x>.
_NAMED = re.compile(r"""(?:\bname\s*=\s*["']?|<[\w:-]*parameter=|<)([A-Za-z_]\w*)""")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")
EXCERPT = 60  # characters of the swallowed text quoted in the error


@dataclass
class Leak:
    """Markup found in a value, and the text after it (what the value swallowed)."""

    field: str
    markup: str
    swallowed: str
    parameter: str | None  # the other parameter the swallowed text seems to belong to

    def message(self, tool: str) -> str:
        """The error for the model: what was found where, and to call the tool again."""
        retry = (
            f"call {tool} again with each value in its own argument"
            " (markup meant for the memory goes in `code`)"
        )
        if not self.swallowed:
            return f"{self.field} ends with leaked tool-call markup {self.markup!r}: {retry}"
        what = f"the {self.parameter} argument" if self.parameter else "another argument"
        excerpt = lead(self.swallowed, EXCERPT)
        return (
            f"{self.field} holds leaked tool-call markup {self.markup!r} followed by"
            f" {len(self.swallowed)} characters that look like {what} ({excerpt!r}): {retry}"
        )


def outside_code(text: str) -> str:
    """text with its fenced code blocks and code spans blanked (same length, same lines).

    A fence that is never closed does not count: markup after it is still looked at.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    block: list[str] = []
    fence: str | None = None
    for line in lines:
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                fence, block = opening.group(1), [line]
            else:
                out.append(_SPAN.sub(_blank, line))
            continue
        block.append(line)
        if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
            out.extend(_blank_text(part) for part in block)
            fence, block = None, []
    out.extend(_SPAN.sub(_blank, line) for line in block)  # an unclosed fence: not code
    return "".join(out)


def _blank(match: re.Match[str]) -> str:
    return _blank_text(match.group(0))


def _blank_text(text: str) -> str:
    return "".join(c if c == "\n" else " " for c in text)


def find_leak(field: str, value: str, parameters: Iterable[str]) -> Leak | None:
    """The first leaked tool-call markup in value (an argument of a tool with these parameters)."""
    names = [name for name in parameters if name]
    visible = outside_code(value)
    found: list[tuple[int, int]] = [m.span() for m in _CALL_TAG.finditer(visible)]
    for name in names:
        escaped = re.escape(name)
        opening = re.compile(rf"<{escaped}(?=[\s>/])[^<>]*>", re.IGNORECASE)
        closing = re.compile(rf"</{escaped}\s*>", re.IGNORECASE)
        for match in closing.finditer(visible):
            before = visible[: match.start()]
            opened = len(opening.findall(before)) - len(closing.findall(before))
            if opened <= 0 and _runs_on(visible[match.end() :]):
                found.append(match.span())
                break
    if not found:
        return None
    start, end = min(found)
    swallowed = value[end:].strip()
    return Leak(field, value[start:end], swallowed, _parameter(swallowed, names, field))


def _runs_on(rest: str) -> bool:
    """Whether what follows a closing tag looks like a value that ran on: nothing, a line break,
    or another tag."""
    rest = rest.lstrip(" \t")
    return not rest.strip() or rest[0] in "\r\n<"


def _parameter(swallowed: str, names: list[str], field: str) -> str | None:
    for match in _NAMED.finditer(swallowed[:200]):
        if match.group(1) in names and match.group(1) != field:
            return match.group(1)
    return None


def check(tool: str, values: Mapping[str, object], parameters: Iterable[str]) -> None:
    """Refuse values (text, or lists of text) that carry leaked tool-call markup."""
    names = list(parameters)
    for field, value in values.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                leak = find_leak(field, item, names)
                if leak is not None:
                    raise InvalidInputError(leak.message(tool))
