"""Time travel: the memories as they were at a date or revision, a memory's life, removed ones.

A point in history is a git revision (`HEAD~3`, a commit id, a branch or tag) or a date or age
read as `when.parse_when` reads them (`2026-06-01`, `3 weeks ago`, `7d`): the last commit at or
before that moment on the current branch's first-parent history, by commit time (a date alone
means the end of that day, in the store clock's time zone). A text that is both an abbreviated
commit id and an age (`100d`) is the commit, as git would read it.

Searching at a point (`Snapshot`) needs an index of that tree. The first search builds one in
`.git/memstore/asof/<commit>-<identity>/` from the blobs (nothing is checked out): a copy of the
store's index made of hard links (Whoosh never changes a file it has written), with the
documents that differ from that tree deleted and the tree's versions added, built with
`index.document` and the index's schema (a fresh build when most differ). What differs is found
by a tree diff from the commit the store's index reflects, plus the paths it read from an edited
work tree, so the cost follows the change, not the store. Later searches reuse it; the
CACHE_KEEP most recently used are kept. Dates are looked up in a kept copy of the first-parent
history (`first_parents`).

Encrypted memories are read with the store's keyring: whoever holds the key finds them as they
were; for others they stay sealed, as in the store's own index.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import gitrepo, search
from memstore.errors import (
    AmbiguousIdError,
    DecryptionError,
    InvalidInputError,
    MalformedMemoryError,
    MemoryNotFoundError,
    MemstoreError,
    NotARecipientError,
)
from memstore.gitrepo import LogEntry
from memstore.index import (
    REBUILD_CHUNK,
    REBUILD_POOL_MB,
    SearchIndex,
    build_schema,
    document,
    sealed_document,
)
from memstore.locking import FileLock
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    SUFFIX,
    Memory,
    body_of,
    is_encrypted,
    is_memory_name,
    misnamed_encrypted,
    parse,
)
from memstore.report import Reporter
from memstore.results import Filters, Listed, SearchHit

if TYPE_CHECKING:
    import pygit2
    from whoosh.index import Index as WhooshIndex

    from memstore.crypto import Keyring

CACHE_DIR = "asof"
CACHE_KEEP = 4  # indexes of past points kept, the most recently used
CHAIN_FILE = "first-parent"  # HEAD's first-parent history, beside the index (`first_parents`)
_HEX = re.compile(r"^[0-9a-f]{4,40}$")
_CHAIN_MAGIC = b"memstore first-parent 1\n"  # then the id width, then (time, offset, id)s
_SHORT = re.compile(r"-([0-9a-hjkmnp-tv-z]{8})\.md$")
Clock = Callable[[], datetime]


# Points in history


def resolve_point(
    repo: pygit2.Repository, text: str, now: datetime, *, end: bool = True, before: bool = False
) -> str | None:
    """The commit a date, age or revision names.

    A date alone is its end (or its start, with end=False). A moment before the first commit is
    an error, or None with before=True (`mem diff --since`: everything).
    """
    from memstore.when import parse_when

    text = text.strip()
    if not text:
        raise InvalidInputError(
            "no date or revision given: give 2026-06-01, '3 weeks ago' or HEAD~3"
        )
    if repo.head_is_unborn:
        raise InvalidInputError("the store has no commits yet: add a memory first")
    if _HEX.match(text.lower()):
        found = _revision(repo, text)
        if found is not None:
            return found
    try:
        moment = parse_when(text, end=end, now=now)
    except InvalidInputError:
        moment = None
    if moment is not None:
        return commit_at(repo, moment, text, before)
    found = _revision(repo, text)
    if found is None:
        raise InvalidInputError(
            f"cannot read {text!r} as a date or a revision: give a date (2026-06-01), an age"
            " ('3 weeks ago', 7d) or a commit, branch or tag"
        )
    return found


def _revision(repo: pygit2.Repository, text: str) -> str | None:
    import pygit2

    try:
        return str(repo.revparse_single(text).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def commit_at(
    repo: pygit2.Repository, moment: datetime, shown: str, before: bool = False
) -> str | None:
    """The last commit at or before moment on HEAD's first-parent history (by commit time)."""
    limit = moment.timestamp()
    chain = first_parents(repo)
    for time, _, commit in chain:
        if time <= limit:
            return commit.hex()
    if before:
        return None
    time, offset, _ = chain[-1]
    first = datetime.fromtimestamp(time, timezone(timedelta(minutes=offset)))
    raise InvalidInputError(
        f"the store has no commit at or before {shown!r}: its history starts"
        f" {first:%Y-%m-%d %H:%M}; give a later date"
    )


