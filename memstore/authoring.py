"""Writing memories: `add`, `update` and `edit` through the core's one write path.

Text entering the store has its secrets redacted first (`secrets`, unless the caller allows
them), a new memory is checked against the ones it may repeat (`relations.duplicates`), and the
policy decides whether it is encrypted. `Store`'s verbs of the same names call these.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import ids, relations, secrets
from memstore.core import author_source
from memstore.errors import (
    InvalidInputError,
    MalformedMemoryError,
    MemoryNotFoundError,
    MemstoreError,
)
from memstore.memory import SUFFIX, Memory, encrypted_path, is_encrypted, new_memory, parse

if TYPE_CHECKING:
    from memstore.core import Core
    from memstore.duplicates import Duplicate


def add(
    core: Core,
    text: str,
    *,
    title: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    type: str = "note",
    source: str | None = None,
    session: str | None = None,
    extra: dict[str, Any] | None = None,
    encrypt: bool | None = None,
    supersedes: str | None = None,
    check_duplicates: bool = True,
    allow_secrets: bool = False,
    redacted: Counter[str] | None = None,
    memory_id: str | None = None,
    duplicates: list[Duplicate] | None = None,
) -> Memory:
    """Add a memory and commit it; encrypt it if asked or if the store's policy says so.

    session names the conversation or work session the memory comes from (default:
    MEM_SESSION): memories of one session lend each other context in `find`. With
    supersedes (an id, id prefix or path), the new memory replaces that one
    (`supersedes: [id]`). Unless check_duplicates is False, an existing memory that the new
    one repeats is reported as a warning (see `duplicates`); the memory is added anyway.
    Secrets in the text and fields are replaced with `[redacted:<kind>]` and reported as a
    warning (see `secrets`), unless allow_secrets is True; given a `redacted` counter, their
    counts by kind are added to it instead of the warning, for the caller to report; given a
    `duplicates` list, the memories the new one repeats are appended to it instead of warned of.

    memory_id is an id the caller chose (`ids.new_id`), to add at most once: when the store has a
    memory with that id and the same text already, that one is returned and nothing is written.
    A caller that cannot tell whether its add went through (a service that stopped before it
    answered) adds again with the same id.
    """
    from memstore.memory import normalize_tags

    if memory_id is not None and ids.time_of(memory_id) is None:
        raise InvalidInputError(f"{memory_id!r} is not a memory id: leave it out to get a new one")

    tags = normalize_tags(tags)  # first: too many tags is refused before any work on them
    if not allow_secrets:
        found_secrets: Counter[str] = Counter()
        text, title, tags, source, session, extra = (
            secrets.redact_value(value, found_secrets)
            for value in (text, title, list(tags), source, session, extra)
        )
        warn_secrets(core, found_secrets, redacted)
    replaced: list[str] = []
    if supersedes is not None:
        replaced = [core.get(supersedes).id]
        extra = {**(extra or {}), "supersedes": replaced}
    now = core.clock()
    if session is None:
        session = os.environ.get("MEM_SESSION") or None

    def make(source: str | None) -> Memory:
        return new_memory(
            text,
            now=now,
            title=title,
            tags=tags,
            type=type,
            source=source,
            session=session,
            extra=extra,
            memory_id=memory_id,
        )

    memory = make(source)
    # One catch-up of the index for the whole write: the write session's (for edits made
    # outside mem), not a second one for the duplicate check a moment later.
    with core.index.one_catch_up(), core.writing() as writing:
        if memory_id is not None:
            earlier = _added_before(core, memory)
            if earlier is not None:
                return earlier
        if source is None:
            source = author_source(core.repo, now)
            memory.fields["source"] = source
        while (core.root / memory.path).exists():  # a clash of 40 random bits: new id
            if memory_id is not None:
                raise InvalidInputError(f"the id {memory_id} is taken: leave it out for a new one")
            memory = make(source)
        if core.should_encrypt(memory, encrypt):
            memory.path = encrypted_path(memory)
        data = memory.to_bytes()
        found = (
            relations.duplicates(core, memory.body, exclude=replaced) if check_duplicates else []
        )
        writing.write(memory.path, core.seal(memory.path, data))
        writing.commit(core.subject("add", memory))
    if duplicates is not None:
        duplicates.extend(found)
    else:
        warn_duplicates(core, found)
    return memory


def _added_before(core: Core, memory: Memory) -> Memory | None:
    """The memory with this one's id already in the store, when it holds the same text."""
    try:
        earlier = core.get(memory.id)
    except MemoryNotFoundError:
        return None
    if earlier.id != memory.id or earlier.body != memory.body:
        raise InvalidInputError(
            f"the id {memory.id} is taken by another memory: leave it out to get a new one"
        )
    return earlier


