"""`mem check`: every memory file read strictly and validated, with what to do about each problem.

Schema, duplicate ids, broken links, conflict flags, stray files. Hidden folders under
memories/ (an editor's `.obsidian/` or `.trash/`) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from memstore import atomic, gitmarkers
from memstore.errors import MalformedMemoryError, MemstoreError, NotARecipientError
from memstore.links import broken_links, stem
from memstore.memory import (
    MEMORY_DIR,
    Memory,
    is_memory_name,
    misnamed_encrypted,
    parse,
)
from memstore.merge import has_conflict
from memstore.validate import validate_header

if TYPE_CHECKING:
    from memstore.core import Core

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
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    locked = foreign = 0
    checked: list[Memory] = []
    unread: list[str] = []
    base = store.root / MEMORY_DIR
    for full in sorted(base.rglob("*")) if base.is_dir() else []:
        rel = full.relative_to(store.root).as_posix()
        if full.is_dir() and not full.is_symlink():
            continue
        if any(part.startswith(".") for part in full.relative_to(base).parent.parts):
            continue
        if full.name == ".age-recipients":  # who can read the memories below it
            continue
        if full.is_symlink():
            problems.append(Problem(rel, 1, "symbolic link: memories must be plain files"))
            continue
        if atomic.is_temporary(full.name):
            problems.append(
                Problem(rel, 1, "temporary file left by an interrupted write: delete it")
            )
            continue
        if not is_memory_name(full.name):
            problems.append(Problem(rel, 1, "not a memory file (.md): move it out of memories/"))
            continue
        try:
            data = full.read_bytes()
        except OSError as error:
            problems.append(Problem(rel, 1, f"cannot be read ({error.strerror or error})"))
            continue
        misnamed = misnamed_encrypted(rel)  # searches skip it: they need the id in the name
        try:
            text = store.keyring.readable(data, rel)
            if text is None:  # encrypted, and no identity to read it
                if misnamed is not None:
                    problems.append(Problem(rel, 1, misnamed))
                    continue
                locked += 1
                unread.append(stem(rel))
                continue
            data = text
            marker = gitmarkers.marker_line(data)
            if marker is not None:
                problems.append(Problem(rel, marker or 1, GIT_MARKERS.format(path=rel)))
                continue
            memory = parse(data, rel)
        except NotARecipientError:  # someone else's memory: not a problem of the file
            if misnamed is not None:
                problems.append(Problem(rel, 1, misnamed))
                continue
            foreign += 1
            unread.append(stem(rel))
            continue
        except MalformedMemoryError as error:
            problems.append(Problem(rel, error.line or 1, error.reason))
            continue
        except MemstoreError as error:  # an encrypted file that cannot be decrypted
            problems.append(Problem(rel, 1, str(error).removeprefix(f"{rel}: ")))
            continue
        misnamed = misnamed_encrypted(rel, memory.id)
        if misnamed is not None:
            problems.append(Problem(rel, 1, misnamed))
        for line, message in validate_header("".join(memory.header_lines or []), 2):
            problems.append(Problem(rel, line, message))
        if has_conflict(data):
            problems.append(
                Problem(
                    rel,
                    2,
                    "unresolved sync conflict: keep the text you want, then run"
                    f" 'mem resolve {memory.id or rel}' (see docs/sync.md)",
                )
            )
        if memory.id:
            if memory.id in seen:
                problems.append(
                    Problem(rel, 2, duplicate_id_problem(memory.id, seen[memory.id], rel))
                )
            else:
                seen[memory.id] = rel
        checked.append(memory)
    for rel, line, message in broken_links(checked, unread):
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
    return problems


def duplicate_id_problem(memory_id: str, first: str, copy: str) -> str:
    """What `mem check` says of the second file with an id, and how to fix it."""
    return (
        f"duplicate id {memory_id}: also in {first}; if this file is a copy, delete it; to keep"
        f" both, run 'mem add --file {copy}' (the text gets a new id), then delete this file"
    )
