"""Three-way merges of memory files: pure functions, no I/O.

`merge_memory(base, ours, theirs)` merges the bytes of one memory file as changed on two sides
since a common ancestor. The header is merged field by field (`tags`, `links` and `supersedes` as
sets with three-way add and remove; every other field three-way as a whole value), the body line by
line with a diff3 over lines. What cannot be merged is kept from both sides, in a valid file,
inside conflict blocks made of HTML comments (valid Markdown) and flagged with `conflict: true` in
the header; see docs/sync.md.

Every rule is symmetric: the two sides are put in a canonical order (by their bytes) before
anything else, and the versions inside a conflict block are sorted by their text, so merging
A into B gives the same bytes as merging B into A. That is what makes replicas converge whatever
order they sync in.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from memstore.errors import MalformedMemoryError
from memstore.memory import FENCE, FIELD_ORDER, Memory, parse, same_value

CONFLICT_KEY = "conflict"
SET_FIELDS = ("tags", "links", "supersedes")
BLOCK_START = "<!-- mem:conflict {what} -->"
BLOCK_VERSION = "<!-- mem:version {number} -->"
BLOCK_END = "<!-- mem:end -->"
_START = re.compile(r"^<!-- mem:conflict (?P<what>[^\s>]+) -->\s*$")
_VERSION = re.compile(r"^<!-- mem:version (?P<number>\d+) -->\s*$")
_END = re.compile(r"^<!-- mem:end -->\s*$")
_FLAG = re.compile(rb"^conflict:[ \t]*true[ \t]*\r?$", re.MULTILINE)
_MISSING: Any = object()


@dataclass(frozen=True)
class MergeResult:
    """The merged bytes, and whether they hold a conflict someone must look at."""

    data: bytes
    conflict: bool


def merge_memory(base: bytes | None, ours: bytes, theirs: bytes, path: str = "") -> MergeResult:
    """Merge two versions of a memory file against their common ancestor (None: none)."""
    first, second = sorted((ours, theirs))
    if first == second:
        return MergeResult(first, has_conflict(first))
    if base == first:
        return MergeResult(second, has_conflict(second))
    if base == second:
        return MergeResult(first, has_conflict(first))
    try:
        mine, other = parse(first, path), parse(second, path)
        ancestor = parse(base, path) if base is not None else None
    except MalformedMemoryError:
        return _merge_text(base, first, second)
    if mine.blocks is None or other.blocks is None:
        return _merge_text(base, first, second)
    return _merge_parsed(ancestor, mine, other)


def has_conflict(data: bytes) -> bool:
    """Whether a memory file is flagged `conflict: true` or still holds a conflict block."""
    header, body = _split(data)
    if _FLAG.search(header):
        return True
    return any(_START.match(line) for line in body.decode("utf-8", "replace").splitlines())


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Header and body bytes, without parsing YAML (the whole file as body if unfenced)."""
    lines = data.split(b"\n")
    if not lines or lines[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf") != FENCE.encode():
        return b"", data
    for number in range(1, len(lines)):
        if lines[number].rstrip(b"\r") == FENCE.encode():
            return b"\n".join(lines[1:number]), b"\n".join(lines[number + 1 :])
    return b"", data


# The header


def _merge_parsed(base: Memory | None, first: Memory, second: Memory) -> MergeResult:
    nl = first.newline
    conflict = False
    field_blocks: list[str] = []
    base_fields = base.fields if base is not None else {}
    keys = list(first.fields) + [k for k in second.fields if k not in first.fields]
    merged: dict[str, Any] = {}
    chosen_text: dict[str, str] = {}
    first_blocks = {b.key: b for b in first.blocks or [] if b.key}
    second_blocks = {b.key: b for b in second.blocks or [] if b.key}
    for key in keys:
        if key == CONFLICT_KEY:
            continue
        a = first.fields.get(key, _MISSING)
        b = second.fields.get(key, _MISSING)
        o = base_fields.get(key, _MISSING)
        value, origin = _merge_value(key, o, a, b)
        if origin == "conflict":
            conflict = True
            field_blocks.append(_field_block(key, a, b, nl))
            # The header keeps the version whose text sorts first: the block's version 1.
            value = _field_versions(key, a, b)[0][1]
        if value is _MISSING:
            continue
        merged[key] = value
        for blocks, side in ((first_blocks, a), (second_blocks, b)):
            block = blocks.get(key)
            if block is not None and side is not _MISSING and _same(side, value):
                chosen_text[key] = block.text
                break
    body, body_conflict = merge_lines(
        base.body if base is not None else None, first.body, second.body, nl
    )
    if field_blocks:
        if body and not body.endswith(("\n", "\r")):
            body += nl
        body += "".join(field_blocks)
    conflict = conflict or body_conflict
    flag = _merge_flag(base_fields, first.fields, second.fields)
    if conflict or flag or any(_START.match(line) for line in body.splitlines()):
        merged[CONFLICT_KEY] = True
    text = _render_header(first, second, merged, chosen_text, nl) + body
    data = text.encode("utf-8")
    return MergeResult(data, CONFLICT_KEY in merged)


def _merge_flag(base: dict[str, Any], first: dict[str, Any], second: dict[str, Any]) -> bool:
    a, b, o = (d.get(CONFLICT_KEY) is True for d in (first, second, base))
    if a == b:
        return a
    return a if b == o else b


def _merge_value(key: str, o: Any, a: Any, b: Any) -> tuple[Any, str]:
    """The merged value of one field, and 'clean' or 'conflict'."""
    if _same(a, b):
        return a, "clean"
    if _same(a, o):
        if b is _MISSING and key in FIELD_ORDER[:5]:
            return a, "clean"  # a required field cannot be removed by a merge
        return b, "clean"
    if _same(b, o):
        if a is _MISSING and key in FIELD_ORDER[:5]:
            return b, "clean"
        return a, "clean"
    if key in SET_FIELDS and all(_listish(v) for v in (o, a, b)):
        return _merge_set(o, a, b), "clean"
    if a is _MISSING:  # changed on one side, removed on the other: the change wins
        return b, "clean"
    if b is _MISSING:
        return a, "clean"
    return _MISSING, "conflict"


def _listish(value: Any) -> bool:
    return value is _MISSING or value is None or isinstance(value, list | str)


def _as_list(value: Any) -> list[Any]:
    if value is _MISSING or value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _merge_set(o: Any, a: Any, b: Any) -> Any:
    """Three-way set merge: an item stays unless one side removed it; additions are kept."""
    base, left, right = _as_list(o), _as_list(a), _as_list(b)
    result: list[Any] = []
    for item in left + right:
        if item in result:
            continue
        in_left, in_right, in_base = item in left, item in right, item in base
        if (in_left and in_right) or not in_base:
            result.append(item)
    if isinstance(a, list) or isinstance(b, list) or len(result) != 1:
        return result
    return result[0]


def _field_versions(key: str, a: Any, b: Any) -> list[tuple[str, Any]]:
    from memstore import yamlrules

    versions = [(yamlrules.dump_field(key, v), v) for v in (a, b)]
    return sorted(versions, key=lambda item: item[0])


def _field_block(key: str, a: Any, b: Any, nl: str) -> str:
    lines = [BLOCK_START.format(what=key) + nl]
    for number, (text, _) in enumerate(_field_versions(key, a, b), start=1):
        lines.append(BLOCK_VERSION.format(number=number) + nl)
        lines.append(text.replace("\n", nl) if nl != "\n" else text)
    lines.append(BLOCK_END + nl)
    return "".join(lines)


def _render_header(
    first: Memory,
    second: Memory,
    merged: dict[str, Any],
    chosen_text: dict[str, str],
    nl: str,
) -> str:
    from memstore import yamlrules

    order = [k for k in first.fields if k in merged]
    for key in second.fields:
        if key in merged and key not in order:
            order.append(key)
    if CONFLICT_KEY in merged and CONFLICT_KEY not in order:
        order.append(CONFLICT_KEY)
    preamble = first.blocks[0].text if first.blocks else ""
    parts = [FENCE + nl, preamble]
    for key in order:
        text = chosen_text.get(key)
        if text is None:
            text = yamlrules.dump_field(key, merged[key])
            text = text.replace("\n", nl) if nl != "\n" else text
        parts.append(text)
    parts.append(FENCE + nl)
    return "".join(parts)


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return same_value(a, b)


# The body


def merge_lines(base: str | None, first: str, second: str, nl: str = "\n") -> tuple[str, bool]:
    """A three-way merge of lines; returns the merged text and whether a conflict block was written.

    Each side's changes are hunks against the base. Hunks of the two sides that touch different
    base lines apply both, even when the lines are adjacent (where git's merge gives up); hunks that
    touch the same lines are merged line by line when they keep the line count, and otherwise
    kept both, in a conflict block.
    """
    o = _lines(base or "")
    a, b = _lines(first), _lines(second)
    out: list[str] = []
    conflict = False
    position = 0
    for cluster in _clusters(_hunks(o, a, 0) + _hunks(o, b, 1)):
        start = min(h[0] for h in cluster)
        end = max(h[1] for h in cluster)
        out.extend(o[position:start])
        position = end
        oc = o[start:end]
        ac = _apply(o, [h for h in cluster if h[3] == 0], start, end)
        bc = _apply(o, [h for h in cluster if h[3] == 1], start, end)
        if ac == bc or bc == oc:
            out.extend(ac)
        elif ac == oc:
            out.extend(bc)
        elif not oc:
            out.extend(_both_insertions(ac, bc))
        elif len(oc) == len(ac) == len(bc):
            conflict |= _line_by_line(oc, ac, bc, out, nl)
        else:
            out.append(_conflict_block(ac, bc, nl))
            conflict = True
    out.extend(o[position:])
    return "".join(out), conflict


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


Hunk = tuple[int, int, list[str], int]  # base start, base end, new lines, side


def _hunks(o: list[str], x: list[str], side: int) -> list[Hunk]:
    matcher = difflib.SequenceMatcher(None, o, x, autojunk=False)
    return [
        (i1, i2, x[j1:j2], side) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    ]


def _overlap(h1: Hunk, h2: Hunk) -> bool:
    """Whether two hunks touch the same base lines (or insert at the same place)."""
    s1, e1, s2, e2 = h1[0], h1[1], h2[0], h2[1]
    if s1 < e2 and s2 < e1:
        return True
    if s1 == e1 and s2 == e2:
        return s1 == s2
    if s1 == e1:
        return s2 < s1 < e2
    if s2 == e2:
        return s1 < s2 < e1
    return False


def _clusters(hunks: list[Hunk]) -> list[list[Hunk]]:
    """Group hunks that overlap, directly or through others, in base order."""
    clusters: list[list[Hunk]] = []
    for hunk in sorted(hunks, key=lambda h: (h[0], h[1], h[3])):
        if clusters and any(_overlap(hunk, other) for other in clusters[-1]):
            clusters[-1].append(hunk)
        else:
            clusters.append([hunk])
    return clusters


def _apply(o: list[str], hunks: list[Hunk], start: int, end: int) -> list[str]:
    result: list[str] = []
    position = start
    for hunk_start, hunk_end, lines, _ in sorted(hunks, key=lambda h: (h[0], h[1])):
        result.extend(o[position:hunk_start])
        result.extend(lines)
        position = hunk_end
    result.extend(o[position:end])
    return result


def _both_insertions(a: list[str], b: list[str]) -> list[str]:
    """Both sides added lines at the same place: keep both, the shared part once."""
    if a[: len(b)] == b or a[-len(b) :] == b:
        return a
    if b[: len(a)] == a or b[-len(a) :] == a:
        return b
    first, second = sorted((a, b), key="".join)
    return _ended(first) + second


def _line_by_line(o: list[str], a: list[str], b: list[str], out: list[str], nl: str) -> bool:
    """Equal-length changes: merge each line on its own; runs of clashing lines become blocks."""
    clash_a: list[str] = []
    clash_b: list[str] = []
    conflict = False

    def flush() -> None:
        nonlocal conflict
        if clash_a:
            out.append(_conflict_block(clash_a[:], clash_b[:], nl))
            clash_a.clear()
            clash_b.clear()
            conflict = True

    for line_o, line_a, line_b in zip(o, a, b, strict=True):
        if line_a == line_b or line_b == line_o:
            flush()
            out.append(line_a)
        elif line_a == line_o:
            flush()
            out.append(line_b)
        else:
            clash_a.append(line_a)
            clash_b.append(line_b)
    flush()
    return conflict


def _ended(lines: list[str], nl: str = "\n") -> list[str]:
    if lines and not lines[-1].endswith(("\n", "\r")):
        return [*lines[:-1], lines[-1] + nl]
    return lines


def _conflict_block(a: list[str], b: list[str], nl: str, what: str = "body") -> str:
    versions = sorted(("".join(_ended(a, nl)), "".join(_ended(b, nl))))
    parts = [BLOCK_START.format(what=what) + nl]
    for number, text in enumerate(versions, start=1):
        parts.append(BLOCK_VERSION.format(number=number) + nl)
        parts.append(text)
    parts.append(BLOCK_END + nl)
    return "".join(parts)


# Files that do not parse as memories


def _merge_text(base: bytes | None, first: bytes, second: bytes) -> MergeResult:
    """A line merge of the whole file for files that are not valid memories."""

    def text(data: bytes | None) -> str:
        return "" if data is None else data.decode("utf-8", "surrogateescape")

    merged, conflict = merge_lines(text(base), text(first), text(second))
    return MergeResult(merged.encode("utf-8", "surrogateescape"), conflict)


# Resolving


@dataclass
class Block:
    """One conflict block of a body: what conflicted and the versions, as text."""

    what: str
    versions: list[str]
    start: int
    end: int


def conflict_blocks(body: str) -> list[Block]:
    """The outermost conflict blocks of a body (nested ones stay inside their versions)."""
    lines = body.splitlines(keepends=True)
    blocks: list[Block] = []
    depth = 0
    current: Block | None = None
    for number, line in enumerate(lines):
        start = _START.match(line)
        if start:
            depth += 1
            if depth == 1:
                current = Block(start["what"], [], number, number)
                continue
        elif _END.match(line) and depth:
            depth -= 1
            if depth == 0 and current is not None:
                current.end = number
                blocks.append(current)
                current = None
                continue
        elif _VERSION.match(line) and depth == 1 and current is not None:
            current.versions.append("")
            continue
        if depth and current is not None and current.versions:
            current.versions[-1] += line
    return blocks


def resolve_body(body: str, keep: str) -> tuple[str, dict[str, str]]:
    """Drop the conflict blocks of a body keeping version 1, 2 or both ('1', '2', 'both').

    Returns the new body and, for field blocks, the YAML text of the version to put back in the
    header.
    """
    lines = body.splitlines(keepends=True)
    out: list[str] = []
    fields: dict[str, str] = {}
    cursor = 0
    for block in conflict_blocks(body):
        out.extend(lines[cursor : block.start])
        cursor = block.end + 1
        if block.what == "body":
            if keep == "both":
                out.extend(block.versions)
            else:
                index = int(keep) - 1
                if index < len(block.versions):
                    out.append(block.versions[index])
        elif keep == "2" and len(block.versions) > 1:
            fields[block.what] = block.versions[1]
    out.extend(lines[cursor:])
    return "".join(out), fields


def resolve_memory(data: bytes, keep: str | None, path: str = "") -> bytes:
    """A memory's bytes with its conflict cleared: blocks settled by `keep`, the flag removed.

    Without `keep`, the file must hold no conflict block any more (the person removed them);
    otherwise ConflictError says where they are.
    """
    from memstore.errors import ConflictError, InvalidInputError
    from memstore.memory import parse

    if keep not in (None, "1", "2", "both"):
        raise InvalidInputError(f"--keep takes 1, 2 or both, not {keep!r}")
    memory = parse(data, path)
    blocks = conflict_blocks(memory.body)
    if blocks and keep is None:
        lines = memory.body.splitlines()
        first = len(memory.header_lines or []) + 3 + blocks[0].start
        raise ConflictError(
            f"{path}:{first}: {len(blocks)} conflict block(s) left ({lines[blocks[0].start]}):"
            " edit the file to keep the text you want, or choose with --keep 1, 2 or both"
        )
    from memstore import yamlrules

    while blocks:  # nested blocks come out one level at a time
        body, fields = resolve_body(memory.body, keep or "both")
        memory.body = body
        for key, text in fields.items():
            loaded = yamlrules.load(text) if text.strip() else None
            if isinstance(loaded, dict) and key in loaded:
                memory.fields[key] = loaded[key]
        blocks = conflict_blocks(memory.body)
    memory.fields.pop(CONFLICT_KEY, None)
    return memory.to_bytes()