def first_parents(repo: pygit2.Repository) -> list[tuple[int, int, bytes]]:
    """HEAD's first-parent history, newest first: (commit time, its offset, raw commit id).

    Kept in `.git/memstore/first-parent` and extended from HEAD to the first commit it
    already has, so that reading a date does not walk the whole history in every process (a
    commit read costs tens of microseconds: seconds over a long history).
    """
    import pygit2

    from memstore import atomic

    head = repo.head.peel(pygit2.Commit)
    cache = Path(repo.path) / "memstore" / CHAIN_FILE
    width = len(head.id.raw)
    known = _read_chain(cache, width)
    if known and known[0][2] == head.id.raw:
        return known
    at = {commit: number for number, (_, _, commit) in enumerate(known)}
    walked: list[tuple[int, int, bytes]] = []
    commit: Any = head
    while True:
        number = at.get(commit.id.raw)
        if number is not None:
            chain = walked + known[number:]
            break
        walked.append((commit.commit_time, commit.commit_time_offset, commit.id.raw))
        if not commit.parents:
            chain = walked
            break
        commit = commit.parents[0]
    record = struct.Struct(f"<qh{width}s")
    data = _CHAIN_MAGIC + bytes([width]) + b"".join(record.pack(*entry) for entry in chain)
    with contextlib.suppress(OSError):  # a store that cannot be written: walk again next time
        cache.parent.mkdir(mode=0o700, exist_ok=True)
        atomic.write_atomic(cache, data, mode=0o600, durable=False)
    return chain


def _read_chain(path: Path, width: int) -> list[tuple[int, int, bytes]]:
    """The cached first-parent history; empty when missing, damaged or of another hash."""
    try:
        data = path.read_bytes()
        if data[: len(_CHAIN_MAGIC)] != _CHAIN_MAGIC or data[len(_CHAIN_MAGIC)] != width:
            return []
        return list(struct.iter_unpack(f"<qh{width}s", data[len(_CHAIN_MAGIC) + 1 :]))
    except (OSError, IndexError, struct.error):
        return []


def _memory_path(path: str) -> bool:
    """Whether a path is one `memory_files` would list: a memory file below memories/, in no
    hidden folder."""
    parts = path.split("/")
    if parts[0] != MEMORY_DIR or len(parts) < 2 or not is_memory_name(parts[-1]):
        return False
    return not any(part.startswith(".") for part in parts[1:])


def memory_blob(tree: Any, path: str) -> str | None:
    """The blob id of path in a tree, if it is a memory file there (as `memory_files` finds)."""
    if not _memory_path(path):
        return None
    try:
        entry = tree[path]
    except KeyError:
        return None
    return str(entry.id) if entry.type_str == "blob" else None


def memory_blobs(repo: pygit2.Repository, tree: Any, paths: set[str]) -> dict[str, str | None]:
    """`memory_blob` of many paths, each folder's tree read once (a lookup by path reads every
    tree along it again)."""
    import pygit2

    found: dict[str, str | None] = {}
    folders: dict[str, Any] = {}
    for path in sorted(paths):
        found[path] = None
        if not _memory_path(path):
            continue
        folder, _, name = path.rpartition("/")
        if folder not in folders:
            try:
                folders[folder] = repo[tree[folder].id]
            except KeyError:
                folders[folder] = None
        here = folders[folder]
        if isinstance(here, pygit2.Tree) and name in here:
            entry = here[name]
            found[path] = str(entry.id) if entry.type_str == "blob" else None
    return found


