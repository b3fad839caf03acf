"""`mem check`: every memory file read strictly and validated, with what to do about each problem.

Schema, duplicate ids, broken links, conflict flags, stray files. Hidden folders under
memories/ (an editor's `.obsidian/` or `.trash/`) are left alone.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import TYPE_CHECKING, Any

from memstore import atomic, gitmarkers
from memstore.errors import MalformedMemoryError, MemstoreError, NotARecipientError
from memstore.index import blob_id
from memstore.keys import RECIPIENTS_FILE
from memstore.links import link_facts, stem, unresolved_links
from memstore.memory import (
    MEMORY_DIR,
    SUFFIX,
    Memory,
    is_memory_name,
    misnamed_encrypted,
    parse,
)
from memstore.merge import has_conflict
from memstore.validate import validate_header

if TYPE_CHECKING:
    from memstore.checkcache import CheckCache
    from memstore.core import Core

FOREIGN, LOCKED = "foreign", "locked"
GIT_MARKERS = (
    "holds git's conflict markers (<<<<<<<) from a plain git merge: run 'mem resolve {path}' to"
    " merge the two sides as 'mem sync' does (add --keep 1, 2 or both to settle what still"
    " conflicts), or edit the file and remove them"
)


@dataclass
class Problem:
    """One problem `check` found."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def check(store: Core) -> list[Problem]:
    """Validate every memory file: schema, duplicate ids, broken links, stray files.

    Hidden folders under memories/ (an editor's `.obsidian/` or `.trash/`) are left alone.
    """
    return check_store(store).problems


@dataclass
class Checked:
    """What checking the store found: the problems, and each memory file's blob id when the
    search index takes the file in (None when it does not: it does not parse, or cannot be
    read with the identity at hand)."""

    problems: list[Problem]
    blobs: dict[str, str | None]
    temporary: list[str]  # temporary files of interrupted writes, hidden folders included
    encrypted: list[str]  # as keys.encrypted_files() lists them
    recipients: list[str]  # recipients files below memories/, hidden folders included


def check_store(store: Core) -> Checked:
    """Check every memory file, reading only those changed since the last check (checkcache)."""
    from memstore.checkcache import CheckCache
    from memstore.validate import schema_digest

    cache = CheckCache(store.index.home, schema_digest())
    cache.load()
    problems: list[Problem] = []
    blobs: dict[str, str | None] = {}
    seen: dict[str, str] = {}
    locked = foreign = 0
    checked: list[tuple[str, str, Any, Any]] = []
    unread: list[str] = []
    temporary: list[str] = []
    encrypted_files: list[str] = []
    recipients: list[str] = []
    plain = SUFFIX  # never a temporary file's name (atomic.TEMP_SUFFIX)
    linked = False
    for rel, name, stat in itertools.chain.from_iterable(_walk(store.root, temporary, recipients)):
        if stat is None:
            problems.append(Problem(rel, 1, "symbolic link: memories must be plain files"))
            continue
        row = None
        encrypted = False
        if name.endswith(plain):
            if type(stat) is os.stat_result:
                row = cache.get(rel, stat)
        elif name[0] == "." and atomic.is_temporary(name):
            problems.append(
                Problem(rel, 1, "temporary file left by an interrupted write: delete it")
            )
            continue
        elif not is_memory_name(name):
            problems.append(Problem(rel, 1, "not a memory file (.md): move it out of memories/"))
            continue
        else:
            encrypted = True  # a .md.age name: never kept, what it holds depends on the key
            if type(stat) is os.stat_result and S_ISREG(stat.st_mode) and name[0] != ".":
                encrypted_files.append(rel)
        if row is not None:
            # Most files: the kept row still holds; it is used as it is, nothing built per file.
            _, blob, memory_id, indexable, found, links = row
            names = None  # kept apart (cache.names)
        else:
            try:
                if isinstance(stat, OSError):
                    raise stat
                data = (store.root / rel).read_bytes()
            except OSError as error:
                problems.append(Problem(rel, 1, f"cannot be read ({error.strerror or error})"))
                continue
            if encrypted:
                facts, why = _encrypted_facts(store, rel, data)
                if facts is None:  # someone else's, or no identity: not a problem of the file
                    blobs[rel] = None
                    foreign += why == FOREIGN
                    locked += why == LOCKED
                    unread.append(stem(rel))
                    continue
            else:
                facts = _facts(rel, data, data)
                cache.put(rel, stat, facts)
            found, blob, memory_id = facts["problems"], facts["blob"], facts["id"]
            indexable, links, names = facts["indexable"], facts.get("links"), facts.get("names")
        if found:
            problems.extend(Problem(rel, line, message) for line, message in found)
        blobs[rel] = blob if indexable else None
        if memory_id is None:
            continue
        if memory_id:
            if memory_id in seen:
                problems.append(
                    Problem(rel, 2, duplicate_id_problem(memory_id, seen[memory_id], rel))
                )
            else:
                seen[memory_id] = rel
        checked.append((rel, memory_id, names, links or ()))
        if links:
            linked = True
    if linked:  # most stores have no link: spare two more passes over every file
        checked = _with_names(store, checked, cache)
    cache.save()
    if linked:
        for rel, line, message in unresolved_links(checked, unread):
            problems.append(Problem(rel, line, message))
    if locked:
        store.reporter.notice(
            f"{locked} encrypted {'memory' if locked == 1 else 'memories'} not checked:"
            " no identity to read them ('mem key init', or set MEM_IDENTITY)"
        )
    if foreign:
        store.reporter.notice(
            f"{foreign} encrypted {'memory' if foreign == 1 else 'memories'} not checked:"
            " not encrypted to your identity"
        )
    return Checked(problems, blobs, temporary, encrypted_files, recipients)


