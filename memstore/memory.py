"""One memory: a Markdown file with a YAML front-matter header, read strictly, written tidily.

Writing keeps every unchanged field's exact bytes (comments and spacing included) and the order
of the keys; only a field whose value changed is re-rendered, with fixed YAML options.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from memstore import ids
from memstore.errors import InvalidInputError, MalformedMemoryError

MEMORY_DIR = "memories"
SUFFIX = ".md"
# An encrypted memory: the whole file, header and body, as age ciphertext (docs/encryption.md).
ENCRYPTED_SUFFIX = ".md.age"
KNOWN_TYPES = ("note", "decision", "fact", "preference", "procedure", "event")
# The order memstore writes its own fields in; unknown keys follow in their own order.
FIELD_ORDER = (
    "id",
    "title",
    "type",
    "tags",
    "created",
    "source",
    "session",
    "links",
    "supersedes",
    "expires",
)
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
TAG_FORBIDDEN = re.compile(r"[\s,]")
TITLE_MAX = 80
SLUG_MAX = 50
# Limits that keep every command fast on hostile or accidental input: a memory file over
# MAX_FILE_BYTES or a header over MAX_HEADER_BYTES is refused by the parser (so the index
# skips it with a warning and `mem check` reports it), and a write over the limit is refused.
MAX_FILE_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 << 10
MAX_TAGS = 1000
FENCE = "---"
# A top-level key starts at column 0 with something that is not a comment, list item or space.
_BLOCK_START = re.compile(r"^[^\s#\-]|^-[^\s]")


@dataclass
class HeaderBlock:
    """The exact text of one top-level field (with the comments and blank lines that follow it)."""

    key: str | None  # None for comments before the first field
    text: str
    value: Any = None


@dataclass
class Memory:
    """A memory as read from (or about to be written to) its file."""

    path: str
    fields: dict[str, Any]
    body: str
    newline: str = "\n"
    raw: bytes | None = field(default=None, repr=False)
    header_lines: list[str] | None = field(default=None, repr=False)
    original_keys: tuple[str, ...] = field(default=(), repr=False)
    _blocks: list[HeaderBlock] | None = field(default=None, repr=False)

    @property
    def blocks(self) -> list[HeaderBlock] | None:
        """The header cut into fields with their exact text; worked out only when writing."""
        if self._blocks is None and self.header_lines is not None:
            self._blocks = _split_blocks(self.header_lines, self.original_keys)
        return self._blocks

    @property
    def id(self) -> str:
        value = self.fields.get("id")
        return value if isinstance(value, str) else ""

    @property
    def title(self) -> str:
        value = self.fields.get("title")
        return "" if value is None else str(value)

    @property
    def type(self) -> str:
        value = self.fields.get("type")
        return "note" if value is None else str(value)

    @property
    def tags(self) -> list[str]:
        return _string_list(self.fields.get("tags"))

    @property
    def links(self) -> list[str]:
        return _string_list(self.fields.get("links"))

    @property
    def supersedes(self) -> list[str]:
        return _string_list(self.fields.get("supersedes"))

    @property
    def source(self) -> str:
        value = self.fields.get("source")
        return "" if value is None else str(value)

    @property
    def session(self) -> str:
        """The conversation or work session the memory was recorded in ('' if none)."""
        value = self.fields.get("session")
        return "" if value is None else str(value)

    @property
    def created(self) -> datetime | None:
        return parse_timestamp(self.fields.get("created"))

    @property
    def created_text(self) -> str:
        value = self.fields.get("created")
        return "" if value is None else str(value)

    @property
    def extra(self) -> dict[str, Any]:
        """Fields memstore does not define, kept as they are."""
        return {k: v for k, v in self.fields.items() if k not in FIELD_ORDER}

    def to_dict(self, body: bool = True) -> dict[str, Any]:
        """The memory as JSON-ready data: what `mem show --json` and the MCP server give."""
        import json

        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "path": self.path,
            "type": self.type,
            "tags": self.tags,
            "created": self.created_text,
            "source": self.source,
            "session": self.session,
            "links": self.links,
            "supersedes": self.supersedes,
            "expires": self.fields.get("expires"),
            "extra": self.extra,
        }
        if body:
            data["body"] = self.body
        # Values YAML reads as dates or other types become text, as they are in the file.
        return dict(json.loads(json.dumps(data, default=str)))

    def to_bytes(self) -> bytes:
        """Render the file; unchanged fields keep their original bytes."""
        if self.raw is not None and self._unchanged():
            return self.raw  # also for headers render cannot reproduce (a key `?`, a `--- ` fence)
        try:
            return render(self).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, e.g. from arguments that were not UTF-8
            raise InvalidInputError(
                "a field or the text is not valid UTF-8: give UTF-8 text"
            ) from None

    def _unchanged(self) -> bool:
        """Tell whether fields and body are still what the file says."""
        assert self.raw is not None
        try:
            original = parse(self.raw, self.path)
        except MalformedMemoryError:
            return False
        return (
            original.body == self.body
            and original.newline == self.newline
            and list(original.fields) == list(self.fields)
            and same_value(original.fields, self.fields)
        )


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value if item is not None]
    return [str(value)]


def parse_timestamp(value: Any) -> datetime | None:
    """Read an ISO 8601 timestamp or date as an aware datetime (naive means UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """Render a moment as written in files: seconds and the local offset."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# Reading


def parse(data: bytes, path: str) -> Memory:
    """Parse a memory file strictly; raise MalformedMemoryError saying what is wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise MalformedMemoryError(
            path,
            f"the file is {_size(len(data))}, over the {_size(MAX_FILE_BYTES)} limit of a memory:"
            " split it, or keep large content outside memories/ and link to it",
            1,
        )
    if b"\x00" in data:
        raise MalformedMemoryError(path, "binary file, not a memory (move it out of the store)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MalformedMemoryError(
            path, "not valid UTF-8 text (save the file as UTF-8)", line
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != FENCE:
        raise MalformedMemoryError(
            path, "no front-matter: the file must start with a line '---'", 1
        )
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    closing = next((i for i in range(1, len(lines)) if lines[i].rstrip() == FENCE), None)
    if closing is None:
        raise MalformedMemoryError(
            path, "front-matter is not closed: add a line '---' after the header", 1
        )
    header_lines = lines[1:closing]
    header = "".join(header_lines)
    if len(header) > MAX_HEADER_BYTES:
        raise MalformedMemoryError(
            path,
            f"the front-matter is {_size(len(header.encode()))}, over the"
            f" {_size(MAX_HEADER_BYTES)} limit: shorten the header (fewer tags or fields)",
            2,
        )
    # The lines put back together are the text: the body is what follows the closing fence.
    body = text[len(lines[0]) + len(header) + len(lines[closing]) :]
    fields = _load_header(header, path)
    return Memory(
        path=path,
        fields=fields,
        body=body,
        newline=newline,
        raw=data,
        header_lines=header_lines,
        original_keys=tuple(fields),
    )


def _size(count: int) -> str:
    """A byte count for messages: 1 MB, 64 KB, 10.4 MB."""
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f}".removesuffix(".0") + " MB"
    return f"{count / 1024:.1f}".removesuffix(".0") + " KB"


def check_size(data: bytes) -> None:
    """Refuse to write a memory file over the size limit, with a message saying what to do."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInputError(
            f"the memory is {_size(len(data))}, over the {_size(MAX_FILE_BYTES)} limit: split it,"
            " or keep large content in a file outside the store and mention its path"
        )


def body_of(data: bytes) -> str | None:
    """Just the body of a memory file, without parsing its header (for snippets)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != FENCE:
        return None
    for number in range(1, len(lines)):
        if lines[number].rstrip() == FENCE:
            return "".join(lines[number + 1 :])
    return None


def _load_header(header: str, path: str) -> dict[str, Any]:
    # From the module, not `from memstore import yamlrules`: importing a name from a package
    # runs importlib's Python code each time (a tenth of `mem diff`'s parsing of 10,000 files).
    from memstore.yamlrules import load_tidy

    tidy = load_tidy(header)
    if tidy is not None:  # as memstore writes it: text keys, strings and lists, no alias
        return tidy
    import yaml

    from memstore import yamlrules

    try:
        fields = yamlrules.load(header) if header.strip() else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 2
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise MalformedMemoryError(
            path, f"malformed front-matter: {problem} (fix the YAML header)", line
        ) from None
    except Exception as error:  # PyYAML lets ValueError, IndexError… escape, e.g. from `!!int`
        raise MalformedMemoryError(
            path, f"invalid value in the front-matter: {error} (fix the YAML header)", 2
        ) from None
    if not isinstance(fields, dict):
        raise MalformedMemoryError(
            path, "front-matter must be a mapping of 'field: value' lines", 2
        )
    if _shares_values(fields):
        # Aliases let a 64 KB header stand for billions of values (or a loop): every walk of the
        # fields (comparing, JSON output) would never end.
        raise MalformedMemoryError(
            path, "YAML anchors and aliases (&name, *name) are not allowed in front-matter", 2
        )
    return {str(key): value for key, value in fields.items()}


def _shares_values(value: Any) -> bool:
    """Tell whether a loaded YAML value uses one list or mapping twice (an alias)."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            if id(item) in seen:
                return True
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
    return False


def _split_blocks(header_lines: list[str], keys_read: tuple[str, ...]) -> list[HeaderBlock] | None:
    """Cut the header into one block per top-level key, or None when the layout is unusual."""
    from memstore import yamlrules

    blocks: list[HeaderBlock] = [HeaderBlock(None, "")]
    for line in header_lines:
        if _BLOCK_START.match(line):
            blocks.append(HeaderBlock("", line))
        else:
            blocks[-1].text += line
    for block in blocks[1:]:
        try:
            parsed = yamlrules.load(block.text)
        except Exception:
            return None
        if not isinstance(parsed, dict) or len(parsed) != 1:
            return None
        key, value = next(iter(parsed.items()))
        block.key, block.value = str(key), value
    keys = [block.key for block in blocks[1:]]
    if len(set(keys)) != len(keys) or set(keys) != set(keys_read):
        return None
    return blocks


# Writing


def same_value(a: Any, b: Any) -> bool:
    """Equality that tells True from 1 and '1' from 1, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _key_order(original: list[str], wanted: list[str]) -> list[str]:
    """Keep the original order; put new known fields at their usual place, others at the end."""
    order = [key for key in original if key in wanted]
    for key in wanted:
        if key in order:
            continue
        if key in FIELD_ORDER:
            rank = FIELD_ORDER.index(key)
            position = 0
            for i, existing in enumerate(order):
                if existing in FIELD_ORDER and FIELD_ORDER.index(existing) < rank:
                    position = i + 1
            order.insert(position, key)
        else:
            order.append(key)
    return order


def _fits_before_a_key(preamble: str) -> bool:
    from memstore import yamlrules

    try:
        return bool(yamlrules.load(preamble + "key: 1\n") == {"key": 1})
    except Exception:
        return False


def render(memory: Memory) -> str:
    """Render a memory's file text."""
    nl = memory.newline
    blocks = {b.key: b for b in memory.blocks or [] if b.key}
    preamble = memory.blocks[0].text if memory.blocks else ""
    if memory.fields and preamble.strip(" \r\n") and not _fits_before_a_key(preamble):
        preamble = ""  # e.g. a tab-only line, harmless in an empty header, fatal before a key
    order = _key_order([b.key for b in memory.blocks or [] if b.key], list(memory.fields))
    header = _render_header(memory, order, blocks, preamble, keep=True)
    if not _reads_back(header, memory.fields):
        # Kept bytes that only worked where they were (a BOM inside the header, a flow mapping
        # after a new key…): write every field afresh rather than a file that does not parse.
        header = _render_header(memory, order, blocks, "", keep=False)
    return FENCE + nl + header + FENCE + nl + memory.body


def _render_header(
    memory: Memory, order: list[str], blocks: dict[str, HeaderBlock], preamble: str, keep: bool
) -> str:
    from memstore import yamlrules

    nl = memory.newline
    parts = [preamble]
    for key in order:
        value = memory.fields[key]
        block = blocks.get(key)
        if keep and block is not None and same_value(block.value, value):
            parts.append(block.text)
        else:
            text = yamlrules.dump_field(key, value)
            parts.append(text.replace("\n", nl) if nl != "\n" else text)
    return "".join(parts)


def _reads_back(header: str, fields: dict[str, Any]) -> bool:
    from memstore import yamlrules

    if not header.strip():
        return not fields
    try:
        loaded = yamlrules.load(header)
    except Exception:
        return False
    return isinstance(loaded, dict) and same_value({str(k): v for k, v in loaded.items()}, fields)


# Creating


def derive_title(text: str) -> str:
    """Make a title from the first non-empty line of the text."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(#+\s*|[-*>]\s+)", "", line).strip()
        line = " ".join(line.split())
        if line:
            if len(line) <= TITLE_MAX:
                return line
            cut = line[:TITLE_MAX].rsplit(" ", 1)[0] or line[:TITLE_MAX]
            return cut.rstrip(" ,;:.") + "…"
    return ""


def slugify(title: str) -> str:
    """Words of the title joined by '-', safe as a file name.

    ASCII when the title's letters have an ASCII form (`Café` gives `cafe`, as it always did);
    otherwise the title's own letters, in NFC (`日本語のメモ`, `deploy-デプロイ`), which Linux and
    macOS file systems store as they are.
    """
    decomposed = unicodedata.normalize("NFKD", title)
    ascii_text = decomposed.encode("ascii", "ignore").decode()
    if any(unicodedata.category(char)[0] in "LN" and not char.isascii() for char in decomposed):
        text = unicodedata.normalize("NFC", title).lower()
        slug = "".join(char if _word_char(char) else "-" for char in text)
        slug = re.sub(r"-{2,}", "-", slug).strip("-")
    else:
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[:SLUG_MAX].rsplit("-", 1)[0] or slug[:SLUG_MAX]
    return slug or "memory"


def _word_char(char: str) -> bool:
    """A letter, digit or combining mark (the vowel signs of Indic scripts), not '_'."""
    return unicodedata.category(char)[0] in "LNM" and char != "_"


def normalize_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Lowercase, strip a leading '#', drop repeats; refuse tags with spaces or commas."""
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(
            f"{len(tags)} tags is too many: a memory may have at most {MAX_TAGS}"
        )
    result: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        tag = raw.strip().lstrip("#").lower()
        if not tag:
            raise InvalidInputError("a tag is empty: give each -t/--tag a word")
        if TAG_FORBIDDEN.search(tag):
            raise InvalidInputError(
                f"tag {raw!r} contains a space or comma: use one word per tag (e.g. -t a -t b)"
            )
        if tag not in seen:  # a set: a list scan made 100,000 tags take minutes
            seen.add(tag)
            result.append(tag)
    return result


def normalize_type(kind: str) -> str:
    """Check a memory type: a known one or a user's own lowercase word."""
    value = kind.strip().lower()
    if not TYPE_PATTERN.match(value):
        raise InvalidInputError(
            f"type {kind!r} is not a lowercase word: use one of {', '.join(KNOWN_TYPES)}"
            " or your own (letters, digits, '-' and '_')"
        )
    return value


def normalize_body(text: str) -> str:
    """Unix newlines, no trailing blank space, one final newline."""
    body = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    body = "\n".join(line.rstrip() for line in body.split("\n")).strip()
    return body + "\n" if body else ""


def relative_path(memory_id: str, title: str, created: datetime) -> str:
    """Where a new memory's file goes: memories/<yyyy>/<mm>/<slug>-<short id>.md."""
    short = memory_id[-ids.SHORT_ID_LENGTH :]
    return f"{MEMORY_DIR}/{created:%Y}/{created:%m}/{slugify(title)}-{short}{SUFFIX}"


def is_memory_name(name: str) -> bool:
    """Tell whether a file name (or path) is a memory's: plain `.md` or encrypted `.md.age`."""
    return name.endswith((SUFFIX, ENCRYPTED_SUFFIX))


def is_encrypted(path: str) -> bool:
    """Tell whether a memory file (by name) is encrypted."""
    return path.endswith(ENCRYPTED_SUFFIX)


def misnamed_encrypted(path: str, memory_id: str | None = None) -> str | None:
    """Why an encrypted memory's file name is wrong (it must be `<id>.md.age`), or None.

    The name is all that can be read of it without the key, so the id must be there. Without
    memory_id (not decrypted), only whether the name is an id at all can be told.
    """
    if not is_encrypted(path):
        return None
    stem = path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
    if memory_id is None and ids.time_of(stem) is not None:
        return None
    if memory_id is not None and stem == memory_id:
        return None
    if memory_id and ids.time_of(memory_id) is not None:
        target = f"{memory_id}{ENCRYPTED_SUFFIX} (its id)"
    else:
        target = f"<id>{ENCRYPTED_SUFFIX}, after the id in its front-matter"
    return f"an encrypted memory's file must be named by its id: rename it to {target}"


def encrypted_path(memory: Memory) -> str:
    """Where an encrypted memory goes: memories/<yyyy>/<mm>/<id>.md.age (no title in the name)."""
    folder = memory.path.rsplit("/", 1)[0]
    return f"{folder}/{memory.id}{ENCRYPTED_SUFFIX}"


def new_memory(
    text: str,
    *,
    now: datetime,
    title: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    type: str = "note",
    source: str | None = None,
    session: str | None = None,
    memory_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Memory:
    """Build a new memory from text and options, checking every input."""
    body = normalize_body(text)
    if not body:
        raise InvalidInputError("the memory is empty: give some text to remember")
    try:
        check_size(body.encode("utf-8"))
        (title or "").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from arguments that were not UTF-8
        raise InvalidInputError("the text is not valid UTF-8: give UTF-8 text") from None
    if "\x00" in body or (title and "\x00" in title):
        raise InvalidInputError("the text contains a NUL character: memories are text")
    if title is not None:
        title = " ".join(title.split())
        if not title:
            raise InvalidInputError("the title is empty: give a title or leave it out")
    else:
        title = derive_title(body)
    if not title:
        raise InvalidInputError("the memory has no words to make a title from: add --title")
    memory_id = memory_id or ids.new_id(int(now.timestamp() * 1000))
    fields: dict[str, Any] = {
        "id": memory_id,
        "title": title,
        "type": normalize_type(type),
        "tags": normalize_tags(tags),
        "created": format_timestamp(now),
    }
    if source:
        fields["source"] = " ".join(source.split())
    if session and session.strip():
        fields["session"] = " ".join(session.split())
    for key, value in (extra or {}).items():
        fields.setdefault(key, value)
    path = relative_path(memory_id, title, now)
    return Memory(path=path, fields=fields, body=body)