def memory_files(repo: pygit2.Repository, tree: Any) -> dict[str, str]:
    """Every memory file below memories/ in a tree, with its blob id."""
    import pygit2

    found: dict[str, str] = {}
    try:
        top = repo[tree[MEMORY_DIR].id]
    except KeyError:
        return found
    stack: list[tuple[Any, str]] = [(top, MEMORY_DIR)]
    while stack:
        here, base = stack.pop()
        if not isinstance(here, pygit2.Tree):
            continue
        for entry in here:
            name = entry.name or ""
            if entry.type_str == "tree":
                if not name.startswith("."):
                    stack.append((repo[entry.id], f"{base}/{name}"))
            elif entry.type_str == "blob" and is_memory_name(name) and not name.startswith("."):
                found[f"{base}/{name}"] = str(entry.id)
    return found


# Reading a tree's memories


def read_memory(path: str, data: bytes, keyring: Keyring | None) -> tuple[Memory | None, bool]:
    """A memory from a blob, decrypted when it can be; (None, sealed) when it cannot be read."""
    if is_encrypted(path):
        try:
            plain = keyring.try_decrypt(data, path) if keyring is not None else None
        except (NotARecipientError, DecryptionError):
            return None, True
        if plain is None:
            return None, True
        data = plain
    try:
        return parse(data, path), False
    except MalformedMemoryError:
        return None, False


def _document(path: str, data: bytes, blob: str, keyring: Keyring | None) -> dict[str, Any] | None:
    """The index document of a blob, as the store's index makes it; None if it cannot be read."""
    if is_encrypted(path) and misnamed_encrypted(path) is not None:
        return None
    memory, _ = read_memory(path, data, keyring)
    if memory is None or misnamed_encrypted(path, memory.id if is_encrypted(path) else None):
        return None
    doc = document(memory, blob)
    return sealed_document(doc) if is_encrypted(path) else doc


