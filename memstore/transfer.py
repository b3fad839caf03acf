"""Import and export: memories as JSON Lines, and folders of Markdown notes (docs/import-export.md).

A line (or a note) is one memory: `body` is its text, `path` where its file goes (only when it
is a path of the store's layout, as export writes it), and every other key a front-matter field:
`id`, `title`, `type`, `tags`, `created`, `source`, `session`, and any key of the user's own.
Importing never changes a memory that is already there, so importing the same file twice adds
nothing: an item is already present when a memory has its `id`, or, for an item without one,
the same text (see duplicates.digest), title and `created`. An item without an `id` but with
`created` gets an id made from its content, so the same file imported on two clones gives the
same memories.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import ids, search
from memstore.errors import InvalidInputError, MalformedMemoryError, MemstoreError
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    Memory,
    format_timestamp,
    is_encrypted,
    is_memory_name,
    new_memory,
    parse,
    parse_timestamp,
)
from memstore.notes import split_front_matter, tag_list

if TYPE_CHECKING:
    from memstore.core import Core

# Keys of a line that are not front-matter fields.
BODY, PATH = "body", "path"
# Where export says a memory's file is; other `path` values are front-matter like any key.
_LAYOUT = re.compile(
    r"^memories/[0-9]{4}/[0-9]{2}/(?:[^/\s]+-[0-9a-hjkmnp-tv-z]{8}\.md"
    r"|[0-9a-hjkmnp-tv-z]{26}\.md\.age)$"
)
_STRICT_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


@dataclass
class Problem:
    """A line or note that was not imported, and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportResult:
    """What an import did: the memories added, how many were there already, what was wrong."""

    added: list[Memory] = field(default_factory=list)
    present: int = 0
    problems: list[Problem] = field(default_factory=list)
    redacted: Counter[str] = field(default_factory=Counter)  # secrets replaced, by kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": len(self.added),
            "present": self.present,
            "ids": [memory.id for memory in self.added],
            "problems": [problem.to_dict() for problem in self.problems],
            "redacted": dict(sorted(self.redacted.items())),
        }