# What the walk gives for each entry: its path, its name, and its lstat (None for a symbolic
# link, the error when it could not be taken).
Entry = tuple[str, str, "os.stat_result | OSError | None"]


def _walk(root: Path, temporary: list[str], recipients: list[str]) -> Iterator[list[Entry]]:
    """Every entry under memories/ to check, in path order, outside hidden folders, with its
    lstat; None for a symbolic link (reported, never followed). Temporary files are also added
    to temporary, and recipients files (not memories) to recipients, those in hidden folders
    too. In batches (the files of a folder between its subfolders): a generator's frames per
    file cost a third of the walk at 100,000 files, a list of them all 45 MB."""
    try:
        fd = os.open(root / MEMORY_DIR, _FOLDER)
    except OSError:
        return
    try:
        yield from _walk_folder(fd, MEMORY_DIR, False, temporary, recipients)
    finally:
        os.close(fd)


# A folder opened to list it and to stat its entries by name: one lstat per entry, relative to
# the open folder (no path to build and resolve), which also tells folders and links apart.
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def _walk_folder(
    fd: int, rel: str, hidden: bool, temporary: list[str], recipients: list[str]
) -> Iterator[list[Entry]]:
    # Each folder's entries by name, folders entered where they sort: the order of the paths'
    # parts, as sorting every path would give, without building and sorting them all.
    try:
        names = os.listdir(fd)
    except OSError:
        return
    names.sort()
    batch: list[Entry] = []
    add = batch.append
    lstat = os.lstat
    for name in names:
        path = f"{rel}/{name}"
        if name[0] == ".":
            if atomic.is_temporary(name):
                temporary.append(path)
            elif name == RECIPIENTS_FILE:
                if _is_file_at(fd, name):
                    recipients.append(path)
                continue
        try:
            stat = lstat(name, dir_fd=fd)
        except FileNotFoundError:  # gone since the listing
            continue
        except OSError as error:
            if not hidden:
                add((path, name, error))
            continue
        mode = stat.st_mode
        if S_ISLNK(mode):
            if not hidden:
                add((path, name, None))
        elif S_ISDIR(mode):
            try:
                inner = os.open(name, _FOLDER, dir_fd=fd)
            except OSError:
                continue
            if batch:
                yield batch
                batch = []
                add = batch.append
            try:
                yield from _walk_folder(
                    inner, path, hidden or name[0] == ".", temporary, recipients
                )
            finally:
                os.close(inner)
        elif not hidden:
            add((path, name, stat))
    if batch:
        yield batch