class Snapshot:
    """The memories as they were at one commit: search, list and read them (read-only)."""

    def __init__(
        self,
        repo: pygit2.Repository,
        commit: str | None,
        index: SearchIndex,
        keyring: Keyring,
        clock: Clock,
        reporter: Reporter,
    ) -> None:
        import pygit2

        assert commit is not None
        self.repo = repo
        self.commit = commit
        self.tree = repo[commit].peel(pygit2.Commit).tree
        self.index = index
        self.keyring = keyring
        self.clock = clock
        self.reporter = reporter
        self._files: dict[str, str] | None = None

    @property
    def files(self) -> dict[str, str]:
        """The memory files of this commit, with their blob ids."""
        if self._files is None:
            self._files = memory_files(self.repo, self.tree)
        return self._files

    def _data(self, path: str) -> bytes | None:
        # One lookup along the path: a search reads a few files, not the whole tree.
        blob = self._files.get(path) if self._files is not None else memory_blob(self.tree, path)
        return None if blob is None else blob_bytes(self.repo, blob)

    def _read_body(self, path: str) -> str | None:
        """A hit's body for its snippet, as `Store.read_body` reads it: the header not parsed."""
        data = self._data(path)
        if data is None:
            return None
        try:
            text = self.keyring.readable(data, path)
        except MemstoreError:
            return None
        return None if text is None else body_of(text)

    @contextlib.contextmanager
    def reading(self) -> Iterator[WhooshIndex]:
        """The index of this commit, built the first time, safe from pruning while read."""
        cache = AsOfCache(self.index, self.repo, self.keyring, self.reporter)
        with cache.reading(self.commit, lambda: self.files) as ix:
            yield ix

    def find(
        self,
        query: str,
        *,
        filters: Filters | None = None,
        limit: int = 10,
        marks: tuple[str, str] = ("**", "**"),
    ) -> builtins.list[SearchHit]:
        """Search the memories as they were; superseded and expired hits ranked as today."""
        with self.reading() as ix:
            return search.find(
                ix,
                query,
                filters or Filters(),
                limit,
                self._read_body,
                self._reveal,
                marks,
                self.clock(),
            )

    def list(
        self, *, filters: Filters | None = None, limit: int = 0, expired: bool = False
    ) -> builtins.list[Listed]:
        """The memories as they were, newest first (only the expired ones, with expired)."""
        with self.reading() as ix:
            return search.newest(
                ix, filters or Filters(), limit, self._reveal, self.clock(), expired
            )

    def get(self, ref: str) -> Memory:
        """The memory named by an id, a unique id prefix or a path, as it was."""
        path = self.resolve(ref)
        data = self._data(path)
        assert data is not None
        memory, sealed = read_memory(path, data, self.keyring)
        if memory is None:
            if sealed:
                self.keyring.decrypt(data, path)  # the error that says why it cannot be read
            raise MalformedMemoryError(path, "cannot be read at this commit")
        return memory

    def resolve(self, ref: str) -> str:
        """The path, in this commit, of the memory ref names."""
        from memstore import ids

        ref = ref.strip()
        shown = f"at {self.commit[:10]}"
        if "/" in ref or is_memory_name(ref) or os.sep in ref:
            wanted = ref.replace(os.sep, "/")
            if wanted in self.files:
                return wanted
            named = [p for p in self.files if p.rsplit("/", 1)[-1] == wanted.rsplit("/", 1)[-1]]
            if len(named) == 1:
                return named[0]
            raise MemoryNotFoundError(f"no memory file at {ref} {shown}: check the path")
        if not ids.looks_like_id_prefix(ref):
            raise MemoryNotFoundError(
                f"{ref!r} is not an id or a path: use 'mem find --as-of' or 'mem list --as-of'"
            )
        with self.reading() as ix:
            matches, count = search.id_matches(ix, ref.lower(), limit=4)
        if not matches:
            raise MemoryNotFoundError(
                f"no memory has the id {ref!r} {shown}: 'mem log {ref}' shows when it existed"
            )
        if count > 1:
            raise AmbiguousIdError(
                f"id prefix {ref!r} matches {count} memories {shown}: type more characters"
            )
        return matches[0].path

    def successors(self, ref: str) -> builtins.list[Listed]:
        """The memories whose `supersedes` named the memory ref then, newest first."""
        memory_id = self.get(ref).id
        with self.reading() as ix:
            newer = search.successors(ix, [memory_id]).get(memory_id, [])
            found = search.having(ix, "id", newer)
        return self._reveal(sorted(found, key=lambda item: item.id, reverse=True))

    def backlinks(self, ref: str) -> builtins.list[Listed]:
        """The memories that linked to the memory ref then, newest first."""
        from memstore import links

        memory = self.get(ref)
        wanted = [memory.id, *links.names(memory), *links.id_prefixes(memory.id)]
        with self.reading() as ix:
            found = [i for i in search.having(ix, "links", wanted) if i.id != memory.id]
        return self._reveal(sorted(found, key=lambda item: item.id, reverse=True))

    def _reveal(self, items: builtins.list[Any]) -> builtins.list[Any]:
        """Fill in encrypted memories' fields from their blobs; leave them out without a key."""
        from memstore.index import field_text

        if not any(is_encrypted(item.path) for item in items):
            return items
        if not self.keyring.available():
            self.reporter.notice("encrypted memories left out: no identity to read them")
            return [item for item in items if not is_encrypted(item.path)]
        kept: builtins.list[Any] = []
        for item in items:
            if is_encrypted(item.path):
                data = self._data(item.path)
                memory = read_memory(item.path, data, self.keyring)[0] if data else None
                if memory is None:
                    continue
                item.title, item.type, item.tags = memory.title, memory.type, memory.tags
                item.created = memory.created_text
                item.expires = field_text(memory.fields.get("expires"))
            kept.append(item)
        return kept


