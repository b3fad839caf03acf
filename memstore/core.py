"""The core of a store: its state and its one write path, with the contract services use.

`Core` holds what a store is made of (its folder, git repository, clock, reporter, keyring and
search index) and the only way to change it: `writing()`, a session that takes the store's write
lock, commits what was edited outside mem first, writes files atomically and commits exactly
the changed paths, then records the change in the index. Services (sync, key operations, import,
doctor, check, relations) take a `Core` and use its public methods; `Store` (store.py) is the
facade that adds the verbs.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from memstore.index import SearchIndex, blob_id, field_text
from memstore.locking import WRITE_LOCK_WAIT, FileLock
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    Memory,
    body_of,
    check_size,
    is_encrypted,
    is_memory_name,
    parse,
)
from memstore.report import CollectingReporter, Reporter

if TYPE_CHECKING:
    import pygit2

COMMIT_MARKER = "committing"
BULK_MESSAGE_LINES = 50  # a bulk commit message lists this many memories, then a count
AMBIGUOUS_SHOWN = 3  # an ambiguous id prefix lists this many ids, then a count
Clock = Callable[[], datetime]
# A path as the library takes it: text or any path object.
StrPath = str | os.PathLike[str]


def local_now() -> datetime:
    """The current time with the local offset."""
    return datetime.now().astimezone()


class Core:
    """A memory store on disk: its state, its reads by reference and its one write path."""

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

    @property
    def repo(self) -> pygit2.Repository:
        if self._repo is None:
            self._repo = gitrepo.open_repository(self.root)
        return self._repo

    def set_up_git(self, quick: bool = False) -> dict[str, str | None]:
        """Set up git's merge driver and textconv where missing or outdated (docs/sync.md);
        quick: only if a stamp says the config or this installation changed since last time."""
        from memstore import gitsetup

        if quick:
            changed = gitsetup.ensure_set_up(self.git_dir, lambda: self.repo)
        else:
            changed = gitsetup.set_up(self.repo)
        if changed.get("merge.mem.driver", "") is None:
            self.reporter.notice(gitsetup.SET_UP_NOTICE)
        return changed

    # Writing

    def writing(self) -> WriteSession:
        """A write: `with core.writing() as session:` then `session.write`/`delete`/`commit`."""
        return WriteSession(self)

    def check_writable(self) -> None:
        """Refuse early, before any reading, when this process cannot write to the store."""
        from memstore.locking import cannot_write

        try:
            self._write_lock.path.parent.mkdir(mode=0o700, exist_ok=True)
            os.close(os.open(self._write_lock.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as error:
            if not cannot_write(error):
                raise
            raise cannot_write_error(self.root, error) from None

    def write_many(
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
        with self.writing() as session:
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
                    undo_new_files(self, builtins.list(session.changes))
                raise
        return batch

    def _write_batch(
        self,
        session: WriteSession,
        batch: builtins.list[Memory],
        message: str | None,
        default_source: bool,
    ) -> None:
        source: str | None = None
        with self.reporter.progress(len(batch), "writing") as advance:
            for memory in batch:
                if default_source and not memory.fields.get("source"):
                    if source is None:
                        source = author_source(self.repo, self.clock())
                    memory.fields["source"] = source
                # Forced to disk once for the whole batch below, not file by file.
                data = self.seal(memory.path, memory.to_bytes())
                session.write(memory.path, data, durable=False)
                advance(1)
        os.sync()
        lines = [self.subject("add", memory) for memory in batch]
        if message is None:
            message = lines[0] if len(lines) == 1 else f"add {len(lines)} memories"
        shown = lines[:BULK_MESSAGE_LINES]
        if len(lines) > 1:
            more = len(lines) - len(shown)
            message += "\n\n" + "\n".join(shown) + (f"\n… and {more} more" if more else "")
        session.commit(message)

    # Reading by reference

    def get(self, ref: str) -> Memory:
        """The memory named by an id, a unique id prefix, or a path."""
        path = self.resolve(ref)
        data = self.plain(path, (self.root / path).read_bytes())
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

    def read_body(self, path: str) -> str | None:
        """A memory's body, decrypted if it can be; None when it cannot be read."""
        try:
            text = self.keyring.readable((self.root / path).read_bytes(), path)
            return None if text is None else body_of(text)
        except (OSError, MemstoreError):
            return None

    def _refuse_locked(self, ref: str) -> None:
        """Say so when ref names an encrypted memory the index could not read without a key."""
        from memstore.crypto import no_identity

        prefix = ref.lower()
        for path in self.index.locked():
            if path.rsplit("/", 1)[-1].startswith(prefix):
                raise no_identity(path)

    # Encryption (docs/encryption.md)

    def plain(self, path: str, data: bytes) -> bytes:
        """A memory file's text: its bytes, decrypted when the file is encrypted."""
        return self.keyring.plain(data, path)

    def seal(self, path: str, text: bytes) -> bytes:
        """The bytes to write for a memory's text: encrypted to the folder's recipients if due."""
        if not is_encrypted(path):
            return text
        from memstore import crypto, keys

        return crypto.encrypt(text, keys.recipients_for(self.root, path))

    def subject(self, verb: str, memory: Memory) -> str:
        """A commit subject; an encrypted memory's gives its id only, never its title."""
        if is_encrypted(memory.path):
            return f"{verb} {memory.id}"
        return f"{verb} {memory.id}: {memory.title}"

    def describe(self, path: str, data: bytes) -> str:
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

    def should_encrypt(self, memory: Memory, asked: bool | None) -> bool:
        """Whether to encrypt a memory: as asked, else as the store's policy says."""
        if asked is not None:
            return asked
        from memstore.keys import read_policy

        return read_policy(self.root).covers(memory)

    def reveal(self, items: builtins.list[Any]) -> builtins.list[Any]:
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
            item.expires = field_text(memory.fields.get("expires"))
        return items


def check_limit(limit: int) -> None:
    """Refuse a negative result limit (0 means no limit)."""
    if limit < 0:
        raise InvalidInputError(f"the limit must be 0 or more, not {limit}")


def cannot_write_error(root: Path, error: OSError) -> RepositoryStateError:
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


def undo_new_files(store: Core, paths: builtins.list[str]) -> None:
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


def author_source(repo: pygit2.Repository, now: datetime) -> str:
    """Who a memory comes from when the caller does not say: MEM_SOURCE, else the author."""
    source = os.environ.get("MEM_SOURCE") or gitrepo.signature(repo, now).name
    return " ".join(source.split())


class WriteSession:
    """One write: the store lock, editor changes committed first, then one commit of ours."""

    def __init__(self, store: Core) -> None:
        self.store = store
        self.changes: dict[str, bytes | None] = {}
        self.committed_pending: list[str] = []
        self._hold: Any = None

    def __enter__(self) -> WriteSession:
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
            raise cannot_write_error(store.root, error) from None
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
        store.index.record(changes, old_head, new_head)  # the commit stands if it cannot
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
                subject = store.describe(path, data)
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
