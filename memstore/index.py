"""The search index: a Whoosh cache of the memory files, kept in step with them before each search.

The files are the truth. The index lives in `.git/memstore/` (never committed, mode 0700) with a
small state file saying what it reflects: HEAD's commit and a time watermark. Catching up costs
what changed, not the store's size in parsing and indexing: new commits are found by a tree diff
that only descends into subtrees that differ, and edits made in an editor by the files' and
folders' modification times against the watermark (a stat of each file, no reads). Segments are
written uncompressed (`compound=False`) so that opening a searcher memory-maps them instead of
copying the term dictionary. Rebuilds go to a fresh folder and the state file is switched
atomically, so a reader never sees a half-built index. A rebuild writes its segments itself
(bulkwrite.py: the files Whoosh writes, without its work per word), a large one with a second
process that indexes every other chunk of the files (`_RebuildHelper`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import atomic, gitrepo, semantic, watch
from memstore.errors import (
    DecryptionError,
    MalformedMemoryError,
    MemstoreError,
    NotARecipientError,
)
from memstore.locking import FileLock, cannot_write
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    Memory,
    is_encrypted,
    is_memory_name,
    misnamed_encrypted,
    parse,
)
from memstore.report import Reporter

if TYPE_CHECKING:
    from whoosh.fields import Schema
    from whoosh.index import Index as WhooshIndex

    from memstore.crypto import Keyring
    from memstore.indexaudit import SegmentAudit

# Bump when the schema or the analysis changes: an older index is then rebuilt. (6: `session`,
# and the text digest is stored; 7: CJK text as character pairs; 8: `expires`.)
INDEX_FORMAT = 8
STATE_FILE = "state.json"
# Coarse file-system clocks can stamp a file slightly before the moment we read the clock.
MTIME_MARGIN_NS = 2_000_000_000
# Journal bytes of searches' barrier markers read again before the state records them.
MAX_MARKER_BYTES = 64 << 10
# A rebuild writes one segment per chunk of files, whose postings it holds in memory until the
# segment is written (about 11 MB per 1,000 memories).
REBUILD_CHUNK = 20_000
# Whoosh's writer (updates, imports) sorts the postings of this many MB in memory, where more
# would spill to disk and merge runs (2.5 times slower at 10,000 memories).
REBUILD_POOL_MB = 512
# A rebuild of this many files or more is shared with a second process (_RebuildHelper).
SHARED_FROM = 2_000
# A write of this many files or more (an import) shows a progress bar while it is indexed.
PROGRESS_FROM = 100


def blob_id(data: bytes) -> str:
    """The git blob id of some bytes: what the index records to tell whether a file changed."""
    import hashlib

    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def build_schema() -> Schema:
    """The Whoosh schema of a memory."""
    from whoosh import fields

    from memstore.analysis import text_analyzer

    analyzer = text_analyzer()
    return fields.Schema(
        path=fields.ID(stored=True, unique=True),
        dir=fields.ID(),
        id=fields.ID(stored=True, sortable=True),
        title=fields.TEXT(
            analyzer=analyzer, stored=True, field_boost=3.0, multitoken_query="phrase"
        ),
        tags=fields.KEYWORD(
            stored=True, commas=True, lowercase=True, scorable=True, field_boost=2.0
        ),
        type=fields.KEYWORD(stored=True, lowercase=True),
        source=fields.KEYWORD(stored=True, lowercase=True),
        created=fields.DATETIME(stored=True, sortable=True),
        session=fields.ID(stored=True),
        created_text=fields.STORED(),
        body=fields.TEXT(analyzer=analyzer, multitoken_query="phrase"),
        blob=fields.STORED(),
        # Relations (links.py) and duplicates (duplicates.py): looked up, never searched for words.
        digest=fields.ID(stored=True),
        links=fields.KEYWORD(commas=True, lowercase=True),
        names=fields.KEYWORD(commas=True, lowercase=True),
        supersedes=fields.KEYWORD(stored=True, commas=True, lowercase=True),
        # As written; an expired memory is ranked below current ones (freshness.py).
        expires=fields.ID(stored=True),
    )


def document(memory: Memory, blob: str) -> dict[str, Any]:
    """The fields Whoosh indexes for a memory."""
    created = memory.created
    doc: dict[str, Any] = {
        "path": memory.path,
        "dir": memory.path.rsplit("/", 1)[0],
        "id": memory.id,
        "title": memory.title,
        "tags": ",".join(memory.tags),
        "type": memory.type,
        "source": memory.source,
        "session": memory.session,
        "created_text": memory.created_text,
        "body": memory.body,
        "blob": blob,
        "expires": field_text(memory.fields.get("expires")),
        **relation_fields(memory),
    }
    if created is not None:
        # Dates are compared as written (the author's wall-clock time), so that created:2026-03-01
        # finds what the file says was created that day, wherever it was written.
        doc["created"] = created.replace(tzinfo=None)
    return doc


def relation_fields(memory: Memory) -> dict[str, str]:
    """What the index keeps to find links, backlinks, successors and exact duplicates."""
    from memstore import duplicates, links

    return {
        "digest": duplicates.digest(memory.body),
        "links": ",".join(links.targets(memory)),
        "names": ",".join(links.names(memory)),
        "supersedes": ",".join(memory.supersedes),
    }


# Stored fields (and sortable columns) that would hold an encrypted memory's text.
SEALED_FIELDS = (
    "title",
    "tags",
    "type",
    "source",
    "session",
    "digest",
    "supersedes",
    "expires",
)


def sealed_document(doc: dict[str, Any]) -> dict[str, Any]:
    """An encrypted memory's document: indexed as usual, but no text in stored fields.

    Whoosh stores `_stored_<field>` in place of the indexed value. What stays stored is public
    already: the path, its folder, the id (the file name) and the time the id was made (in the
    id). Titles, tags and snippets are decrypted from the file when a result is shown.
    """
    from memstore import ids

    memory_id = doc["path"].rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
    doc["id"] = memory_id
    for name in SEALED_FIELDS:
        doc[f"_stored_{name}"] = ""
    doc.pop("created_text", None)
    doc.pop("created", None)
    made = ids.time_of(memory_id)
    if made is not None:
        doc["created"] = datetime.fromtimestamp(made / 1000)
    return doc


@dataclass
class IndexState:
    """What the index reflects."""

    directory: str
    commit: str | None = None
    watermark_ns: int = 0
    dirs: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    watch_generation: str | None = None
    journal_offset: int = 0
    # Paths whose files may differ from HEAD (edited outside mem), so that a write can commit
    # them without a `git status` of the whole work tree; unknown after a rebuild.
    pending: list[str] = field(default_factory=list)
    pending_known: bool = False
    # Encrypted memories not indexed for want of an identity (path: blob), retried when one is.
    locked: dict[str, str] = field(default_factory=dict)
    # Encrypted memories not encrypted to the identity (path: blob), read again when they change.
    foreign: dict[str, str] = field(default_factory=dict)
    # Whether encrypted memories were indexed, and the identity (crypto.Keyring.fingerprint)
    # they were read with: under another identity they are read again.
    sealed: bool = False
    identity: str | None = None
    # Memories flagged with an unresolved sync conflict (merge.has_conflict), noted as files are
    # read; None in an index made before they were kept, until conflicts() learns them once.
    conflicts: list[str] | None = None
    # The model whose vectors the index folder keeps for every memory (semantic.py), or None.
    vectors: str | None = None
    format: int = INDEX_FORMAT

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=1, sort_keys=True).encode()


class SearchIndex:
    """The Whoosh cache of one store."""

    def __init__(
        self, root: Path, git_dir: Path, reporter: Reporter, keyring: Keyring | None = None
    ) -> None:
        self.root = root
        self.git_dir = git_dir
        self.home = git_dir / "memstore"
        self.reporter = reporter
        self.keyring = keyring
        self._locked_noticed = False
        self._foreign_noticed = False
        self._lock = FileLock(self.home / "index.lock")
        self._file_count = 0
        # How many processes the last rebuild used.
        self.processes = 1
        # Why the index could not be brought up to date: the store cannot be written.
        self.read_only: str | None = None
        # Within `one_catch_up`: the commit the index was last caught up with (None: not yet).
        self._once = False
        self._caught_up: str | None = None

    @contextlib.contextmanager
    def one_catch_up(self) -> Iterator[None]:
        """Within: the index catches up with the files once, and not again while HEAD stays.

        For one short operation that reads the index several times (an add: the write's check
        for edits made outside mem, then the duplicate check a moment later). Without a watcher
        each catch-up stats every file; an edit made in between is seen by the next command.
        """
        outer = self._once, self._caught_up
        self._once, self._caught_up = True, None
        try:
            yield
        finally:
            self._once, self._caught_up = outer

    # State

    def _load_state(self, vectors: bool = True) -> IndexState | None:
        """What the index reflects; None if it must be rebuilt (with vectors, when they are
        wanted: an index without them still serves a reader that cannot rebuild it)."""
        try:
            raw = json.loads((self.home / STATE_FILE).read_bytes())
            state = IndexState(**raw)
        except (OSError, ValueError, TypeError):
            return None
        if state.format != INDEX_FORMAT or not (self.home / state.directory).is_dir():
            return None
        if vectors and semantic.available() and state.vectors != semantic.MODEL:
            return None  # the semantic extra was installed since: give every memory a vector
        return state

    def _save_state(self, state: IndexState) -> None:
        atomic.write_atomic(self.home / STATE_FILE, state.to_json(), mode=0o600)

    def _ensure_home(self) -> None:
        self.home.mkdir(mode=0o700, exist_ok=True)
        # The index holds terms of every memory: keep it private to the user.
        with contextlib.suppress(OSError):
            os.chmod(self.home, 0o700)

    def _open(self, state: IndexState) -> WhooshIndex:
        from whoosh.filedb.filestore import FileStorage

        # Whoosh leaves its table of contents open when it cannot read it (a damaged index):
        # close what the failed open opened, or the handle outlives the rebuild that follows.
        opening: list[Any] | None = []  # files opened while opening; None once open

        class OpeningStorage(FileStorage):
            def open_file(self, name: str, *args: Any, **kwargs: Any) -> Any:
                handle = super().open_file(name, *args, **kwargs)
                if opening is not None:
                    opening.append(handle)
                return handle

        storage = OpeningStorage(str(self.home / state.directory))
        try:
            ix = storage.open_index()
        except BaseException:
            for handle in opening or []:
                handle.close()
            raise
        opening = None
        return ix

    # Catching up

    def refresh(self, wait: float | None = None) -> WhooshIndex:
        """Bring the index in line with the files and return it, rebuilding it if it must.

        In a store that cannot be written (a read-only mount, no write permission), the index
        is returned as it is, with one notice that it may miss recent changes.
        """
        try:
            self._ensure_home()
            with self._lock.hold(wait):
                return self._refresh_locked()
        except TimeoutError:
            state = self._load_state(vectors=False)
            if state is None:
                raise MemstoreError(
                    "another mem process is building the search index: try again in a moment"
                ) from None
            self.reporter.notice("another mem process is updating the index; results may lag")
            return self._open(state)
        except OSError as error:
            if not cannot_write(error):
                raise
            return self._as_it_is(error)

    def _as_it_is(self, error: OSError) -> WhooshIndex:
        """The index as it was last written, for a store this process cannot write."""
        reason = error.strerror or str(error)
        state = self._load_state(vectors=False)
        if state is None:
            raise MemstoreError(
                f"{self.root} cannot be written ({reason}) and has no search index: run 'mem"
                " reindex' where the store can be written, or copy it to a folder you can write"
            ) from None
        if self.read_only is None:  # once per command
            self.read_only = reason
            self.reporter.notice(
                f"the store cannot be written ({reason}): the search index could not be brought"
                " up to date, so results may miss recent changes"
            )
        return self._open(state)

    @contextlib.contextmanager
    def reading(self, wait: float = 5.0) -> Iterator[WhooshIndex]:
        """The caught-up index, safe from writers for as long as the caller reads it.

        A writer's commit can merge segments and delete their files. A search that caught up,
        released the lock and then read a segment a writer had just merged away failed with a
        TypeError from deep inside Whoosh (found by four writers and a reader at once). Readers
        share the index lock, so writers wait for them, and they open segments only once held.
        """
        ix = self.refresh(wait)
        with contextlib.ExitStack() as stack:
            stack.callback(ix.close)
            # A long rebuild holds it: then read the index as it is, as refresh does; so too
            # when the lock file cannot even be made (a store that cannot be written).
            with contextlib.suppress(TimeoutError, OSError):
                stack.enter_context(self._lock.hold(wait, shared=True))
            yield ix

    def _refresh_locked(self) -> WhooshIndex:
        state = self._load_state()
        if state is None:
            if self._load_state(vectors=False) is not None:  # only the vectors are missing
                return self._rebuild_locked(
                    "search index has no vectors for the semantic extra: rebuilding it"
                )
            reason = "missing" if not (self.home / STATE_FILE).exists() else "out of date"
            return self._rebuild_locked(f"search index {reason}: rebuilding it")
        try:
            ix = self._open(state)
        except Exception:
            return self._rebuild_locked("search index damaged: rebuilding it")
        try:
            self._catch_up(ix, state)
        except _NeedsRebuild as why:
            ix.close()
            return self._rebuild_locked(str(why))
        except BaseException:  # such as a store that cannot be written: see refresh
            ix.close()
            raise
        self._warn_skipped(state)
        return ix

    def _catch_up(self, ix: WhooshIndex, state: IndexState) -> None:
        caught_up = self._caught_up  # only ever set within `one_catch_up`
        if caught_up is not None and caught_up == state.commit == gitrepo.read_head(self.git_dir):
            return  # caught up a moment ago, in the same operation
        self._catch_up_now(ix, state)
        if self._once:
            self._caught_up = state.commit

    def _catch_up_now(self, ix: WhooshIndex, state: IndexState) -> None:
        as_read = state.to_json()  # to tell at the end whether there is anything to save
        changed: set[str] = set()
        if state.locked and self.keyring is not None and self.keyring.available():
            changed |= set(state.locked)  # an identity appeared: index what it can now read
        reread = self._read_with_new_identity(ix, state)
        changed |= reread
        head = gitrepo.read_head(self.git_dir)
        if head != state.commit:
            repo = gitrepo.open_repository(self.root)
            paths = gitrepo.changed_paths(repo, state.commit, head, MEMORY_DIR)
            if paths is None:
                raise _NeedsRebuild("search index refers to a lost commit: rebuilding it")
            changed |= paths
        scan_start = atomic.files_now_ns(self.home)
        journal = watch.live_journal(self.home) if watch.supported() else None
        tied = journal is not None and journal.generation == state.watch_generation
        if tied and journal is not None and not journal.barrier(self.root / MEMORY_DIR):
            # A watcher that does not answer is no help: scan, and let a new one start.
            watch.stop(self.home, wait=0.5)
            journal = None
        if journal is not None and journal.generation == state.watch_generation:
            lines, end = journal.read(state.journal_offset)
            if watch.OVERFLOW not in lines:
                dirs = self._from_journal(ix, state, lines, changed)
                # Only searches' barrier markers: leave the offset (and so the state file, and
                # its fsync) alone, unless the markers to read again would grow large.
                markers = all(line.startswith("#") for line in lines)
                if not markers or end - state.journal_offset > MAX_MARKER_BYTES:
                    state.journal_offset = end
                self._finish(ix, state, changed, dirs, head, scan_start, as_read, reread)
                return
        offset = journal.size() if journal is not None else 0
        dirs = self._from_scan(ix, state, changed)
        state.watch_generation = journal.generation if journal is not None else None
        state.journal_offset = offset
        if journal is None and watch.wanted(self._file_count):
            watch.start(self.root)
        self._finish(ix, state, changed, dirs, head, scan_start, as_read, reread)

    def _read_with_new_identity(self, ix: WhooshIndex, state: IndexState) -> set[str]:
        """Every encrypted memory, when the identity is not the one they were indexed with.

        Indexed under one identity, they matched words the next one cannot read: hits with no
        title or text. Read again, they are indexed (or left out) for the identity in use.
        """
        if self.keyring is None or not (state.sealed or state.locked or state.foreign):
            return set()
        current = self.keyring.fingerprint()
        if current == state.identity:
            return set()
        state.identity = current
        with ix.reader() as reader:
            indexed = {
                term.decode() if isinstance(term, bytes) else str(term)
                for term in reader.lexicon("path")
            }
        return {p for p in indexed if is_encrypted(p)} | set(state.locked) | set(state.foreign)

    def _finish(
        self,
        ix: WhooshIndex,
        state: IndexState,
        changed: set[str],
        dirs: set[str],
        head: str | None,
        scan_start: int,
        as_read: bytes,
        reread: set[str],
    ) -> None:
        """Index what changed and record what the index now reflects."""
        updates: dict[str, dict[str, Any] | None] = {}
        same: set[str] = set()
        if changed:
            with ix.reader() as reader:  # not a searcher: whoosh.searching costs 25 ms to import
                updates = self._collect_updates(reader, changed, state, reread, same)
        if updates:
            self._apply(ix, updates)
            state.vectors = semantic.MODEL if semantic.available() else None
        unchanged = state.to_json() == as_read
        if not changed and head == state.commit and dirs == set(state.dirs) and unchanged:
            return  # nothing to record: leave the state file alone
        # A file whose bytes are those the index holds is no more pending than it was: a store
        # copied with `cp -r` (every file newer than the watermark) leaves nothing pending. Not
        # so when HEAD moved: the index may hold the old commit's bytes (`git reset --soft`).
        state.pending = sorted(
            set(state.pending) | (changed - same if head == state.commit else changed)
        )
        state.commit = head
        state.watermark_ns = scan_start - MTIME_MARGIN_NS
        state.dirs = sorted(dirs)
        self._save_state(state)

    def _from_scan(self, ix: WhooshIndex, state: IndexState, changed: set[str]) -> set[str]:
        """Find changes by walking the folder (a stat per file); return the folders seen."""
        files, dirs, touched_dirs = self._scan(state.watermark_ns, changed)
        self._file_count = sum(len(names) for names in files.values())
        for path in list(state.skipped):
            if path.rsplit("/", 1)[0] in touched_dirs or path.rsplit("/", 1)[0] not in dirs:
                changed.add(path)  # re-check skipped files whose folder changed or went
        with ix.reader() as reader:
            for folder in touched_dirs:
                changed |= _paths_in(reader, folder) ^ files.get(folder, set())
            for folder in set(state.dirs) - dirs:
                changed |= _paths_in(reader, folder)
        return dirs

    def _from_journal(
        self, ix: WhooshIndex, state: IndexState, lines: list[str], changed: set[str]
    ) -> set[str]:
        """Find changes from the watcher's journal; return the folders that now exist."""
        dirs = set(state.dirs)
        folders = [line[:-1] for line in lines if line.endswith("/")]
        changed |= {line for line in lines if is_memory_name(line)}
        if not folders:
            return dirs  # the common case: no reader to open
        with ix.reader() as reader:
            for folder in folders:
                below = {d for d in dirs if d == folder or d.startswith(folder + "/")}
                for gone in below:
                    changed |= _paths_in(reader, gone)
                dirs -= below
                # A folder that appeared (or came back): everything in it is new to the index.
                _, seen, _ = self._scan(0, changed, start=folder)
                dirs |= seen
        return dirs

    def _scan(
        self, watermark: int, changed: set[str], start: str = MEMORY_DIR
    ) -> tuple[dict[str, set[str]], set[str], list[str]]:
        """Walk a folder; note files newer than the watermark and folders that changed."""
        files: dict[str, set[str]] = {}
        dirs: set[str] = set()
        touched: list[str] = []
        stack = [(str(self.root / start), start)]
        while stack:
            folder, rel = stack.pop()
            try:
                folder_stat = os.stat(folder)
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            dirs.add(rel)
            names = files.setdefault(rel, set())
            if folder_stat.st_mtime_ns >= watermark:
                touched.append(rel)
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}/{name}"))
                elif is_memory_name(name):
                    names.add(f"{rel}/{name}")
                    if entry.stat(follow_symlinks=False).st_mtime_ns >= watermark:
                        changed.add(f"{rel}/{name}")
        return files, dirs, touched

    def _collect_updates(
        self,
        reader: Any,
        paths: set[str],
        state: IndexState,
        reread: set[str],
        same: set[str] | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """Read each changed path: a document to index, or None to drop it.

        A path in reread is read again even if its file did not change. Paths whose file holds
        the bytes the index was built from are added to same.
        """
        updates: dict[str, dict[str, Any] | None] = {}
        for path in sorted(paths):
            state.skipped.pop(path, None)
            state.locked.pop(path, None)
            state.foreign.pop(path, None)
            if path.rsplit("/", 1)[-1].startswith("."):  # a recipients file, not a memory
                continue
            data = self._read(path, state)
            if data is None:
                _note_conflict(state, path, None)
                if _stored_at(reader, path) is not None:
                    updates[path] = None
                continue
            blob = blob_id(data)
            stored = _stored_at(reader, path)
            if stored is not None and stored.get("blob") == blob:
                if same is not None:
                    same.add(path)
                if path not in reread:
                    continue
            doc = self._document_or_skip(path, data, blob, state)
            if doc is not None or stored is not None:
                updates[path] = doc
        return updates

    def _read(self, path: str, state: IndexState | None = None) -> bytes | None:
        """A memory file's bytes; None if it is gone (or unreadable, noted in state.skipped)."""
        full = self.root / path
        if full.is_symlink() or not full.is_file():
            return None
        try:
            return full.read_bytes()
        except OSError as error:
            if state is not None:
                state.skipped[path] = f"cannot be read ({error.strerror or error})"
            return None

    def _document_or_skip(
        self, path: str, data: bytes, blob: str, state: IndexState
    ) -> dict[str, Any] | None:
        if is_encrypted(path):
            _note_conflict(state, path, None)  # until it is decrypted
            return self._encrypted_document(path, data, blob, state)
        _note_conflict(state, path, data)
        try:
            memory = parse(data, path)
        except MalformedMemoryError as error:
            state.skipped[path] = error.reason
            return None
        state.skipped.pop(path, None)
        return document(memory, blob)

    def _encrypted_document(
        self, path: str, data: bytes, blob: str, state: IndexState
    ) -> dict[str, Any] | None:
        """An encrypted memory's terms, decrypted in memory; its stored fields hold no text."""
        state.skipped.pop(path, None)
        state.locked.pop(path, None)
        state.foreign.pop(path, None)
        # Its id, and so its date, come from the name: a file not named by its id is skipped.
        misnamed = misnamed_encrypted(path)
        try:
            plain = self.keyring.try_decrypt(data, path) if self.keyring is not None else None
            if plain is None:
                if misnamed is not None:
                    state.skipped[path] = misnamed
                else:
                    state.locked[path] = blob
                return None
            _note_conflict(state, path, plain)
            memory = parse(plain, path)
            misnamed = misnamed_encrypted(path, memory.id)
            if misnamed is not None:
                state.skipped[path] = misnamed
                return None
        except MalformedMemoryError as error:
            state.skipped[path] = misnamed or error.reason
            return None
        except NotARecipientError:  # someone else's: one notice, not a warning per file
            if misnamed is not None:
                state.skipped[path] = misnamed
            else:
                state.foreign[path] = blob
            return None
        except DecryptionError as error:  # damaged ciphertext
            state.skipped[path] = misnamed or str(error).removeprefix(f"{path}: ")
            return None
        # An unusable identity (IdentityError) is no fault of the file: it stops the command.
        if not state.sealed or state.identity is None:
            state.sealed = True
            state.identity = self.keyring.fingerprint() if self.keyring is not None else ""
        return sealed_document(document(memory, blob))

    def locked(self) -> list[str]:
        """Encrypted memories the index could not read for want of an identity."""
        state = self._load_state()
        return sorted(state.locked) if state is not None else []

    def _apply(
        self,
        ix: WhooshIndex,
        updates: dict[str, dict[str, Any] | None],
        advance: Callable[[int], None] | None = None,
    ) -> None:
        # A bulk import's postings are sorted in memory, not spilled to temporary files; a small
        # update uses little of the pool.
        writer = ix.writer(compound=False, limitmb=REBUILD_POOL_MB)
        try:
            # What update_document and delete_by_term do for the unique path, read from the
            # postings: their searcher costs 40 ms of imports (whoosh.searching, whoosh.query).
            with writer.reader() as reader:
                for path, doc in updates.items():
                    for docnum in _docnums_at(reader, path):
                        writer.delete_document(docnum)
                    if doc is not None:
                        writer.add_document(**doc)
                    if advance is not None:
                        advance(1)
        except BaseException:
            writer.cancel()
            raise
        # Merges of small segments go through this writer, so they stay uncompressed too.
        writer.commit()
        semantic.record(ix.storage.folder, [doc for doc in updates.values() if doc])  # type: ignore[attr-defined]

    def _warn_skipped(self, state: IndexState) -> None:
        if state.locked and not self._locked_noticed:
            self._locked_noticed = True  # once per command, not once per file
            self.reporter.notice(
                f"{_encrypted_count(len(state.locked))} skipped: no identity to read them"
                " (run 'mem key init', or set MEM_IDENTITY)"
            )
        if state.foreign and not self._foreign_noticed:
            self._foreign_noticed = True
            self.reporter.notice(
                f"{_encrypted_count(len(state.foreign))} skipped: not encrypted to your identity"
                " ('mem doctor' lists them)"
            )
        shown = sorted(state.skipped.items())
        for path, reason in shown[:5]:
            self.reporter.warning(f"{path}: skipped, {reason}")
        if len(shown) > 5:
            self.reporter.warning(
                f"{len(shown) - 5} more files skipped: run 'mem check' to list them"
            )

    # Direct updates after memstore's own writes

    def record(self, changes: dict[str, bytes | None], old_head: str | None, new_head: str) -> None:
        """Index files memstore just wrote and committed, without a scan.

        The commit stands whatever happens here: when the index cannot take the change, it is
        invalidated with a warning, and the next search rebuilds it from the files.
        """
        try:
            self._record(changes, old_head, new_head)
        except Exception as error:
            self.invalidate()
            self.reporter.warning(
                f"the search index could not be updated ({error}); the next search rebuilds it"
            )

    def _record(
        self, changes: dict[str, bytes | None], old_head: str | None, new_head: str
    ) -> None:
        self._ensure_home()
        with self._lock.hold(None):
            state = self._load_state()
            if state is None:
                return  # the next search rebuilds it anyway
            ix = self._open(state)
            bulk = len(changes) >= PROGRESS_FROM  # a bulk import: say how indexing goes
            try:
                updates: dict[str, dict[str, Any] | None] = {}
                for path, data in changes.items():
                    if data is None:
                        _note_conflict(state, path, None)
                    updates[path] = (
                        None
                        if data is None
                        else self._document_or_skip(path, data, blob_id(data), state)
                    )
                if bulk:
                    with self.reporter.progress(len(updates), "indexing") as advance:
                        self._apply(ix, updates, advance)
                else:
                    self._apply(ix, updates)
            finally:
                ix.close()
            state.vectors = semantic.MODEL if semantic.available() else None
            if state.commit == old_head:
                state.commit = new_head
                if self._caught_up is not None:  # caught up, and now holds this commit too
                    self._caught_up = new_head
            self._drop_pending(state, {path: _maybe_blob(data) for path, data in changes.items()})
            self._save_state(state)

    @contextlib.contextmanager
    def basis(self) -> Iterator[tuple[str | None, set[str]] | None]:
        """What the index holds, kept so while the caller copies its folder (writers wait).

        Yields the commit it reflects and the paths whose documents may not be that commit's
        files (edited in the work tree, or not indexed); None when those are unknown (after a
        rebuild, until the next write) or a writer holds the index.
        """
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self._lock.hold(0, shared=True))
            except (TimeoutError, OSError):
                yield None
                return
            state = self._load_state()
            if state is None or not state.pending_known:
                yield None
                return
            unsure = set(state.pending) | set(state.skipped) | set(state.locked)
            yield state.commit, unsure | set(state.foreign)

    def invalidate(self) -> None:
        """Forget what the index reflects, so that the next search rebuilds it."""
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def conflicts(self, scan: Callable[[], list[str]]) -> list[str]:
        """Paths of memories flagged with a sync conflict, after catching up.

        They are noted as files are read, so this costs what changed; an index made before they
        were noted learns them once from scan() (which reads every file).
        """
        self.refresh(wait=None).close()
        state = self._load_state()
        if state is not None and state.conflicts is not None:
            return list(state.conflicts)
        with self._lock.hold(None):  # no catch-up between the scan and the state that keeps it
            state = self._load_state()
            if state is None:
                return scan()
            if state.conflicts is None:
                state.conflicts = scan()
                with contextlib.suppress(OSError):  # a store that cannot be written: scan again
                    self._save_state(state)
            return list(state.conflicts)

    def pending(self) -> set[str] | None:
        """Paths whose files may differ from HEAD; None when unknown (after a rebuild)."""
        self.refresh(wait=None).close()
        state = self._load_state()
        return set(state.pending) if state is not None and state.pending_known else None

    def learn_pending(self, paths: set[str]) -> None:
        """Take paths found to differ from HEAD by a full comparison (git status) as pending.

        The pending set is then known: later checks compare only its paths. Files changed since
        that comparison are added by the next catch-up, as any edit is.
        """
        with self._lock.hold(None):
            state = self._load_state()
            if state is None or state.pending_known:
                return
            state.pending = sorted(set(state.pending) | paths)
            state.pending_known = True
            self._save_state(state)

    def settle(self, clean: dict[str, str | None], complete: bool) -> None:
        """Forget pending paths whose files now match HEAD (blob given, None if absent)."""
        with self._lock.hold(None):
            state = self._load_state()
            if state is None:
                return
            self._drop_pending(state, clean)
            state.pending_known = state.pending_known or complete
            self._save_state(state)

    def _drop_pending(self, state: IndexState, clean: dict[str, str | None]) -> None:
        """Drop paths from pending, unless the file changed again since it was compared."""
        pending = set(state.pending)
        for path, blob in clean.items():
            if path in pending and _maybe_blob(self._read(path)) == blob:
                pending.discard(path)
        state.pending = sorted(pending)

    # Rebuilding

    def rebuild(self) -> None:
        """Build the index again from the files."""
        self._ensure_home()
        with self._lock.hold(None):
            self._rebuild_locked(None).close()

    def _rebuild_locked(self, notice: str | None) -> WhooshIndex:
        from whoosh import index

        from memstore import bulkwrite

        if notice:
            self.reporter.notice(notice)
        head = gitrepo.read_head(self.git_dir)
        scan_start = atomic.files_now_ns(self.home)
        files, dirs, _ = self._scan(0, set())
        paths = sorted(path for names in files.values() for path in names)
        import secrets

        directory = f"ix-{secrets.token_hex(4)}"
        target = self.home / directory
        target.mkdir(mode=0o700)
        state = IndexState(directory=directory, commit=head, dirs=sorted(dirs), conflicts=[])
        if semantic.available():
            state.vectors = semantic.MODEL
        try:
            schema = build_schema()
            ix = index.create_in(str(target), schema)
            segments = self._index_chunks(target, paths, state)
            bulkwrite.write_toc(target, schema, segments)
        except BaseException:
            _remove_tree(target)
            raise
        state.watermark_ns = scan_start - MTIME_MARGIN_NS
        if self.keyring is not None and (state.locked or state.foreign):
            state.identity = self.keyring.fingerprint()
        self._save_state(state)
        self._remove_stale_dirs(keep=directory)
        self._warn_skipped(state)
        return ix

    def _index_chunks(self, folder: Path, paths: list[str], state: IndexState) -> list[Any]:
        """Index the files of a rebuild as segments in folder, in the files' order; with a
        second process for a large store (the even chunks here, the odd ones there)."""
        self.processes = _rebuild_processes(paths)
        chunks = _chunks(paths, self.processes)
        segments: dict[int, Any] = {}
        rows: dict[int, tuple[bytes, bytes, bytes] | None] = {}
        appended = 0  # vectors are appended in the chunks' order, as one process would

        def done(number: int, segment: Any, found: tuple[bytes, bytes, bytes] | None) -> None:
            nonlocal appended
            segments[number] = segment
            rows[number] = found
            while appended in rows:
                vectors = rows.pop(appended)
                if vectors is not None:
                    semantic.append(folder, vectors)
                appended += 1

        helper = None
        # Each file counts twice: once read and analyzed, once written out with its segment.
        with self.reporter.progress(2 * len(paths), "indexing") as shown, _collector_paused():
            advance = _Bounded(shown, 2 * len(paths))
            try:
                if self.processes > 1:
                    theirs = {number: chunk for number, chunk in enumerate(chunks) if number % 2}
                    try:
                        helper = _RebuildHelper(self.root, self.git_dir, folder, theirs)
                    except OSError:  # no interpreter to start: all of it here
                        self.processes = 1
                step = advance if helper is None else helper.polling(advance)
                for number, chunk in enumerate(chunks):
                    if helper is None or number % 2 == 0:
                        done(number, *self._index_chunk(folder, chunk, state, step))
                if helper is not None:
                    for number, segment, noted, found in helper.results(advance):
                        state.skipped.update(noted.skipped)
                        state.conflicts = sorted(
                            set(state.conflicts or ()) | set(noted.conflicts or ())
                        )
                        done(number, segment, found)
                    if helper.failure is not None:
                        self.reporter.warning(
                            f"the second indexing process stopped ({helper.failure}): indexing"
                            " its share in this one"
                        )
                    for number, chunk in enumerate(chunks):
                        if number not in segments:
                            done(number, *self._index_chunk(folder, chunk, state, advance))
            finally:
                if helper is not None:
                    helper.close()
        # Whoosh's writer lists no segment of no documents (files all skipped): neither do we.
        listed = (segments[number] for number in range(len(chunks)))
        return [segment for segment in listed if segment.doc_count_all()]

    def _index_chunk(
        self, folder: Path, paths: list[str], state: IndexState, advance: Callable[[int], None]
    ) -> tuple[Any, tuple[bytes, bytes, bytes] | None]:
        """Index some files as one new segment (bulkwrite.py); return it, not yet listed in
        the index's table of contents, with the rows of their vectors (semantic.py)."""
        from memstore import bulkwrite

        builder = bulkwrite.SegmentBuilder(folder, build_schema())
        vectors = semantic.available()
        docs = []
        try:
            for path in paths:
                data = self._read(path, state)
                if data is not None:
                    doc = self._document_or_skip(path, data, blob_id(data), state)
                    if doc is not None:
                        builder.add(doc)
                        if vectors:
                            docs.append(doc)
                advance(1)
        except BaseException:
            builder.cancel()
            raise
        segment = builder.finish(advance)
        return segment, semantic.rows(docs) if vectors else None

    def _remove_stale_dirs(self, keep: str) -> None:
        for entry in self.home.iterdir():
            if entry.is_dir() and entry.name.startswith("ix-") and entry.name != keep:
                _remove_tree(entry)

    def skipped(self) -> dict[str, str]:
        """Files the index could not read, with the reason."""
        state = self._load_state()
        return dict(state.skipped) if state else {}

    # Health, for mem doctor

    def health(self, audit: SegmentAudit | None = None) -> str | None:
        """Why the index cannot be used as it is ('missing', 'out of date', 'damaged'), or None.

        Every stored field is read, but with an audit only those of segments it has not read.
        """
        if not (self.home / STATE_FILE).exists():
            return "missing"
        state = self._load_state()
        if state is None:
            return "out of date"
        try:
            ix = self._open(state)
            try:
                if audit is not None:
                    audit.blobs(ix)
                else:
                    with ix.searcher() as searcher:
                        for _ in searcher.all_stored_fields():
                            pass
            finally:
                ix.close()
        except Exception:
            return "damaged"
        return None

    def indexed_blobs(self, audit: SegmentAudit | None = None) -> dict[str, str]:
        """Every indexed path with the blob id it was read from, after catching up (with an
        audit, reading only the segments it has not read)."""
        with self.reading() as ix:
            if audit is not None:
                return audit.blobs(ix)
            with ix.searcher() as searcher:
                return {doc["path"]: doc.get("blob", "") for doc in searcher.all_stored_fields()}

    def leftovers(self, min_age: float = 0.0) -> list[Path]:
        """Index folders of interrupted rebuilds, and temporary files older than min_age seconds.

        Raises TimeoutError when another process holds the index for more than 5 seconds: a
        rebuild in progress has a folder that is not the current one yet.
        """
        if not self.home.is_dir():
            return []
        with self._lock.hold(5.0):
            return self._leftovers(min_age)

    def remove_leftovers(self, min_age: float = 0.0) -> list[Path]:
        """Remove what leftovers() finds; return it."""
        if not self.home.is_dir():
            return []
        with self._lock.hold(5.0):
            found = self._leftovers(min_age)
            for path in found:
                if path.is_dir():
                    _remove_tree(path)
                else:
                    path.unlink(missing_ok=True)
            return found

    def _leftovers(self, min_age: float) -> list[Path]:
        state = self._load_state()
        keep = state.directory if state else None
        now = atomic.files_now_ns(self.home) / 1e9
        found = []
        for entry in self.home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                if entry.name.startswith("ix-") and entry.name != keep:
                    found.append(entry)
            elif atomic.is_temporary(entry.name) and now - entry.lstat().st_mtime >= min_age:
                found.append(entry)
        return sorted(found)