class AsOfCache:
    """Indexes of past commits in `.git/memstore/asof/`, the CACHE_KEEP most recently used."""

    def __init__(
        self, index: SearchIndex, repo: pygit2.Repository, keyring: Keyring, reporter: Reporter
    ) -> None:
        self.index = index
        self.repo = repo
        self.keyring = keyring
        self.reporter = reporter
        self.home = index.home / CACHE_DIR
        self._lock = FileLock(index.home / "asof.lock")

    def folder(self, commit: str) -> Path:
        # Encrypted memories are indexed with the identity at hand: another one, another index.
        return self.home / f"{commit}-{self.keyring.fingerprint() or 'nokey'}"

    @contextlib.contextmanager
    def reading(self, commit: str, files: Callable[[], dict[str, str]]) -> Iterator[WhooshIndex]:
        """The index of commit's files, built if it is not there; not pruned while read."""
        from whoosh import index as whoosh_index

        folder = self.folder(commit)
        self.index.home.mkdir(mode=0o700, exist_ok=True)
        while True:
            if not folder.is_dir():
                with self._lock.hold(None):
                    if not folder.is_dir():
                        self._build(folder, commit, files)
            with self._lock.hold(None, shared=True):
                if not folder.is_dir():  # pruned by another process in between: build again
                    continue
                with contextlib.suppress(OSError):
                    os.utime(folder)  # most recently used
                ix = whoosh_index.open_dir(str(folder))
                try:
                    yield ix
                finally:
                    ix.close()
                return

    def _build(self, folder: Path, commit: str, files: Callable[[], dict[str, str]]) -> None:
        import secrets
        import shutil

        from whoosh import index as whoosh_index

        self.home.mkdir(mode=0o700, exist_ok=True)
        scratch = self.home / f"tmp-{secrets.token_hex(4)}"
        try:
            # A copy of the store's index as it is, and what it reflects: changes are read
            # from the copy, which no writer touches.
            with self.index.reading() as main, self.index.basis() as basis:
                _link_tree(Path(main.storage.folder), scratch)  # type: ignore[attr-defined]
            ix = whoosh_index.open_dir(str(scratch))
            try:
                with ix.searcher() as searcher:
                    change = self._changes(searcher, commit, basis, files)
                if change is None:  # most of it differs: a fresh index is cheaper
                    ix.close()
                    shutil.rmtree(scratch)
                    scratch.mkdir(mode=0o700)
                    ix = whoosh_index.create_in(str(scratch), build_schema())
                    change = [], files()
                self._write(ix, *change)
            finally:
                ix.close()
            os.rename(scratch, folder)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self._prune(keep=folder)

    def _changes(
        self,
        searcher: Any,
        commit: str,
        basis: tuple[str | None, set[str]] | None,
        files: Callable[[], dict[str, str]],
    ) -> tuple[list[str], dict[str, str]] | None:
        """What to drop from a copy of the store's index, and what to add (path: blob), to make
        it the commit's; None when most of it differs (then a fresh build is cheaper).

        Only the paths that can differ are looked at: those a tree diff finds between the commit
        and the one the index reflects (its basis), and those whose files the index read from a
        work tree that differs from that commit. Without a basis, every indexed path is
        compared.
        """
        import pygit2

        paths = None
        if basis is not None:
            reflected, unsure = basis
            paths = gitrepo.changed_paths(self.repo, reflected, commit, MEMORY_DIR)
            if paths is not None:
                paths |= unsure
        if paths is None:
            everything = files()
            indexed = {d["path"]: d.get("blob", "") for d in searcher.all_stored_fields()}
            paths = set(indexed) | set(everything)
            now = {p: everything.get(p) for p in paths}
            had: dict[str, str | None] = {p: indexed.get(p) for p in paths}
        else:
            tree = self.repo[commit].peel(pygit2.Commit).tree
            now = memory_blobs(self.repo, tree, paths)
            had = {}
            for path in paths:
                stored = searcher.document(path=path)
                had[path] = None if stored is None else stored.get("blob", "")
        stale = sorted(p for p in paths if had[p] is not None and had[p] != now[p])
        wanted = {p: blob for p in sorted(paths) if (blob := now[p]) is not None and had[p] != blob}
        count = searcher.doc_count()
        size = count - len(stale) + len(wanted)  # the documents the commit's index will have
        if not count or len(wanted) * 2 > size or len(stale) > size:
            return None
        return stale, wanted

    def _write(self, ix: WhooshIndex, stale: list[str], wanted: dict[str, str]) -> None:
        """Drop the stale paths' documents and add the wanted ones, a chunk per segment."""
        paths = list(wanted)
        first = True
        for start in range(0, max(len(paths), 1), REBUILD_CHUNK):
            writer = ix.writer(compound=False, limitmb=REBUILD_POOL_MB)
            try:
                if first and stale:
                    # One searcher for all: each delete would otherwise open every segment.
                    with writer.searcher() as searcher:
                        for path in stale:
                            writer.delete_by_term("path", path, searcher=searcher)
                first = False
                for path in paths[start : start + REBUILD_CHUNK]:
                    blob = wanted[path]
                    doc = _document(path, blob_bytes(self.repo, blob), blob, self.keyring)
                    if doc is not None:
                        writer.add_document(**doc)
            except BaseException:
                writer.cancel()
                raise
            writer.commit(merge=False)

    def _prune(self, keep: Path) -> None:
        import shutil

        folders = [p for p in self.home.iterdir() if p.is_dir()]
        for leftover in [p for p in folders if p.name.startswith("tmp-")]:
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted build's
        built = sorted(
            (p for p in folders if not p.name.startswith("tmp-") and p != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in built[CACHE_KEEP - 1 :]:
            shutil.rmtree(old, ignore_errors=True)


def _link_tree(source: Path, target: Path) -> None:
    """A copy of an index folder made of hard links, where the file system allows them.

    Whoosh never changes a segment file once written (deletions are kept in the table of
    contents, and a merge writes new files), so the copy can share them: no bytes copied, no
    space taken. Its write lock is its own.
    """
    import shutil

    target.mkdir(mode=0o700)
    for entry in os.scandir(source):
        if not entry.is_file(follow_symlinks=False) or entry.name.endswith("WRITELOCK"):
            continue
        try:
            os.link(entry.path, target / entry.name)
        except OSError:
            shutil.copy2(entry.path, target / entry.name)


# A memory's life, and removed memories


@dataclass
class Event:
    """One commit in a memory's life: what happened to it, and where its file was."""

    entry: LogEntry
    change: str  # added, edited, moved, removed
    path: str
    old_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.entry.commit,
            "author": self.entry.author,
            "email": self.entry.email,
            "date": self.entry.date.isoformat(),
            "message": self.entry.message,
            "change": self.change,
            "path": self.path,
            "old_path": self.old_path,
        }


@dataclass
class Removed:
    """A memory that history has and HEAD has not."""

    id: str
    title: str
    path: str
    date: datetime
    commit: str  # the commit that removed it
    blob: str  # its last version

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "path": self.path,
            "date": self.date.isoformat(),
            "commit": self.commit,
        }


