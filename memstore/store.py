"""The store: the library's front door, used by the CLI, agents and tests alike.

A store is a git repository with a `.memstore.toml` marker and a `memories/` folder. Every change
made through it is one commit. Heavy modules (pygit2, whoosh, yaml, jsonschema) are imported
inside the functions that need them, so that opening a store costs nothing until it is used.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memstore import atomic, gitrepo, ids, locate, search
from memstore.crypto import Keyring
from memstore.errors import (
    AmbiguousIdError,
    DecryptionError,
    InvalidInputError,
    LockTimeoutError,
    MalformedMemoryError,
    MemoryNotFoundError,
    MemstoreError,
    NotARecipientError,
    NotAStoreError,
    RepositoryStateError,
)
from memstore.index import SearchIndex, blob_id
from memstore.locking import WRITE_LOCK_WAIT, FileLock
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    SUFFIX,
    Memory,
    body_of,
    check_size,
    encrypted_path,
    is_encrypted,
    is_memory_name,
    misnamed_encrypted,
    new_memory,
    parse,
)
from memstore.report import CollectingReporter, Reporter
from memstore.results import Filters, Listed, SearchHit
from memstore.search import RELATED_MIN_SHARE
from memstore.text import lead

if TYPE_CHECKING:
    import pygit2

    from memstore import context as context_
    from memstore import review as review_
    from memstore import sync as sync_
    from memstore.doctor import Finding
    from memstore.duplicates import Duplicate
    from memstore.gitrepo import LogEntry
    from memstore.keys import KeyReport
    from memstore.links import RelatedHit
    from memstore.transfer import ExportResult, ImportResult

MARKER_TEXT = "# This folder is a memstore store: memories live in memories/.\nformat = 1\n"
COMMIT_MARKER = "committing"
BULK_MESSAGE_LINES = 50  # a bulk commit message lists this many memories, then a count
AMBIGUOUS_SHOWN = 3  # an ambiguous id prefix lists this many ids, then a count
Clock = Callable[[], datetime]
# A path as the library takes it: text or any path object.
StrPath = str | os.PathLike[str]
Hit = TypeVar("Hit", bound=SearchHit)


def local_now() -> datetime:
    """The current time with the local offset."""
    return datetime.now().astimezone()


@dataclass
class Problem:
    """One problem `check` found."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class Store:
    """A memory store on disk."""

    def __init__(
        self, root: StrPath, *, clock: Clock = local_now, reporter: Reporter | None = None
    ) -> None:
        root = Path(root)
        self.root = root.resolve()
        if not locate.is_store(self.root):
            raise NotAStoreError(
                f"{root} is not a memstore store: run 'mem init {root}' to create one"
            )
        self.clock = clock
        self.reporter: Reporter = reporter or CollectingReporter()
        self.git_dir = gitrepo.git_dir(self.root)
        self.keyring = Keyring()
        self.index = SearchIndex(self.root, self.git_dir, self.reporter, keyring=self.keyring)
        self._write_lock = FileLock(self.git_dir / "memstore" / "write.lock")
        self._repo: pygit2.Repository | None = None

    # Opening

    @classmethod
    def init(
        cls,
        path: StrPath,
        *,
        remote: StrPath | None = None,
        clock: Clock = local_now,
        reporter: Reporter | None = None,
    ) -> Store:
        """Create a store at path (an empty or missing folder, or an existing git repository).

        With remote, the URL becomes the store's `origin` for `sync`.
        """
        from memstore import sync

        path = Path(path).expanduser()
        remote = None if remote is None else os.fspath(remote)
        if locate.is_store(path):
            store = cls(path, clock=clock, reporter=reporter)
            if remote is not None:
                sync.add_remote(store.repo, sync.DEFAULT_REMOTE, remote)
            return store
        if path.exists() and not path.is_dir():
            raise NotAStoreError(f"{path} is a file: choose a folder for the store")
        path.mkdir(parents=True, exist_ok=True)
        if (path / ".git").exists():
            repo = gitrepo.open_repository(path)
        else:
            repo = gitrepo.init_repository(path)
        (path / MEMORY_DIR).mkdir(exist_ok=True)
        files: dict[str, bytes | None] = {locate.MARKER: MARKER_TEXT.encode()}
        files.update(sync.attributes_file(path))
        for name, data in files.items():
            atomic.write_atomic(path / name, data or b"")
        gitrepo.commit_files(repo, files, "Create memstore store", clock())
        sync.configure_merge_driver(repo)
        sync.configure_textconv(repo)
        if remote is not None:
            sync.add_remote(repo, sync.DEFAULT_REMOTE, remote)
        store = cls(path, clock=clock, reporter=reporter)
        store.index.rebuild()  # empty but present, so the first search needs no rebuild
        return store

    @classmethod
    def open(
        cls,
        path: StrPath,
        *,
        create: bool = False,
        clock: Clock = local_now,
        reporter: Reporter | None = None,
    ) -> Store:
        """Open the store at path; with create, make it first if it does not exist yet."""
        path = Path(path)
        if create and not locate.is_store(path):
            return cls.init(path, clock=clock, reporter=reporter)
        return cls(path, clock=clock, reporter=reporter)

    @property
    def repo(self) -> pygit2.Repository:
        if self._repo is None:
            self._repo = gitrepo.open_repository(self.root)
        return self._repo

    # Writing

    def _locked(self) -> Any:
        return _WriteSession(self)

    def check_writable(self) -> None:
        """Refuse early, before any reading, when this process cannot write to the store."""
        from memstore.locking import cannot_write

        try:
            self._write_lock.path.parent.mkdir(mode=0o700, exist_ok=True)
            os.close(os.open(self._write_lock.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as error:
            if not cannot_write(error):
                raise
            raise _cannot_write(self.root, error) from None

    def add(
        self,
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
    ) -> Memory:
        """Add a memory and commit it; encrypt it if asked or if the store's policy says so.

        session names the conversation or work session the memory comes from (default:
        MEM_SESSION): memories of one session lend each other context in `find`. With
        supersedes (an id, id prefix or path), the new memory replaces that one
        (`supersedes: [id]`). Unless check_duplicates is False, an existing memory that the new
        one repeats is reported as a warning (see `duplicates`); the memory is added anyway.
        """
        replaced: builtins.list[str] = []
        if supersedes is not None:
            replaced = [self.get(supersedes).id]
            extra = {**(extra or {}), "supersedes": replaced}
        now = self.clock()
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
            )

        memory = make(source)
        with self._locked() as writing:
            if source is None:
                source = _default_source(self.repo, now)
                memory.fields["source"] = source
            while (self.root / memory.path).exists():  # a clash of 40 random bits: new id
                memory = make(source)
            if self._should_encrypt(memory, encrypt):
                memory.path = encrypted_path(memory)
            data = memory.to_bytes()
            found = self.duplicates(memory.body, exclude=replaced) if check_duplicates else []
            writing.write(memory.path, self._sealed(memory.path, data))
            writing.commit(self._subject("add", memory))
        self._warn_duplicates(found)
        return memory

    def add_many(
        self,
        memories: Iterable[Memory],
        *,
        message: str | None = None,
        default_source: bool = True,
    ) -> builtins.list[Memory]:
        """Write new memories (made with `memory.new_memory`) and commit them all at once.

        For bulk loads: one commit and one index update, whatever the count. A memory without a
        source gets the same default as `add`, unless default_source is False. A memory whose
        file already exists is refused. A memory whose path ends in `.md.age` is encrypted.
        """
        batch = builtins.list(memories)
        if not batch:
            return []
        with self._locked() as session:
            seen: set[str] = set()
            for memory in batch:  # all checked before any file is written
                if memory.path in seen or (self.root / memory.path).exists():
                    raise InvalidInputError(
                        f"{memory.path} already exists: give each new memory its own id"
                    )
                seen.add(memory.path)
            head = gitrepo.read_head(self.git_dir)
            try:
                self._write_batch(session, batch, message, default_source)
            except BaseException:
                # One commit or nothing: an interrupted (Ctrl-C) or failed bulk write leaves no
                # files behind for the next command to commit as changes made outside mem.
                if gitrepo.read_head(self.git_dir) == head:
                    _undo_new_files(self, builtins.list(session.changes))
                raise
        return batch

    def _write_batch(
        self,
        session: _WriteSession,
        batch: builtins.list[Memory],
        message: str | None,
        default_source: bool,
    ) -> None:
        source: str | None = None
        with self.reporter.progress(len(batch), "writing") as advance:
            for memory in batch:
                if default_source and not memory.fields.get("source"):
                    if source is None:
                        source = _default_source(self.repo, self.clock())
                    memory.fields["source"] = source
                # Forced to disk once for the whole batch below, not file by file.
                data = self._sealed(memory.path, memory.to_bytes())
                session.write(memory.path, data, durable=False)
                advance(1)
        os.sync()
        lines = [self._subject("add", memory) for memory in batch]
        if message is None:
            message = lines[0] if len(lines) == 1 else f"add {len(lines)} memories"
        shown = lines[:BULK_MESSAGE_LINES]
        if len(lines) > 1:
            more = len(lines) - len(shown)
            message += "\n\n" + "\n".join(shown) + (f"\n… and {more} more" if more else "")
        session.commit(message)

    def update(
        self,
        ref: str,
        *,
        body: str | None = None,
        title: str | None = None,
        tags: list[str] | None = None,
        type: str | None = None,
    ) -> Memory | None:
        """Change fields or body of a memory; None when nothing changed (no write, no commit)."""
        from memstore.memory import normalize_body, normalize_tags, normalize_type

        with self._locked() as session:
            memory = self.get(ref)
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
            session.write(memory.path, self._sealed(memory.path, data))
            session.commit(self._subject("edit", memory))
            return parse(data, memory.path)

    def edit(self, ref: str, editor: Callable[[Path], None]) -> Memory | None:
        """Let an editor change a copy of the file; commit it if it changed and still parses."""
        memory = self.get(ref)
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
        with self._locked() as session:
            current = self._plain(memory.path, (self.root / memory.path).read_bytes())
            if current != original:
                raise MemstoreError(
                    f"{memory.path} changed while you were editing it; {kept}: merge it by hand"
                )
            session.write(memory.path, self._sealed(memory.path, edited))
            session.commit(self._subject("edit", updated))
        scratch.unlink()
        return updated

    def remove(self, ref: str) -> Memory:
        """Delete a memory (git history keeps it) and commit."""
        with self._locked() as session:
            memory = self._get_for_removal(ref)
            session.delete(memory.path)
            session.commit(self._subject("remove", memory))
        return memory

    def commit_pending(self) -> list[str]:
        """Commit memory files changed outside mem (in an editor, by hand); return their paths."""
        with self._locked() as session:
            return session.committed_pending

    # Reading

    def find(
        self,
        query: str,
        *,
        filters: Filters | None = None,
        limit: int = 10,
        marks: tuple[str, str] = ("**", "**"),
    ) -> list[SearchHit]:
        """Search the memories; see docs/search.md for the query language."""
        _check_limit(limit)
        with self.index.reading() as ix:
            hits = search.search(
                ix, query, filters or Filters(), limit, self._read_body, marks, self.clock()
            )
            return self._reveal(self._below_successors(ix, hits))

    def _below_successors(self, ix: Any, hits: builtins.list[Hit]) -> builtins.list[Hit]:
        """Mark superseded hits with their successors, and rank each below its successors."""
        from memstore.links import order_after_successors

        successors = search.successors(ix, [hit.id for hit in hits])
        for hit in hits:
            hit.superseded_by = successors.get(hit.id, [])
        return order_after_successors(hits, successors)

    def list(self, *, filters: Filters | None = None, limit: int = 0) -> list[Listed]:
        """Memories newest first."""
        _check_limit(limit)
        with self.index.reading() as ix:
            return self._reveal(search.listing(ix, filters or Filters(), limit))

    def get(self, ref: str) -> Memory:
        """The memory named by an id, a unique id prefix, or a path."""
        path = self.resolve(ref)
        data = self._plain(path, (self.root / path).read_bytes())
        return parse(data, path)

    def resolve(self, ref: str) -> str:
        """The store-relative path of the memory named by ref."""
        ref = ref.strip()
        if not ref:
            raise InvalidInputError("no memory named: give an id, an id prefix or a path")
        if "/" in ref or is_memory_name(ref) or os.sep in ref:
            return self._resolve_path(ref)
        if not ids.looks_like_id_prefix(ref):
            raise MemoryNotFoundError(
                f"{ref!r} is not an id or a path: use 'mem find' or 'mem list' to get one"
            )
        with self.index.reading() as ix:
            matches, count = search.id_matches(ix, ref.lower(), limit=AMBIGUOUS_SHOWN + 1)
        if not matches:
            self._refuse_locked(ref)
            raise MemoryNotFoundError(
                f"no memory has the id {ref!r}: use 'mem find' or 'mem list' to get one"
            )
        if count == 1:
            return matches[0].path
        if len({m.id for m in matches}) == 1 and count == len(matches):
            paths = sorted(m.path for m in matches)
            raise AmbiguousIdError(shared_id_message(matches[0].id, paths))
        shown = ", ".join(dict.fromkeys(m.id for m in matches[:AMBIGUOUS_SHOWN]))
        more = f" and {count - AMBIGUOUS_SHOWN} more" if count > AMBIGUOUS_SHOWN else ""
        raise AmbiguousIdError(
            f"id prefix {ref!r} matches {count} memories ({shown}{more}): type more characters"
        )

    def _resolve_path(self, ref: str) -> str:
        candidate = Path(ref).expanduser()
        full = candidate if candidate.is_absolute() else (Path.cwd() / candidate)
        if not full.exists() and not candidate.is_absolute():
            full = self.root / candidate
        memory_root = (self.root / MEMORY_DIR).resolve()
        try:
            relative = full.resolve().relative_to(memory_root)
        except ValueError:
            raise InvalidInputError(
                f"{ref} is outside the store's memories folder: give a path inside"
                f" {self.root / MEMORY_DIR}"
            ) from None
        if not full.is_file() or full.is_symlink():
            raise MemoryNotFoundError(f"no memory file at {ref}: check the path")
        return f"{MEMORY_DIR}/{relative.as_posix()}"

    def _read_body(self, path: str) -> str | None:
        try:
            data = (self.root / path).read_bytes()
            if is_encrypted(path):
                plain = self.keyring.try_decrypt(data, path)
                return None if plain is None else body_of(plain)
            return body_of(data)
        except (OSError, MemstoreError):
            return None

    def log(self, ref: str | None = None, limit: int = 0) -> builtins.list[LogEntry]:
        """History from git, newest first; for one memory with ref, a removed one too."""
        if not ref:
            return list(gitrepo.history(self.repo, None, limit))
        try:
            paths = [self.resolve(ref)]
        except (MemoryNotFoundError, InvalidInputError) as error:  # not in the files: history
            paths = self._removed_paths(ref, error)
        return list(gitrepo.history(self.repo, paths, limit))

    def _removed_paths(self, ref: str, error: MemstoreError) -> builtins.list[str]:
        """The paths a removed memory had, found in history by id, id prefix or path."""
        removed = gitrepo.removed_files(self.repo, MEMORY_DIR)
        ref = ref.strip()
        if "/" in ref or os.sep in ref or is_memory_name(ref):
            full = Path(ref).expanduser()
            candidates = {ref.replace(os.sep, "/")}
            for base in (Path.cwd(), self.root):
                try:
                    rel = (base / full).resolve().relative_to(self.root.resolve())
                    candidates.add(rel.as_posix())
                except ValueError:
                    continue
            paths = sorted(candidates & removed.keys())
            if not paths and "/" not in ref and os.sep not in ref:  # a file name alone
                paths = sorted(p for p in removed if p.rsplit("/", 1)[-1] == ref)
            if not paths:
                raise error
            return paths
        prefix = ref.lower()
        by_id: dict[str, builtins.list[str]] = {}
        for path, data in removed.items():
            name = path.rsplit("/", 1)[-1]
            if is_encrypted(name):
                memory_id = name.removesuffix(ENCRYPTED_SUFFIX)
            else:
                try:
                    memory_id = parse(data, path).id
                except MalformedMemoryError:
                    continue
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
        return sorted(next(iter(by_id.values())))

    def context(self, query: str, budget: int = 2000) -> context_.Context:
        """The most relevant memories that fit in about budget tokens; see docs/agents.md."""
        from memstore import context

        return context.build(self, query, budget)

    def diff(self, rev_range: str | None = None) -> review_.Review:
        """Memory-level changes in a range (A..B, A...B, REV for REV..HEAD); see docs/review.md."""
        from memstore import review

        spec, old, new = review.resolve_range(self.repo, rev_range)
        return review.compare(
            self.repo, old, new, spec, decrypt=self.keyring.try_decrypt, lookup=self._title_of
        )

    def _title_of(self, ref: str) -> str | None:
        try:
            return self.get(ref).title
        except MemstoreError:
            return None

    def reindex(self) -> None:
        """Rebuild the search index from the files."""
        self.index.rebuild()

    # Import and export (docs/import-export.md)

    def import_memories(self, source: StrPath) -> ImportResult:
        """Import a JSONL file or a folder of Markdown notes in one commit; skip what is there.

        Bad lines are listed in the result (file, line, what is wrong), the rest is imported.
        """
        from memstore import transfer

        source = Path(source).expanduser()
        if not source.exists():
            raise InvalidInputError(f"{source} does not exist: give a .jsonl file or a folder")
        items = transfer.read_items(source)
        return transfer.import_items(self, items, transfer.count_items(source), source.name)

    def export_memories(self) -> ExportResult:
        """Every memory as a record for JSONL, by id; files that cannot be read are left out."""
        from memstore import transfer

        return transfer.export(self)

    # Links, revisions and duplicates (docs/links.md)

    def duplicates(self, text: str, *, exclude: Iterable[str] = ()) -> builtins.list[Duplicate]:
        """Memories that a new memory with this text would repeat: exact first, then similar."""
        from memstore import duplicates

        skip = frozenset(exclude)
        found: dict[str, Duplicate] = {}
        with self.index.reading() as ix:
            same = search.having(ix, "digest", [duplicates.digest(text)])
            for item in self._reveal(same):
                if item.id not in skip:
                    found[item.id] = duplicates.Duplicate(
                        item.id, item.title, item.path, "exact", 1.0
                    )
            near = search.similar(
                ix, text, duplicates.CANDIDATES, skip | set(found), rarest=duplicates.RARE_TERMS
            )
        for item, _ in near:
            score = duplicates.similarity(text, self._read_body(item.path) or "")
            if score >= duplicates.SIMILAR:
                self._reveal([item])
                found[item.id] = duplicates.Duplicate(
                    item.id, item.title, item.path, "similar", round(score, 3)
                )
        return sorted(found.values(), key=lambda d: (d.kind != "exact", -d.similarity, d.id))

    def _warn_duplicates(self, found: builtins.list[Duplicate]) -> None:
        from memstore.duplicates import warning

        for duplicate in found:
            self.reporter.warning(warning(duplicate))

    def link(self, ref: str, target: str) -> Memory | None:
        """Add target's id to the `links` of the memory ref; None if it is linked already.

        target is an id, id prefix, path, title or alias. Nothing is written when it was linked.
        """
        with self._locked() as session:
            memory = self.get(ref)
            target_id = self._resolve_link(target)
            if target_id == memory.id:
                raise InvalidInputError(f"{memory.id} cannot link to itself: name another memory")
            if target_id in memory.links:
                return None
            memory.fields["links"] = [*memory.links, target_id]
            data = memory.to_bytes()
            session.write(memory.path, self._sealed(memory.path, data))
            session.commit(self._subject("link", memory) + f" to {target_id}")
            return parse(data, memory.path)

    def _resolve_link(self, target: str) -> str:
        """The id a link target names: an id, id prefix or path, else a title or alias."""
        from memstore.links import key

        try:
            return self.get(target).id
        except MemoryNotFoundError:
            with self.index.reading() as ix:
                named = search.having(ix, "names", [key(target)])
            if len(named) == 1:
                return named[0].id
            if not named:
                raise
            shown = ", ".join(item.id for item in named[:3])
            raise AmbiguousIdError(
                f"{len(named)} memories are named {target!r} ({shown}): give an id"
            ) from None

    def backlinks(self, ref: str) -> builtins.list[Listed]:
        """The memories that link to ref (by `links:` or a `[[wiki link]]`), newest first."""
        memory = self.get(ref)
        with self.index.reading() as ix:
            return self._reveal(self._backlinks(ix, memory))

    def successors(self, ref: str) -> builtins.list[Listed]:
        """The memories whose `supersedes` names ref, newest first."""
        memory = self.get(ref)
        with self.index.reading() as ix:
            newer = search.successors(ix, [memory.id]).get(memory.id, [])
            found = search.having(ix, "id", newer)
        return self._reveal(sorted(found, key=lambda item: item.id, reverse=True))

    def _backlinks(self, ix: Any, memory: Memory) -> builtins.list[Listed]:
        from memstore import links

        wanted = [memory.id, *links.names(memory), *links.id_prefixes(memory.id)]
        found = [item for item in search.having(ix, "links", wanted) if item.id != memory.id]
        return sorted(found, key=lambda item: item.id, reverse=True)

    def related(self, ref: str, limit: int = 10) -> builtins.list[RelatedHit]:
        """Memories related to ref: by supersedes and links (both ways) first, then similar text.

        Each hit says how it is related: "supersedes", "superseded by", "links to", "linked from"
        or "similar" (a "more like this" search on the memory's key terms, scored).
        """
        from memstore import links
        from memstore.links import RelatedHit

        _check_limit(limit)
        memory = self.get(ref)
        relations: dict[str, str] = {}

        def note(ids_: Iterable[str], relation: str) -> None:
            for other in ids_:
                if other != memory.id:
                    relations.setdefault(other, relation)

        with self.index.reading() as ix:
            note(self._existing(ix, memory.supersedes), "supersedes")
            note(search.successors(ix, [memory.id]).get(memory.id, []), "superseded by")
            outgoing = [self._link_ids(ix, target) for target in links.targets(memory)]
            note((i for ids_ in outgoing for i in ids_), "links to")
            note((item.id for item in self._backlinks(ix, memory)), "linked from")
            text = f"{memory.title}\n{memory.body}"
            near = search.similar(
                ix,
                text,
                limit or 10,
                frozenset({memory.id, *relations}),
                min_share=RELATED_MIN_SHARE,
            )
            by_id = {item.id: item for item in search.having(ix, "id", [*relations])}
        hits: builtins.list[RelatedHit] = []
        for other, relation in relations.items():
            if other in by_id:
                item = by_id[other]
                snippet = lead(self._read_body(item.path) or "")
                hits.append(
                    RelatedHit(**item.to_dict(), score=0.0, snippet=snippet, relation=relation)
                )
        for item, score in near:
            snippet = lead(self._read_body(item.path) or "")
            hits.append(RelatedHit(**item.to_dict(), score=score, snippet=snippet))
        return self._reveal(hits[:limit] if limit else hits)

    def _existing(self, ix: Any, memory_ids: builtins.list[str]) -> builtins.list[str]:
        return [item.id for item in search.having(ix, "id", memory_ids)]

    def _link_ids(self, ix: Any, target: str) -> builtins.list[str]:
        """The ids a link target (as a key) names, resolved through the index."""
        from memstore import ids as ids_
        from memstore.links import MIN_PREFIX

        exact = search.having(ix, "id", [target])
        if exact:
            return [exact[0].id]
        named = search.having(ix, "names", [target])
        if named:
            return [item.id for item in named]
        if len(target) >= MIN_PREFIX and ids_.looks_like_id_prefix(target):
            matches = search.by_id_prefix(ix, target)
            return [matches[0].id] if len(matches) == 1 else []
        return []

    # Encryption (docs/encryption.md)

    def _plain(self, path: str, data: bytes) -> bytes:
        """A memory file's text: its bytes, decrypted when the file is encrypted."""
        return self.keyring.decrypt(data, path) if is_encrypted(path) else data

    def _sealed(self, path: str, text: bytes) -> bytes:
        """The bytes to write for a memory's text: encrypted to the folder's recipients if due."""
        if not is_encrypted(path):
            return text
        from memstore import crypto, keys

        return crypto.encrypt(text, keys.recipients_for(self.root, path))

    def _subject(self, verb: str, memory: Memory) -> str:
        """A commit subject; an encrypted memory's gives its id only, never its title."""
        if is_encrypted(memory.path):
            return f"{verb} {memory.id}"
        return f"{verb} {memory.id}: {memory.title}"

    def _describe(self, path: str, data: bytes) -> str:
        """A changed file's commit subject after checking it reads (decrypted if it can be)."""
        from memstore import crypto

        if not is_encrypted(path):
            memory = parse(data, path)
            return f"{memory.id}: {memory.title}"
        stem = path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
        try:
            plain = self.keyring.try_decrypt(data, path)
        except NotARecipientError:  # someone else's memory: sound age, committed as it is
            return stem
        if plain is not None:
            return parse(plain, path).id or stem
        if not crypto.looks_encrypted(data):  # without the key, check what can be checked
            raise MalformedMemoryError(path, "not age ciphertext")
        return stem

    def _should_encrypt(self, memory: Memory, asked: bool | None) -> bool:
        if asked is not None:
            return asked
        from memstore.keys import read_policy

        return read_policy(self.root).covers(memory)

    def _reveal(self, items: builtins.list[Any]) -> builtins.list[Any]:
        """Fill in what the index keeps no copy of for encrypted memories, from their files.

        Without an identity (gone since they were indexed) they are left out; an identity that
        cannot be used is an error.
        """
        if not any(is_encrypted(item.path) for item in items):
            return items
        if not self.keyring.available():
            self.reporter.notice("encrypted memories left out: no identity to read them")
            return [item for item in items if not is_encrypted(item.path)]
        for item in items:
            if not is_encrypted(item.path):
                continue
            try:
                memory = self.get(item.path)
            except (OSError, MalformedMemoryError, DecryptionError):
                continue
            item.title, item.type, item.tags = memory.title, memory.type, memory.tags
            item.created = memory.created_text
        return items

    def _get_for_removal(self, ref: str) -> Memory:
        """The memory to remove; an encrypted one named by its path needs no identity."""
        path = self.resolve(ref) if "/" in ref or os.sep in ref else None
        if path is not None and is_encrypted(path) and not self.keyring.available():
            stem = path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
            return Memory(path=path, fields={"id": stem}, body="")
        return self.get(path or ref)

    def _refuse_locked(self, ref: str) -> None:
        """Say so when ref names an encrypted memory the index could not read without a key."""
        from memstore.crypto import no_identity

        prefix = ref.lower()
        for path in self.index.locked():
            if path.rsplit("/", 1)[-1].startswith(prefix):
                raise no_identity(path)

    def key_init(self) -> KeyReport:
        """Create or adopt the identity; add its public key if the store has no recipients yet."""
        from memstore.keyops import init_key

        return init_key(self)

    def recipients(self) -> builtins.list[tuple[str, builtins.list[str]]]:
        """Every recipients file (store-relative) with its keys."""
        from memstore.keys import list_recipients

        return list_recipients(self.root)

    def add_recipient(self, key: str, folder: str | None = None) -> bool:
        """Add a public key to a folder's recipients file and commit; False if it was there."""
        from memstore.keyops import change_recipients

        return change_recipients(self, key, folder, add=True)

    def remove_recipient(self, key: str, folder: str | None = None) -> bool:
        """Remove a public key from a folder's recipients file and commit; False if absent."""
        from memstore.keyops import change_recipients

        return change_recipients(self, key, folder, add=False)

    def rekey(self, folder: str | None = None) -> builtins.list[str]:
        """Re-encrypt encrypted memories to their current recipients, in one commit."""
        from memstore.keyops import rekey

        return rekey(self, folder)

    # Sharing

    @classmethod
    def clone(
        cls,
        url: StrPath,
        path: StrPath,
        *,
        clock: Clock = local_now,
        reporter: Reporter | None = None,
    ) -> Store:
        """Make a local store from a remote one, a URL or a path (an empty remote: a new store)."""
        from memstore import sync

        url, path = os.fspath(url), Path(path)
        reporter = reporter or CollectingReporter()
        sync.clone_repository(url, path.expanduser(), reporter)
        if not locate.is_store(path.expanduser()):
            return cls.init(path, clock=clock, reporter=reporter)
        store = cls(path.expanduser(), clock=clock, reporter=reporter)
        store.index.rebuild()
        return store

    def sync(self, remote: str | None = None) -> sync_.SyncResult:
        """Commit pending edits, fetch, merge memory by memory, push; see docs/sync.md."""
        from memstore import sync

        return sync.sync(self, remote)

    def status(self) -> sync_.Status:
        """Pending changes, commits ahead and behind, the last sync, and open conflicts."""
        from memstore import sync

        return sync.status(self)

    def remotes(self) -> builtins.list[tuple[str, str]]:
        """The remotes as (name, url)."""
        from memstore import sync

        return sync.remotes(self.repo)

    def add_remote(self, name: str, url: StrPath) -> None:
        """Add a remote to sync with (a URL or a path)."""
        from memstore import sync

        sync.add_remote(self.repo, name, os.fspath(url))

    def remove_remote(self, name: str) -> None:
        """Forget a remote and what was fetched from it; the remote itself is not touched."""
        from memstore import sync

        sync.remove_remote(self.repo, name)

    def set_remote_url(self, name: str, url: StrPath) -> None:
        """Point a remote at another URL (a path, file://, ssh or https)."""
        from memstore import sync

        sync.set_remote_url(self.repo, name, os.fspath(url))

    def conflicts(self) -> builtins.list[str]:
        """Paths of memories flagged with an unresolved sync conflict."""
        from memstore import sync

        return self.index.conflicts(lambda: sync.conflicted_paths(self.root, self.keyring))

    def find_conflicts(
        self,
        query: str = "",
        *,
        filters: Filters | None = None,
        limit: int = 10,
        marks: tuple[str, str] = ("**", "**"),
    ) -> builtins.list[SearchHit]:
        """Memories with an unresolved sync conflict, matching query (all when it is empty)."""
        _check_limit(limit)
        flagged = set(self.conflicts())
        if not flagged:
            return []
        if query.strip():
            hits = self.find(query, filters=filters, limit=0, marks=marks)
        else:
            hits = [
                SearchHit(**item.to_dict(), score=0.0, snippet="")
                for item in self.list(filters=filters)
            ]
        found = [hit for hit in hits if hit.path in flagged]
        return found[:limit] if limit else found

    def resolve_conflict(self, ref: str, keep: str | None = None) -> Memory:
        """Clear a memory's conflict flag; keep '1', '2' or 'both' settles its conflict blocks."""
        from memstore.merge import has_conflict, resolve_memory

        with self._locked() as session:
            memory = self.get(ref)
            current = self._plain(memory.path, (self.root / memory.path).read_bytes())
            if not has_conflict(current):
                raise InvalidInputError(f"{memory.path} has no conflict to resolve")
            data = resolve_memory(current, keep, memory.path)
            session.write(memory.path, self._sealed(memory.path, data))
            session.commit(self._subject("resolve", memory))
        return parse(data, memory.path)

    def doctor(self, fix: bool = False) -> builtins.list[Finding]:
        """Check the repository, the index and the files; with fix, repair what is safe."""
        from memstore.doctor import doctor

        return doctor(self, fix=fix)

    def check(self) -> builtins.list[Problem]:
        """Validate every memory file: schema, duplicate ids, broken links, stray files.

        Hidden folders under memories/ (an editor's `.obsidian/` or `.trash/`) are left alone.
        """
        from memstore.links import broken_links, stem
        from memstore.merge import has_conflict
        from memstore.validate import validate_header

        problems: builtins.list[Problem] = []
        seen: dict[str, str] = {}
        locked = foreign = 0
        checked: builtins.list[Memory] = []
        unread: builtins.list[str] = []
        base = self.root / MEMORY_DIR
        for full in sorted(base.rglob("*")) if base.is_dir() else []:
            rel = full.relative_to(self.root).as_posix()
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
                problems.append(
                    Problem(rel, 1, "not a memory file (.md): move it out of memories/")
                )
                continue
            try:
                data = full.read_bytes()
            except OSError as error:
                problems.append(Problem(rel, 1, f"cannot be read ({error.strerror or error})"))
                continue
            misnamed = misnamed_encrypted(rel)  # searches skip it: they need the id in the name
            try:
                if is_encrypted(rel):
                    plain = self.keyring.try_decrypt(data, rel)
                    if plain is None:
                        if misnamed is not None:
                            problems.append(Problem(rel, 1, misnamed))
                            continue
                        locked += 1
                        unread.append(stem(rel))
                        continue
                    data = plain
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
            self.reporter.notice(
                f"{locked} encrypted {'memory' if locked == 1 else 'memories'} not checked:"
                " no identity to read them ('mem key init', or set MEM_IDENTITY)"
            )
        if foreign:
            self.reporter.notice(
                f"{foreign} encrypted {'memory' if foreign == 1 else 'memories'} not checked:"
                " not encrypted to your identity"
            )
        return problems


def _cannot_write(root: Path, error: OSError) -> RepositoryStateError:
    return RepositoryStateError(
        f"{root} cannot be written ({error.strerror or error}): mem can search it but not"
        " change it; get write access (or copy the store), then try again"
    )


def shared_id_message(memory_id: str, paths: builtins.list[str]) -> str:
    """What to say when one id is in several files (a memory file copied by hand)."""
    return (
        f"id {memory_id} is used by {len(paths)} files: {', '.join(paths)}; if one is a copy,"
        " delete it; to keep both, run 'mem add --file PATH' on one (it gets a new id), then"
        " delete PATH. Name a file by its path to show or remove just that one"
    )


def duplicate_id_problem(memory_id: str, first: str, copy: str) -> str:
    """What `mem check` says of the second file with an id, and how to fix it."""
    return (
        f"duplicate id {memory_id}: also in {first}; if this file is a copy, delete it; to keep"
        f" both, run 'mem add --file {copy}' (the text gets a new id), then delete this file"
    )


def _undo_new_files(store: Store, paths: builtins.list[str]) -> None:
    """Remove new memory files of a write that did not commit, and their .git/index entries."""
    folders: set[Path] = set()
    for path in paths:
        full = store.root / path
        full.unlink(missing_ok=True)
        folders.add(full.parent)
    gitrepo.unstage(store.repo, paths)  # staged just before an interrupted commit
    memories = store.root / MEMORY_DIR
    # A Ctrl-C that lands between creating a temporary file and the rename may leave one in any
    # folder; the write lock is held, so every temporary file here is this write's.
    for walked, _, names in os.walk(memories):
        for name in names:
            if atomic.is_temporary(name):
                (Path(walked) / name).unlink(missing_ok=True)
                folders.add(Path(walked))
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        while folder != memories and folder.is_relative_to(memories):
            try:
                folder.rmdir()  # only when empty: a month folder made for the import
            except OSError:
                break
            folder = folder.parent


def _default_source(repo: pygit2.Repository, now: datetime) -> str:
    """Who a memory comes from when the caller does not say: MEM_SOURCE, else the author."""
    source = os.environ.get("MEM_SOURCE") or gitrepo.signature(repo, now).name
    return " ".join(source.split())


def _scratch_dir(path: str) -> str | None:
    """Where an editor's copy goes: memory-backed /dev/shm for an encrypted memory's text."""
    shm = "/dev/shm"
    return shm if is_encrypted(path) and os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidInputError(f"the limit must be 0 or more, not {limit}")


class _WriteSession:
    """One write: the store lock, editor changes committed first, then one commit of ours."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.changes: dict[str, bytes | None] = {}
        self.committed_pending: list[str] = []
        self._hold: Any = None

    def __enter__(self) -> _WriteSession:
        from memstore.locking import cannot_write

        store = self.store
        self._hold = store._write_lock.hold(WRITE_LOCK_WAIT)
        try:
            (store.git_dir / "memstore").mkdir(mode=0o700, exist_ok=True)
            self._hold.__enter__()
        except TimeoutError:
            raise LockTimeoutError(
                f"another mem process has been writing to {store.root} for"
                f" {WRITE_LOCK_WAIT:.0f} s: wait for it to finish, then try again"
            ) from None
        except OSError as error:
            if not cannot_write(error):
                raise
            raise _cannot_write(store.root, error) from None
        try:
            self._clear_killed_commit()
            gitrepo.check_writable(store.repo)
            self._commit_pending()
        except BaseException:
            self._hold.__exit__(None, None, None)
            raise
        return self

    def _clear_killed_commit(self) -> None:
        """Remove git lock files that a mem process killed in the middle of a commit left.

        libgit2 locks .git/index and the branch with lock files that a killed process leaves
        behind, and they then stop every commit. A marker written before each commit and removed
        after it tells them apart from a git program's: with the write lock held, a marker left
        means its writer died, and lock files made while it was committing are its own.
        """
        marker = self.store.git_dir / "memstore" / COMMIT_MARKER
        try:
            started = marker.stat().st_mtime
        except FileNotFoundError:
            return
        for lock in gitrepo.git_lock_files(self.store.repo):
            if started - 1 <= lock.stat().st_mtime <= started + 30:
                lock.unlink(missing_ok=True)
                self.store.reporter.notice(
                    f"removed {lock.name}, left by a mem process killed while committing"
                )
        marker.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self._hold.__exit__(*exc)

    def write(self, path: str, data: bytes, durable: bool = True) -> None:
        check_size(data)
        self.changes[path] = data  # first: an interrupted write must be undone too
        atomic.write_atomic(self.store.root / path, data, durable=durable)

    def delete(self, path: str) -> None:
        (self.store.root / path).unlink(missing_ok=True)
        self.changes[path] = None

    def commit(self, message: str) -> str:
        return self._commit(self.changes, message)

    def _commit(self, changes: dict[str, bytes | None], message: str) -> str:
        store = self.store
        old_head = gitrepo.read_head(store.git_dir)
        marker = store.git_dir / "memstore" / COMMIT_MARKER
        marker.write_text(f"{os.getpid()}\n")
        try:
            new_head = gitrepo.commit_files(store.repo, changes, message, store.clock())
        finally:  # a failure, unlike a kill, leaves no lock file: libgit2 removes its own
            marker.unlink(missing_ok=True)
        try:
            store.index.record(changes, old_head, new_head)
        except Exception as error:  # the commit stands; the cache can always be rebuilt
            store.index.invalidate()
            store.reporter.warning(
                f"the search index could not be updated ({error}); the next search rebuilds it"
            )
        return new_head

    def _commit_pending(self) -> None:
        """Commit memory files edited, added or deleted outside mem; leave anything else alone."""
        store = self.store
        candidates = store.index.pending()
        complete = candidates is None
        if candidates is None:  # unknown after a rebuild: ask git once
            candidates = set(gitrepo.pending_changes(store.repo, MEMORY_DIR))
        changes: dict[str, bytes | None] = {}
        clean: dict[str, str | None] = {}
        lines: list[str] = []
        for path in sorted(candidates):
            name = path.rsplit("/", 1)[-1]
            full = store.root / path
            committed = gitrepo.committed_blob_id(store.repo, path)
            data = None if full.is_symlink() or not full.is_file() else full.read_bytes()
            current = None if data is None else blob_id(data)
            if current == committed or not is_memory_name(name) or name.startswith("."):
                clean[path] = current
                continue
            if data is None:
                changes[path] = None
                lines.append(f"remove {path}")
                continue
            try:
                subject = store._describe(path, data)
            except MemstoreError as error:
                store.reporter.warning(f"{error}: not committed until it is fixed")
                continue
            changes[path] = data
            verb = "add" if committed is None else "edit"
            lines.append(f"{verb} {subject}")
        if changes:
            if len(lines) == 1:
                message = f"{lines[0]} (changed outside mem)"
            else:
                message = f"record {len(lines)} changes made outside mem\n\n" + "\n".join(lines)
            self._commit(changes, message)
            self.committed_pending = sorted(changes)
        if clean or complete:
            store.index.settle(clean, complete)