@dataclass
class ExportResult:
    """Every memory as a JSON-ready record, and the files left out (with the reason)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[Problem] = field(default_factory=list)


# Reading


def read_items(source: Path) -> Iterator[tuple[str, int, Any]]:
    """(file, line, item) for each line of a JSONL file or each note of a folder.

    An item that cannot even be read is a Problem in place of the item.
    """
    if source.is_dir():
        yield from _read_folder(source)
        return
    try:
        handle = source.open(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"cannot read {source}: {error.strerror or error}") from None
    with handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):  # noqa: B007 - used after a failure
                if not line.strip():
                    continue
                try:
                    yield str(source), number, json.loads(line)
                except ValueError as error:
                    message = f"not valid JSON ({getattr(error, 'msg', error)})"
                    yield str(source), number, Problem(str(source), number, message)
        except UnicodeDecodeError:
            yield str(source), number + 1, Problem(str(source), number + 1, "not UTF-8 text")


def count_items(source: Path) -> int:
    """How many lines or notes read_items will go through (for the progress bar)."""
    if source.is_dir():
        return sum(1 for _ in _notes(source))
    try:
        with source.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _notes(folder: Path) -> Iterator[Path]:
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .git, .obsidian, .trash
        for name in sorted(files):
            if name.endswith(".md") and not name.startswith("."):
                yield Path(here) / name


def _read_folder(folder: Path) -> Iterator[tuple[str, int, Any]]:
    for path in _notes(folder):
        where = str(path)
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            yield where, 1, Problem(where, 1, f"cannot be read ({error})")
            continue
        try:  # memstore's own reading first: timestamps stay as written
            memory = parse(data, where)
            item = dict(memory.fields)
            item[BODY] = memory.body
        except MalformedMemoryError:  # TOML or JSON front-matter, or none
            try:
                item, body = split_front_matter(text)
            except ValueError as error:
                yield where, 1, Problem(where, 1, str(error))
                continue
            item[BODY] = body
        item.setdefault("title", path.stem)  # what Obsidian shows as the note's name
        yield where, 1, item


# Building memories


def build(item: Any, now: datetime) -> tuple[Memory, bool]:
    """The memory an item describes, and whether the item gave its own id.

    Raises InvalidInputError saying what is wrong with the item.
    """
    if not isinstance(item, dict):
        raise InvalidInputError("a line must be a JSON object with at least 'body'")
    fields = dict(item)
    body = fields.pop(BODY, None)
    if not isinstance(body, str) or not body.strip():
        raise InvalidInputError("'body' is missing or empty: every memory needs text")
    location = fields.pop(PATH, None)
    if location is not None and not (isinstance(location, str) and _LAYOUT.match(location)):
        fields[PATH] = location  # someone's own `path` field
        location = None
    title = _text(fields.pop("title", None), "title")
    kind = _text(fields.pop("type", None), "type") or "note"
    source = _text(fields.pop("source", None), "source")
    session = _text(fields.pop("session", None), "session")
    tags = tag_list(fields.pop("tags", None))
    memory_id = fields.pop("id", None)
    if memory_id is not None and not (isinstance(memory_id, str) and _is_id(memory_id)):
        raise InvalidInputError(f"id: {memory_id!r} is not a memory id (26 Crockford characters)")
    created, moment = _created(fields.pop("created", None))
    given_id = memory_id is not None
    if memory_id is None and created is not None:
        memory_id = _content_id(moment, title or "", created, body)
    memory = new_memory(
        body,
        now=moment or now,
        title=title,
        tags=tags,
        type=kind,
        source=source,
        session=session,
        memory_id=memory_id,
        extra=fields,
    )
    if created is not None:
        memory.fields["created"] = created
    if location is not None:
        name = location.rsplit("/", 1)[-1]
        short = memory.id[-ids.SHORT_ID_LENGTH :]
        if name == memory.id + ENCRYPTED_SUFFIX or name.endswith(f"-{short}.md"):
            memory.path = location
    _validate(memory)
    return memory, given_id


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(f"{name}: must be text, not {type(value).__name__}")


def _is_id(text: str) -> bool:
    return len(text) == ids.ID_LENGTH and ids.looks_like_id_prefix(text) and text == text.lower()


def _created(value: Any) -> tuple[str | None, datetime | None]:
    """The `created` text to write and the moment it means; a date alone is midnight UTC."""
    if value is None:
        return None, None
    moment = parse_timestamp(value)
    if moment is None:
        raise InvalidInputError(
            f"created: {value!r} is not an ISO 8601 timestamp (e.g. 2026-11-21T10:55:17+01:00)"
        )
    if isinstance(value, str) and _STRICT_TIMESTAMP.match(value.strip()):
        return value.strip(), moment
    return format_timestamp(moment), moment


def _content_id(moment: datetime | None, title: str, created: str, body: str) -> str:
    """An id made from the item: its time from `created`, its random part from the content."""
    from memstore import duplicates

    seed = "\n".join((title, created, duplicates.digest(body)))
    noise = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:10], "big")
    millis = max(0, int(moment.timestamp() * 1000)) if moment else 0
    value = (millis % (1 << 48)) << 80 | noise
    chars = []
    for _ in range(ids.ID_LENGTH):
        chars.append(ids.ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _validate(memory: Memory) -> None:
    """Check the header memstore would write against the schema; raise on the first problem."""
    from memstore.validate import fields_valid, validate_header

    if fields_valid(memory.fields):  # the usual case, without parsing the header again
        return
    data = memory.to_bytes()
    parsed = parse(data, memory.path)
    problems = validate_header("".join(parsed.header_lines or []), 2)
    if problems:
        raise InvalidInputError(problems[0][1])


# Importing


@dataclass
class _Built:
    """An item made into a memory, with what tells whether it is already in the store."""

    where: str
    line: int
    memory: Memory
    given_id: bool
    content: tuple[str, str, str]  # text digest, title, created as given


def import_items(
    store: Core,
    items: Iterable[tuple[str, int, Any]],
    total: int,
    label: str,
    *,
    allow_secrets: bool = False,
) -> ImportResult:
    """Add every new memory among the items in one commit; see the module docstring.

    Unless allow_secrets is True, secrets in every text field are redacted before the items
    are made into memories (so before anything is written), counted in `result.redacted`.
    """
    from memstore import duplicates, secrets

    result = ImportResult()
    now = store.clock()
    built: list[_Built] = []
    with store.reporter.progress(total, "reading") as advance:
        for where, line, item in items:
            advance(1)
            if isinstance(item, Problem):
                result.problems.append(item)
                continue
            if not allow_secrets:
                item = secrets.redact_value(item, result.redacted)
            try:
                memory, given_id = build(item, now)
            except MemstoreError as error:
                result.problems.append(Problem(where, line, str(error)))
                continue
            content = (duplicates.digest(memory.body), memory.title, _created_key(item))
            built.append(_Built(where, line, memory, given_id, content))
    with store.index.reading() as ix:  # two lookups for the whole file, not two per line
        existing = {item.id for item in search.having(ix, "id", [b.memory.id for b in built])}
        digests = [b.content[0] for b in built if not b.given_id]
        known = _contents(store, search.having(ix, "digest", digests))
    batch: list[Memory] = []
    ids_seen: set[str] = set()
    content_seen: set[tuple[str, str, str]] = set()
    for entry in built:
        memory = entry.memory
        if (
            memory.id in existing
            or memory.id in ids_seen
            or (not entry.given_id and entry.content in content_seen)
            or (not entry.given_id and _known(entry.content, known))
        ):
            result.present += 1
            continue
        if (store.root / memory.path).exists():
            message = f"{memory.path} already exists with another memory"
            result.problems.append(Problem(entry.where, entry.line, message))
            continue
        if store.should_encrypt(memory, is_encrypted(memory.path) or None):
            try:
                _encrypt_to(store, memory)
            except MemstoreError as error:
                result.problems.append(Problem(entry.where, entry.line, str(error)))
                continue
        ids_seen.add(memory.id)
        content_seen.add(entry.content)
        batch.append(memory)
    result.problems.sort(key=lambda problem: (problem.file, problem.line))
    if batch:
        count = len(batch)
        message = f"import {count} memor{'y' if count == 1 else 'ies'} from {label}"
        result.added = store.write_many(batch, message=message, default_source=False)
    if result.redacted:
        store.reporter.warning(secrets.warning(result.redacted))
    return result


def _contents(store: Core, candidates: list[Any]) -> dict[str, list[tuple[str, str]]]:
    """(title, created) of the memories found by text digest, by digest (read from the files)."""
    from memstore import duplicates

    found: dict[str, list[tuple[str, str]]] = {}
    for item in store.reveal(candidates):
        body = store.read_body(item.path)
        if body is not None:
            found.setdefault(duplicates.digest(body), []).append((item.title, item.created))
    return found


def _known(content: tuple[str, str, str], known: dict[str, list[tuple[str, str]]]) -> bool:
    """Tell whether a memory with this text, title and `created` (if given) is in the store."""
    digest, title, created = content
    return any(
        title == other and (not created or _same_moment(written, created))
        for other, written in known.get(digest, [])
    )


def _encrypt_to(store: Core, memory: Memory) -> None:
    """Give a memory its encrypted file name, once sure there is someone to encrypt it to."""
    from memstore import keys
    from memstore.memory import encrypted_path

    memory.path = encrypted_path(memory)
    keys.recipients_for(store.root, memory.path)


def _created_key(item: Any) -> str:
    created = item.get("created") if isinstance(item, dict) else None
    return "" if created is None else str(created)


def _same_moment(written: str, given: str) -> bool:
    return written == given or parse_timestamp(written) == parse_timestamp(given)


# Exporting


def export(store: Core) -> ExportResult:
    """Every memory file as a record (front-matter fields in file order, `body`, `path`), by id.

    Files that cannot be read (malformed, or encrypted without the key) are left out and listed;
    an encrypted memory that can be decrypted is exported as plain text.
    """
    result = ExportResult()
    base = store.root / MEMORY_DIR
    found: list[tuple[str, str, dict[str, Any]]] = []
    paths = sorted(_memory_files(base))
    with store.reporter.progress(len(paths), "exporting") as advance:
        for full in paths:
            advance(1)
            rel = full.relative_to(store.root).as_posix()
            try:
                text = store.keyring.readable(full.read_bytes(), rel)
                if text is None:
                    raise MemstoreError("encrypted, and no identity here can decrypt it")
                memory = parse(text, rel)
            except MalformedMemoryError as error:
                result.left_out.append(Problem(rel, error.line or 1, error.reason))
                continue
            except (OSError, MemstoreError) as error:
                result.left_out.append(Problem(rel, 1, str(error).removeprefix(f"{rel}: ")))
                continue
            if BODY in memory.fields:
                message = f"a front-matter key '{BODY}' clashes with the text: rename it"
                result.left_out.append(Problem(rel, 2, message))
                continue
            record = json.loads(json.dumps(memory.fields, default=str))
            record[BODY] = memory.body
            record.setdefault(PATH, rel)  # a field of the user's own named `path` wins
            found.append((memory.id, rel, record))
    result.records = [record for _, _, record in sorted(found, key=lambda f: (f[0], f[1]))]
    return result


def _memory_files(base: Path) -> Iterator[Path]:
    for here, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if is_memory_name(name) and not name.startswith("."):
                full = Path(here) / name
                if not full.is_symlink():
                    yield full