def _id_in(repo: pygit2.Repository, path: str, blob: str) -> str:
    """The id of the memory a blob holds: an encrypted file's name, else its front-matter."""
    name = path.rsplit("/", 1)[-1]
    if is_encrypted(name):
        return name.removesuffix(ENCRYPTED_SUFFIX)
    try:
        return parse(blob_bytes(repo, blob), path).id
    except MalformedMemoryError:
        return ""


def _holds(repo: pygit2.Repository, path: str, blob: str | None, memory_id: str) -> bool:
    if blob is None:
        return False
    name = path.rsplit("/", 1)[-1]
    if is_encrypted(name):
        return name == f"{memory_id}{ENCRYPTED_SUFFIX}"
    # The id's bytes first: a bulk commit's other files are not parsed.
    return memory_id.encode() in blob_bytes(repo, blob) and _id_in(repo, path, blob) == memory_id


def blob_bytes(repo: pygit2.Repository, blob: str) -> bytes:
    """A blob's bytes."""
    data: bytes = repo[blob].data  # type: ignore[attr-defined]
    return data


def _blob_at(tree: Any, path: str) -> str | None:
    try:
        return str(tree[path].id)
    except KeyError:
        return None


def _walk(repo: pygit2.Repository) -> Iterator[Any]:
    import pygit2

    if repo.head_is_unborn:
        return
    yield from repo.walk(
        repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME
    )


def life(repo: pygit2.Repository, memory_id: str, limit: int = 0) -> list[Event]:
    """Every commit that added, edited, moved or removed the memory, newest first.

    The memory is followed by its id, whatever its files were called. A merge appears only when
    it made the memory differ from every parent (a conflict resolved); otherwise the commit
    that made the change on its own branch does.
    """
    events: list[Event] = []
    for commit in _walk(repo):
        sides = []
        for parent in list(commit.parents) or [None]:
            old = str(parent.id) if parent is not None else None
            paths = gitrepo.changed_paths(repo, old, str(commit.id), MEMORY_DIR) or set()
            before = {
                p: b
                for p in paths
                if _holds(repo, p, b := (_blob_at(parent.tree, p) if parent else None), memory_id)
            }
            after = {
                p: b for p in paths if _holds(repo, p, b := _blob_at(commit.tree, p), memory_id)
            }
            sides.append((before, after))
        if any(not before and not after for before, after in sides):
            continue  # as one parent had it
        before, after = sides[0]
        if after and not before:
            event = Event(gitrepo.log_entry(commit), "added", min(after))
        elif before and not after:
            event = Event(gitrepo.log_entry(commit), "removed", min(before))
        elif set(before) == set(after):
            event = Event(gitrepo.log_entry(commit), "edited", min(after))
        else:
            moved_from = min(set(before) - set(after), default=min(before))
            edited = set(before.values()) != set(after.values())
            change = "moved, edited" if edited else "moved"
            event = Event(gitrepo.log_entry(commit), change, min(after), old_path=moved_from)
        events.append(event)
        if limit and len(events) >= limit:
            break
    return events