def _is_file_at(fd: int, name: str) -> bool:
    """Whether name in the open folder fd is a file, or a link to one (as DirEntry.is_file)."""
    try:
        return S_ISREG(os.stat(name, dir_fd=fd).st_mode)
    except OSError:
        return False


def _with_names(
    store: Core, checked: list[tuple[str, str, Any, Any]], cache: CheckCache
) -> list[tuple[str, str, Any, Any]]:
    """Fill in the other names kept apart (checkcache.names), reading a file again when they
    are lost."""
    kept = cache.names() or {}
    filled = []
    for rel, memory_id, names, lines in checked:
        if names is None:
            names = kept.get(rel)
        if names is None:
            try:
                data = (store.root / rel).read_bytes()
                names = _facts(rel, data, store.keyring.readable(data, rel) or data)["names"]
            except (OSError, MemstoreError, KeyError):
                names = []
        filled.append((rel, memory_id, names, lines))
    return filled


def _encrypted_facts(store: Core, rel: str, raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """An encrypted file's facts, or None and why it cannot be read here (FOREIGN, LOCKED)."""
    misnamed = misnamed_encrypted(rel)  # searches skip it: they need the id in the name
    try:
        text = store.keyring.readable(raw, rel)
    except NotARecipientError:
        if misnamed is not None:
            return _bare(raw, [(1, misnamed)]), None
        return None, FOREIGN
    except MemstoreError as error:  # an encrypted file that cannot be decrypted
        return _bare(raw, [(1, str(error).removeprefix(f"{rel}: "))]), None
    if text is None:  # no identity to read it
        if misnamed is not None:
            return _bare(raw, [(1, misnamed)]), None
        return None, LOCKED
    return _facts(rel, raw, text), None


def _bare(raw: bytes, problems: list[tuple[int, str]]) -> dict[str, Any]:
    return {"problems": problems, "id": None, "blob": blob_id(raw), "indexable": False}


def _facts(rel: str, raw: bytes, data: bytes) -> dict[str, Any]:
    """What checking one readable file finds, on its own (raw: its bytes; data: its text)."""
    facts: dict[str, Any] = {"problems": [], "id": None, "blob": blob_id(raw)}
    problems: list[tuple[int, str]] = facts["problems"]
    try:
        memory: Memory | None = parse(data, rel)
    except MalformedMemoryError as error:
        memory = None
        parse_error = (error.line or 1, error.reason)
    # As the index reads it: a file that parses, named by its id when encrypted.
    facts["indexable"] = memory is not None and misnamed_encrypted(rel, memory.id) is None
    marker = gitmarkers.marker_line(data)
    if marker is not None:
        problems.append((marker or 1, GIT_MARKERS.format(path=rel)))
        return facts
    if memory is None:
        problems.append(parse_error)
        return facts
    misnamed = misnamed_encrypted(rel, memory.id)
    if misnamed is not None:
        problems.append((1, misnamed))
    problems.extend(validate_header("".join(memory.header_lines or []), 2))
    if has_conflict(data):
        problems.append(
            (
                2,
                "unresolved sync conflict: keep the text you want, then run"
                f" 'mem resolve {memory.id or rel}' (see docs/sync.md)",
            )
        )
    facts["id"] = memory.id or ""
    other_names, lines = link_facts(memory)
    facts["names"] = other_names
    facts["links"] = lines
    return facts


def duplicate_id_problem(memory_id: str, first: str, copy: str) -> str:
    """What `mem check` says of the second file with an id, and how to fix it."""
    return (
        f"duplicate id {memory_id}: also in {first}; if this file is a copy, delete it; to keep"
        f" both, run 'mem add --file {copy}' (the text gets a new id), then delete this file"
    )