def _rebuild_processes(paths: list[str]) -> int:
    """How many processes share a rebuild of these files: two for a large store of plain files
    on a machine of two cores or more (`MEM_REINDEX_PROCESSES` 1 or 2 says so for any store)."""
    if any(is_encrypted(path) for path in paths):
        return 1  # identities, and the text they decrypt, stay in this process
    setting = os.environ.get("MEM_REINDEX_PROCESSES", "").strip()
    if setting in ("1", "2"):
        return int(setting)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 and len(paths) >= SHARED_FROM else 1


def _chunks(paths: list[str], processes: int) -> list[list[str]]:
    """The files of a rebuild in chunks of at most REBUILD_CHUNK, one segment each; with two
    processes, an even number of chunks of about the same size."""
    count = max(1, -(-len(paths) // REBUILD_CHUNK))
    if processes > 1:
        count += count % 2
    size = max(1, -(-len(paths) // count))
    return [paths[start : start + size] for start in range(0, len(paths), size)]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused: a rebuild makes millions of objects and no cycles that
    matter, and the collector would walk them again and again (a tenth of a rebuild's time)."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Bounded:
    """A progress callback that never goes past its total (work done twice after a second
    process failed is not counted twice)."""

    def __init__(self, advance: Callable[[int], None], total: int) -> None:
        self._advance = advance
        self._left = total

    def __call__(self, step: int) -> None:
        step = min(step, self._left)
        if step > 0:
            self._left -= step
            self._advance(step)


@dataclass
class _Noted:
    """What a second process noted of its files, for the state."""

    skipped: dict[str, str]
    conflicts: list[str] | None


class _RebuildHelper:
    """The second process of a large rebuild: it indexes the chunks it is given as segments in
    the same new folder (`serve_rebuild`), and this process lists them in the table of contents.

    It is given plain files only, so that no identity or decrypted text leaves this process.
    It sends back, as length-prefixed pickles on its standard output: its progress, then each
    chunk's segment with what it noted of the files and their vectors' rows. If it stops early
    (killed, or failed), this process indexes what it did not send. If this process is killed,
    the helper sees that it has a new parent and exits; the new folder is never listed in the
    state file, so the index stays the one that was (or none, rebuilt by the next search).
    """

    def __init__(self, root: Path, git_dir: Path, folder: Path, chunks: dict[int, list[str]]):
        import pickle
        import subprocess
        import sys
        import tempfile

        job = {"root": str(root), "git_dir": str(git_dir), "folder": str(folder), "chunks": chunks}
        self.failure: str | None = None
        self._buffer = bytearray()
        self._messages: list[Any] = []
        self._ended = False
        with tempfile.TemporaryFile() as source:
            source.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            source.seek(0)
            # What it says on stderr: the reason it stopped, if it does.
            self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            # -P: a `memstore` folder in the current folder cannot stand in for this install.
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", "from memstore.index import serve_rebuild as s; s()"],
                stdin=source,
                stdout=subprocess.PIPE,
                stderr=self._errors,
            )

    def polling(self, advance: Callable[[int], None]) -> Callable[[int], None]:
        """advance, also passing on the helper's progress now and then."""
        calls = 0

        def step(count: int) -> None:
            nonlocal calls
            advance(count)
            calls += 1
            if calls % 64 == 0:
                self._read(advance, wait=False)

        return step

    def results(self, advance: Callable[[int], None]) -> Iterator[tuple[int, Any, _Noted, Any]]:
        """Each chunk the helper indexed, as it comes, until it exits."""
        while True:
            while self._messages:
                message = self._messages.pop(0)
                if message[0] == "chunk":
                    yield message[1], message[2], message[3], message[4]
            if self._ended:
                break
            self._read(advance, wait=True)
        status = self.process.wait()
        if status != 0 and self.failure is None:
            self._errors.seek(0)
            lines = self._errors.read().decode(errors="replace").strip().splitlines()
            self.failure = lines[-1] if lines else f"exit status {status}"

    def _read(self, advance: Callable[[int], None], wait: bool) -> None:
        """Take in what the helper sent: all there is, or (wait) at least something."""
        import pickle
        import select

        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while wait or select.select([fd], [], [], 0)[0]:
            wait = False
            data = os.read(fd, 1 << 20)
            if not data:
                self._ended = True
                return
            buffer = self._buffer
            buffer += data
            while len(buffer) >= 8:
                size = int.from_bytes(buffer[:8], "big")
                if len(buffer) < 8 + size:
                    break
                message = pickle.loads(buffer[8 : 8 + size])
                del buffer[: 8 + size]
                if message[0] == "advance":
                    advance(message[1])
                else:
                    self._messages.append(message)

    def close(self) -> None:
        """Stop the helper if it still runs, and release what it held."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._errors.close()


def serve_rebuild() -> None:
    """The second process of a rebuild (`_RebuildHelper`): index the chunks it is given."""
    import pickle
    import sys
    import threading
    import time

    job = pickle.load(sys.stdin.buffer)
    parent = os.getppid()

    def watch_parent() -> None:
        # Killed, the first process cannot stop this one: its work would go to a folder that
        # nothing lists. A new parent (init, or a subreaper) means it is gone.
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    out = sys.stdout.buffer

    def send(message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "big") + data)
        out.flush()

    pending = 0

    def advance(step: int) -> None:
        nonlocal pending
        pending += step
        if pending >= 64:
            send(("advance", pending))
            pending = 0

    import gc

    from memstore.report import CollectingReporter

    gc.disable()  # as _collector_paused does in the first process
    helper = SearchIndex(Path(job["root"]), Path(job["git_dir"]), CollectingReporter())
    for number, paths in job["chunks"].items():
        state = IndexState(directory="", conflicts=[])
        segment, rows = helper._index_chunk(Path(job["folder"]), paths, state, advance)
        if pending:
            send(("advance", pending))
            pending = 0
        send(("chunk", number, segment, _Noted(state.skipped, state.conflicts), rows))


class _NeedsRebuild(Exception):
    pass


def _remove_tree(path: Path | str) -> None:
    import shutil  # only rebuilds and clean-ups need it, not searches

    shutil.rmtree(path, ignore_errors=True)


def _encrypted_count(count: int) -> str:
    return f"{count} encrypted {'memory' if count == 1 else 'memories'}"


def field_text(value: Any) -> str:
    """A front-matter value as text ('' for none): a date YAML read as a date, as written."""
    return "" if value is None else str(value).strip()


def _docnums_at(reader: Any, path: str) -> list[int]:
    """The numbers of the documents indexed at path (one at most: the path is unique), read
    from the postings as `search.having` does, without a searcher."""
    if not reader.doc_frequency("path", path):
        return []
    return [n for n in reader.postings("path", path).all_ids() if not reader.is_deleted(n)]


def _paths_in(reader: Any, folder: str) -> set[str]:
    """The paths of the memories indexed in a folder (not below it)."""
    if not reader.doc_frequency("dir", folder):
        return set()
    postings = reader.postings("dir", folder).all_ids()
    return {reader.stored_fields(n)["path"] for n in postings if not reader.is_deleted(n)}


def _stored_at(reader: Any, path: str) -> dict[str, Any] | None:
    """The stored fields of the memory indexed at path, None if there is none."""
    for docnum in _docnums_at(reader, path):
        return dict(reader.stored_fields(docnum))
    return None


def _note_conflict(state: IndexState, path: str, data: bytes | None) -> None:
    """Keep state.conflicts in step with a file just read (None: gone or unreadable)."""
    if state.conflicts is None:
        return
    from memstore.merge import has_conflict

    flagged = data is not None and has_conflict(data)
    if flagged != (path in state.conflicts):
        state.conflicts = sorted(set(state.conflicts) ^ {path})


def _maybe_blob(data: bytes | None) -> str | None:
    return None if data is None else blob_id(data)