def removed(repo: pygit2.Repository, keyring: Keyring | None = None) -> list[Removed]:
    """Memories that history has and HEAD has not, by their last removal, newest first."""
    import pygit2

    if repo.head_is_unborn:
        return []
    head = repo.head.peel(pygit2.Commit).tree
    present = _Present(repo, memory_files(repo, head))
    found: dict[str, Removed] = {}
    for commit in _walk(repo):
        parents = list(commit.parents)
        if not parents:
            continue
        paths = gitrepo.changed_paths(repo, str(parents[0].id), str(commit.id), MEMORY_DIR)
        for path in sorted(paths or ()):
            if not is_memory_name(path) or _blob_at(commit.tree, path) is not None:
                continue
            # A merge removes a file only when every side still had it; otherwise the
            # removal was made on a side, in its own commit.
            blobs = [_blob_at(parent.tree, path) for parent in parents]
            if any(blob is None for blob in blobs):
                continue
            blob = blobs[0]
            assert blob is not None
            memory_id = _id_in(repo, path, blob)
            if not memory_id or memory_id in found or present.has(memory_id):
                continue
            memory, _ = read_memory(path, blob_bytes(repo, blob), keyring)
            found[memory_id] = Removed(
                id=memory_id,
                title=memory.title if memory is not None else "",
                path=path,
                date=gitrepo.log_entry(commit).date,
                commit=str(commit.id),
                blob=blob,
            )
    return sorted(found.values(), key=lambda r: (r.date, r.id), reverse=True)


class _Present:
    """Which ids HEAD has, told from file names, reading a file only when its name says so."""

    def __init__(self, repo: pygit2.Repository, files: dict[str, str]) -> None:
        self.repo = repo
        self.files = files
        self.by_short: dict[str, list[str]] = {}
        self.full: set[str] = set()
        self.unnamed: list[str] = []  # files whose name holds no id: read once, if needed
        for path in files:
            name = path.rsplit("/", 1)[-1]
            short = _SHORT.search(name)
            if is_encrypted(name):
                self.full.add(name.removesuffix(ENCRYPTED_SUFFIX))
            elif short:
                self.by_short.setdefault(short[1], []).append(path)
            else:
                self.unnamed.append(path)
        self._read_unnamed = False

    def has(self, memory_id: str) -> bool:
        if memory_id in self.full:
            return True
        for path in self.by_short.get(memory_id[-8:], []):
            if _id_in(self.repo, path, self.files[path]) == memory_id:
                return True
        if not self._read_unnamed:
            self._read_unnamed = True
            self.full.update(_id_in(self.repo, p, self.files[p]) for p in self.unnamed)
        return memory_id in self.full


def version_at(
    repo: pygit2.Repository, commit: str, memory_id: str, hints: list[str]
) -> tuple[str, str] | None:
    """(path, blob) of the memory in a commit's tree: its known paths first, then every file."""
    import pygit2

    tree = repo[commit].peel(pygit2.Commit).tree
    for path in hints:
        blob = _blob_at(tree, path)
        if blob is not None and _holds(repo, path, blob, memory_id):
            return path, blob
    for path, blob in memory_files(repo, tree).items():
        name = path.rsplit("/", 1)[-1]
        named = name.endswith((f"-{memory_id[-8:]}{SUFFIX}", f"{memory_id}{ENCRYPTED_SUFFIX}"))
        if named and _holds(repo, path, blob, memory_id):
            return path, blob
    return None
