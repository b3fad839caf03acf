"""Memories back from history: which memory a reference names when it may be gone, and `mem
restore`, which brings back a removed memory or an earlier version as a new commit (history is
never rewritten)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from memstore import gitrepo, history, relations
from memstore.errors import (
    AmbiguousIdError,
    InvalidInputError,
    MalformedMemoryError,
    MemoryNotFoundError,
    MemstoreError,
)
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    Memory,
    is_encrypted,
    is_memory_name,
    parse,
)

if TYPE_CHECKING:
    from memstore.core import Core
    from memstore.duplicates import Duplicate


def id_in_history(core: Core, ref: str) -> str:
    """The id of the memory ref names: in the files, else removed, in history."""
    try:
        path = core.resolve(ref)
    except (MemoryNotFoundError, InvalidInputError) as error:  # not in the files: history
        paths = removed_paths(core, ref, error)
        found = [item for item in history.removed(core.repo, core.keyring) if item.path in paths]
        if found:
            return found[0].id
        # A path the memory left (it moved, or was renamed): follow it by the id it had there,
        # as `git log --follow` would.
        ids = sorted({i for path, data in paths.items() if (i := _id_of(path, data))})
        if len(ids) > 1:
            raise AmbiguousIdError(
                f"{ref!r} was the file of {len(ids)} memories in history ({', '.join(ids[:3])}):"
                " give the memory's id"
            ) from None
        if not ids:
            raise
        return ids[0]
    if is_encrypted(path):
        return path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
    return parse((core.root / path).read_bytes(), path).id or ref


def removed_paths(core: Core, ref: str, error: MemstoreError) -> dict[str, bytes]:
    """The paths a removed memory had, found in history by id, id prefix or path, with the
    last bytes committed at each."""
    removed = gitrepo.removed_files(core.repo, MEMORY_DIR)
    ref = ref.strip()
    if "/" in ref or os.sep in ref or is_memory_name(ref):
        full = Path(ref).expanduser()
        candidates = {ref.replace(os.sep, "/")}
        for base in (Path.cwd(), core.root):
            try:
                rel = (base / full).resolve().relative_to(core.root.resolve())
                candidates.add(rel.as_posix())
            except ValueError:
                continue
        paths = sorted(candidates & removed.keys())
        if not paths and "/" not in ref and os.sep not in ref:  # a file name alone
            paths = sorted(p for p in removed if p.rsplit("/", 1)[-1] == ref)
        if not paths:
            raise error
        return {path: removed[path] for path in paths}
    prefix = ref.lower()
    by_id: dict[str, list[str]] = {}
    for path, data in removed.items():
        memory_id = _id_of(path, data)
        if memory_id and memory_id.startswith(prefix):
            by_id.setdefault(memory_id, []).append(path)
    if not by_id:
        raise error
    if len(by_id) > 1:
        shown = ", ".join(sorted(by_id)[:3])
        raise AmbiguousIdError(
            f"id prefix {ref!r} matches {len(by_id)} removed memories in history ({shown}"
            f"{', …' if len(by_id) > 3 else ''}): type more characters"
        )
    return {path: removed[path] for path in sorted(next(iter(by_id.values())))}


def _id_of(path: str, data: bytes) -> str:
    """The id of the memory a file held: an encrypted file's name, else its front-matter."""
    name = path.rsplit("/", 1)[-1]
    if is_encrypted(name):
        return name.removesuffix(ENCRYPTED_SUFFIX)
    try:
        return parse(data, path).id
    except MalformedMemoryError:
        return ""


def restore(core: Core, ref: str, source: str | None) -> Memory | None:
    """Bring back a removed memory, or the version of one at source (a date, age or revision),
    as a new commit; None when it is that already."""
    memory_id = id_in_history(core, ref)
    removed = [item for item in history.removed(core.repo, core.keyring) if item.id == memory_id]
    if source is None:
        if not removed:
            raise InvalidInputError(
                f"{memory_id} is not removed: give --from DATE|REV to bring back an earlier version"
            )
        path, blob, commit = removed[0].path, removed[0].blob, removed[0].commit
    else:
        commit = history.resolve_point(core.repo, source, core.clock()) or ""
        hints = [item.path for item in removed]
        with contextlib.suppress(MemstoreError):
            hints.insert(0, core.resolve(memory_id))
        version = history.version_at(core.repo, commit, memory_id, hints)
        if version is None:
            raise MemoryNotFoundError(
                f"{memory_id} was not in the store at {source!r} ({commit[:10]}):"
                f" 'mem log {memory_id}' shows when it was"
            )
        path, blob = version
    return _write_back(core, memory_id, path, history.blob_bytes(core.repo, blob), commit)


def _write_back(
    core: Core, memory_id: str, old_path: str, data: bytes, commit: str
) -> Memory | None:
    from memstore.duplicates import warning

    plain = core.keyring.readable(data, old_path)
    memory = (
        parse(plain, old_path) if plain is not None else Memory(old_path, {"id": memory_id}, "")
    )
    with core.writing() as session:
        try:
            path = core.resolve(memory_id)  # where it is now, if it is
        except MemoryNotFoundError:
            path = old_path
        if is_encrypted(path) != is_encrypted(old_path):
            path = old_path
        current = (core.root / path).read_bytes() if (core.root / path).is_file() else None
        if current is not None and plain is not None and core.plain(path, current) == plain:
            return None
        found: list[Duplicate] = []
        if plain is None:  # no key: the ciphertext as it was, sealed for whoever had it
            core.reporter.notice(f"{memory_id} restored encrypted as it was (no key to read it)")
            data_out = data
        else:
            data_out = core.seal(path, plain)
            found = relations.duplicates(core, memory.body, exclude=[memory_id])
        memory.path = path
        session.write(path, data_out)
        session.commit(core.subject("restore", memory) + f" (from {commit[:10]})")
    for duplicate in found:
        core.reporter.warning(warning(duplicate))
    for successor in relations.successors(core, path) if plain is not None else []:
        core.reporter.notice(f"{memory_id} is superseded by {successor.id}: {successor.title}")
    return memory