def add_many(
    core: Core,
    memories: Iterable[Memory],
    *,
    message: str | None = None,
    default_source: bool = True,
    allow_secrets: bool = False,
) -> list[Memory]:
    """Write new memories (made with `memory.new_memory`) and commit them all at once (see
    `Core.write_many`); secrets are redacted as in `add`, unless allow_secrets is True."""
    batch = list(memories)
    if not allow_secrets:
        found_secrets: Counter[str] = Counter()
        for memory in batch:
            found_secrets.update(_redact_memory(memory))
        warn_secrets(core, found_secrets)
    return core.write_many(batch, message=message, default_source=default_source)


def update(
    core: Core,
    ref: str,
    *,
    body: str | None = None,
    title: str | None = None,
    tags: list[str] | None = None,
    type: str | None = None,
    allow_secrets: bool = False,
    redacted: Counter[str] | None = None,
) -> Memory | None:
    """Change fields or body of a memory; None when nothing changed (no write, no commit).

    Secrets in the new text, title and tags are redacted as in `add`, unless allow_secrets.
    """
    from memstore.memory import normalize_body, normalize_tags, normalize_type

    if not allow_secrets:
        found_secrets: Counter[str] = Counter()
        body, title, tags = (
            secrets.redact_value(value, found_secrets) for value in (body, title, tags)
        )
        warn_secrets(core, found_secrets, redacted)

    with core.writing() as session:
        memory = core.get(ref)
        if body is not None:
            memory.body = normalize_body(body)
            if not memory.body:
                raise InvalidInputError("the memory would be empty: give some text")
        if title is not None:
            memory.fields["title"] = " ".join(title.split())
        if tags is not None:
            memory.fields["tags"] = normalize_tags(tags)
        if type is not None:
            memory.fields["type"] = normalize_type(type)
        data = memory.to_bytes()
        if data == memory.raw:
            return None
        session.write(memory.path, core.seal(memory.path, data))
        session.commit(core.subject("edit", memory))
        return parse(data, memory.path)


def edit(
    core: Core, ref: str, editor: Callable[[Path], None], *, allow_secrets: bool = False
) -> Memory | None:
    """Let an editor change a copy of the file; commit it if it changed and still parses.

    Secrets written in the editor are redacted as in `add`, unless allow_secrets is True.
    """
    memory = core.get(ref)
    original = memory.raw or memory.to_bytes()
    import tempfile

    handle, name = tempfile.mkstemp(
        prefix=f"mem-{memory.id or 'edit'}-", suffix=SUFFIX, dir=_scratch_dir(memory.path)
    )
    scratch = Path(name)
    with os.fdopen(handle, "wb") as out:
        out.write(original)
    try:
        editor(scratch)
        edited = scratch.read_bytes()
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    if edited == original:
        scratch.unlink()
        return None
    kept = f"your edit is kept in {scratch}"
    try:
        updated = parse(edited, memory.path)
    except MalformedMemoryError as error:
        raise MalformedMemoryError(
            memory.path, f"{error.reason}; {kept}: fix it there and copy it back", error.line
        ) from None
    if updated.id != memory.id:
        raise InvalidInputError(f"the id of a memory cannot change; {kept}")
    if not allow_secrets:
        found_secrets = _redact_memory(updated, move=False)
        if found_secrets:
            edited = updated.to_bytes()
            updated = parse(edited, memory.path)
        warn_secrets(core, found_secrets)
    with core.writing() as session:
        current = core.plain(memory.path, (core.root / memory.path).read_bytes())
        if current != original:
            raise MemstoreError(
                f"{memory.path} changed while you were editing it; {kept}: merge it by hand"
            )
        session.write(memory.path, core.seal(memory.path, edited))
        session.commit(core.subject("edit", updated))
    scratch.unlink()
    return updated


def warn_secrets(core: Core, found: Counter[str], into: Counter[str] | None = None) -> None:
    """Tell the user what secrets were redacted; with into, count them there instead, for a
    caller that tells its own user (the MCP server: the agent)."""
    if into is not None:
        into.update(found)
    elif found:
        core.reporter.warning(secrets.warning(found))


def warn_duplicates(core: Core, found: list[Duplicate]) -> None:
    from memstore.duplicates import warning

    for duplicate in found:
        core.reporter.warning(warning(duplicate))


def _scratch_dir(path: str) -> str | None:
    """Where an editor's copy goes: memory-backed /dev/shm for an encrypted memory's text."""
    shm = "/dev/shm"
    return shm if is_encrypted(path) and os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _redact_memory(memory: Memory, move: bool = True) -> Counter[str]:
    """Redact the secrets in a memory's text and fields, in place; with move, a new memory
    whose title changed gets the file name of its new title (the old one held the secret)."""
    from memstore.memory import relative_path

    found: Counter[str] = Counter()
    body = secrets.redact_value(memory.body, found)
    fields = {key: secrets.redact_value(value, found) for key, value in memory.fields.items()}
    if not found:
        return found
    title_changed = fields.get("title") != memory.fields.get("title")
    memory.body, memory.fields = body, fields
    created = memory.created
    if move and title_changed and not is_encrypted(memory.path) and created is not None:
        memory.path = relative_path(memory.id, memory.title, created)
    return found
