"""The store: the library's front door, used by the CLI, agents and tests alike.

A store is a git repository with a `.memstore.toml` marker and a `memories/` folder. Every change
made through it is one commit. Heavy modules (pygit2, whoosh, yaml, jsonschema) are imported
inside the functions that need them, so that opening a store costs nothing until it is used.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import atomic, gitrepo, locate, search
from memstore.core import (
    Clock,
    Core,
    StrPath,
    check_limit,
    local_now,
)
from memstore.errors import (
    InvalidInputError,
    MemstoreError,
    NotAStoreError,
)
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    MEMORY_DIR,
    Memory,
    is_encrypted,
    parse,
)
from memstore.report import CollectingReporter, Reporter
from memstore.results import Filters, Listed, SearchHit

if TYPE_CHECKING:
    from collections import Counter

    from memstore import context as context_
    from memstore import history
    from memstore import review as review_
    from memstore import sessions as sessions_
    from memstore import sync as sync_
    from memstore import view as view_
    from memstore.check import Problem
    from memstore.doctor import Finding
    from memstore.duplicates import Duplicate
    from memstore.gitrepo import LogEntry
    from memstore.keys import KeyReport
    from memstore.links import RelatedHit
    from memstore.transfer import ExportResult, ImportResult

MARKER_TEXT = "# This folder is a memstore store: memories live in memories/.\nformat = 1\n"


class Store(Core):
    """A memory store on disk: the core (core.py) with the verbs of the library and the CLI."""

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
        from memstore import gitsetup, sync

        path = Path(path).expanduser()
        remote = None if remote is None else os.fspath(remote)
        if locate.is_store(path):
            store = cls(path, clock=clock, reporter=reporter)
            gitsetup.set_up(store.repo)
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
        files.update(gitsetup.attributes_file(path))
        for name, data in files.items():
            atomic.write_atomic(path / name, data or b"")
        gitrepo.commit_files(repo, files, "Create memstore store", clock())
        gitsetup.configure_merge_driver(repo)
        gitsetup.configure_textconv(repo)
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

    # Writing

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
        allow_secrets: bool = False,
        redacted: Counter[str] | None = None,
        memory_id: str | None = None,
        duplicates: builtins.list[Duplicate] | None = None,
    ) -> Memory:
        """Add a memory and commit it; encrypt it if asked or if the store's policy says so.

        session names the conversation or work session the memory comes from (default:
        MEM_SESSION). With supersedes (an id, id prefix or path), the new memory replaces that
        one. A memory it repeats is warned of unless check_duplicates is False; secrets are
        redacted unless allow_secrets is True, and counted into `redacted` when it is given
        instead of warned of (see `authoring.add`). With memory_id (`ids.new_id`), it is added at
        most once: adding the same text again with that id returns the memory already added.
        Given a `duplicates` list, the memories the new one repeats are appended to it instead
        of warned of.
        """
        from memstore import authoring

        return authoring.add(
            self,
            text,
            title=title,
            tags=tags,
            type=type,
            source=source,
            session=session,
            extra=extra,
            encrypt=encrypt,
            supersedes=supersedes,
            check_duplicates=check_duplicates,
            allow_secrets=allow_secrets,
            redacted=redacted,
            memory_id=memory_id,
            duplicates=duplicates,
        )

    def add_many(
        self,
        memories: Iterable[Memory],
        *,
        message: str | None = None,
        default_source: bool = True,
        allow_secrets: bool = False,
    ) -> builtins.list[Memory]:
        """Write new memories (made with `memory.new_memory`) and commit them all at once;
        secrets are redacted as in `add`, unless allow_secrets is True."""
        from memstore import authoring

        return authoring.add_many(
            self,
            memories,
            message=message,
            default_source=default_source,
            allow_secrets=allow_secrets,
        )

    def update(
        self,
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
        Secrets are redacted as in `add`, unless allow_secrets is True."""
        from memstore import authoring

        return authoring.update(
            self,
            ref,
            body=body,
            title=title,
            tags=tags,
            type=type,
            allow_secrets=allow_secrets,
            redacted=redacted,
        )

    def edit(
        self, ref: str, editor: Callable[[Path], None], *, allow_secrets: bool = False
    ) -> Memory | None:
        """Let an editor change a copy of the file; commit it if it changed and still parses
        (see `authoring.edit`)."""
        from memstore import authoring

        return authoring.edit(self, ref, editor, allow_secrets=allow_secrets)

    def remove(self, ref: str) -> Memory:
        """Delete a memory (git history keeps it) and commit."""
        with self.writing() as session:
            memory = self._get_for_removal(ref)
            session.delete(memory.path)
            session.commit(self.subject("remove", memory))
        return memory

    def commit_pending(self) -> list[str]:
        """Commit memory files changed outside mem (in an editor, by hand); return their paths."""
        with self.writing() as session:
            return session.committed_pending

    # Reading

    def find(
        self,
        query: str,
        *,
        filters: Filters | None = None,
        limit: int = 10,
        marks: tuple[str, str] = ("**", "**"),
        as_of: str | None = None,
    ) -> list[SearchHit]:
        """Search the memories; see docs/search.md for the query language.

        With as_of (a date, an age or a git revision), search them as they were then
        (`Store.at`). Expired memories are marked and ranked below current ones.
        """
        check_limit(limit)
        if as_of is not None:
            return self.at(as_of).find(query, filters=filters, limit=limit, marks=marks)
        with self.index.reading() as ix:
            return search.find(
                ix,
                query,
                filters or Filters(),
                limit,
                self.read_body,
                self.reveal,
                marks,
                self.clock(),
            )

    def list(
        self,
        *,
        filters: Filters | None = None,
        limit: int = 0,
        as_of: str | None = None,
        expired: bool = False,
    ) -> list[Listed]:
        """Memories newest first; with expired, only those past their `expires` date.

        With as_of (a date, an age or a git revision), the memories as they were then.
        """
        check_limit(limit)
        if as_of is not None:
            return self.at(as_of).list(filters=filters, limit=limit, expired=expired)
        with self.index.reading() as ix:
            return search.newest(
                ix, filters or Filters(), limit, self.reveal, self.clock(), expired
            )

    def at(self, when: str) -> history.Snapshot:
        """The memories as they were at a date, an age or a git revision (read-only)."""
        from memstore import history

        commit = history.resolve_point(self.repo, when, self.clock())
        return history.Snapshot(
            self.repo, commit, self.index, self.keyring, self.clock, self.reporter
        )

    def get(self, ref: str, *, as_of: str | None = None) -> Memory:
        """The memory named by an id, a unique id prefix, or a path (as it was at as_of)."""
        if as_of is not None:
            return self.at(as_of).get(ref)
        return super().get(ref)

    def log(self, ref: str | None = None, limit: int = 0) -> builtins.list[LogEntry]:
        """History from git, newest first; for one memory with ref, a removed one too."""
        if not ref:
            return list(gitrepo.history(self.repo, None, limit))
        return [event.entry for event in self.life(ref, limit)]

    def life(self, ref: str, limit: int = 0) -> builtins.list[history.Event]:
        """A memory's whole life, newest first: each commit that added, edited, moved or
        removed it, followed by its id across moves; ref may name a removed memory."""
        from memstore import history, restore

        return history.life(self.repo, restore.id_in_history(self, ref), limit)

    def removed(self) -> builtins.list[history.Removed]:
        """Memories that history has and the current commit has not, newest removal first."""
        from memstore import history

        return history.removed(self.repo, self.keyring)

    def restore(self, ref: str, *, source: str | None = None) -> Memory | None:
        """Bring back a removed memory, or the version of one at source (a date, age or
        revision), as a new commit; None when it is that already. Duplicates are warned of,
        as by `add`."""
        from memstore import restore

        return restore.restore(self, ref, source)

    def context(self, query: str, budget: int = 2000) -> context_.Context:
        """The most relevant memories that fit in about budget tokens; see docs/agents.md."""
        from memstore import context

        return context.build(self, query, budget)

    def view(self, ref: str, *, as_of: str | None = None) -> view_.View:
        """A memory with the memories that supersede it and link to it (`mem show`); with
        as_of, as they were then."""
        from memstore import view

        return view.view(self if as_of is None else self.at(as_of), ref, self.clock())

    def diff(self, rev_range: str | None = None, *, since: str | None = None) -> review_.Review:
        """Memory-level changes in a range (A..B, A...B, REV for REV..HEAD); see docs/review.md.

        With since (a date, an age or a revision), the changes made after it up to HEAD.
        """
        from memstore import review

        if since is not None:
            from memstore import history

            if rev_range:
                raise InvalidInputError("give a range or --since, not both")
            old = history.resolve_point(self.repo, since, self.clock(), end=False, before=True)
            spec, new = f"since {since.strip()}", str(self.repo.head.target)
        else:
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

    def import_memories(self, source: StrPath, *, allow_secrets: bool = False) -> ImportResult:
        """Import a JSONL file or a folder of Markdown notes in one commit; skip what is there.

        Bad lines are listed in the result (file, line, what is wrong), the rest is imported.
        Secrets are redacted before anything is written (counted in the result), unless
        allow_secrets is True.
        """
        from memstore import transfer

        source = Path(source).expanduser()
        if not source.exists():
            raise InvalidInputError(f"{source} does not exist: give a .jsonl file or a folder")
        items = transfer.read_items(source)
        return transfer.import_items(
            self, items, transfer.count_items(source), source.name, allow_secrets=allow_secrets
        )

    def import_sessions(
        self,
        tool: str,
        paths: Iterable[StrPath] = (),
        *,
        allow_secrets: bool = False,
        home: StrPath | None = None,
    ) -> sessions_.CaptureResult:
        """Capture what is new in an agent's session logs (`claude-code` or `codex`) in one
        commit: the given files and folders, or the tool's own folder under home."""
        from memstore import sessions, transfer

        files = sessions.log_files(tool, [Path(p) for p in paths], Path(home) if home else None)

        def write(items: builtins.list[tuple[str, int, Any]], label: str) -> ImportResult:
            return transfer.import_items(self, items, len(items), label, allow_secrets=True)

        return sessions.capture(
            self.index, self.git_dir, tool, files, write, allow_secrets=allow_secrets
        )

    def export_memories(self) -> ExportResult:
        """Every memory as a record for JSONL, by id; files that cannot be read are left out."""
        from memstore import transfer

        return transfer.export(self)

    # Links, revisions and duplicates (docs/links.md)

    def duplicates(self, text: str, *, exclude: Iterable[str] = ()) -> builtins.list[Duplicate]:
        """Memories that a new memory with this text would repeat: exact first, then similar."""
        from memstore import relations

        return relations.duplicates(self, text, exclude=exclude)

    def link(self, ref: str, target: str) -> Memory | None:
        """Add target's id to the `links` of the memory ref; None if it is linked already.

        target is an id, id prefix, path, title or alias. Nothing is written when it was linked.
        """
        from memstore import relations

        with self.writing() as session:
            memory = self.get(ref)
            target_id = relations.resolve_link(self, target)
            if target_id == memory.id:
                raise InvalidInputError(f"{memory.id} cannot link to itself: name another memory")
            if target_id in memory.links:
                return None
            memory.fields["links"] = [*memory.links, target_id]
            data = memory.to_bytes()
            session.write(memory.path, self.seal(memory.path, data))
            session.commit(self.subject("link", memory) + f" to {target_id}")
            return parse(data, memory.path)

    def backlinks(self, ref: str) -> builtins.list[Listed]:
        """The memories that link to ref (by `links:` or a `[[wiki link]]`), newest first."""
        from memstore import relations

        return relations.backlinks(self, ref)

    def successors(self, ref: str) -> builtins.list[Listed]:
        """The memories whose `supersedes` names ref, newest first."""
        from memstore import relations

        return relations.successors(self, ref)

    def related(self, ref: str, limit: int = 10) -> builtins.list[RelatedHit]:
        """Memories related to ref: by supersedes and links (both ways) first, then similar text;
        each hit says how ("supersedes", "links to", "similar", …)."""
        from memstore import relations

        return relations.related(self, ref, limit)

    # Encryption (docs/encryption.md)

    def _get_for_removal(self, ref: str) -> Memory:
        """The memory to remove; an encrypted one named by its path needs no identity."""
        path = self.resolve(ref) if "/" in ref or os.sep in ref else None
        if path is not None and is_encrypted(path) and not self.keyring.available():
            stem = path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
            return Memory(path=path, fields={"id": stem}, body="")
        return self.get(path or ref)

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

        return sync.conflicts(self)

    def find_conflicts(
        self,
        query: str = "",
        *,
        filters: Filters | None = None,
        limit: int = 10,
        marks: tuple[str, str] = ("**", "**"),
    ) -> builtins.list[SearchHit]:
        """Memories with an unresolved sync conflict, matching query (all when it is empty)."""
        check_limit(limit)
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
        """Clear a memory's conflict flag; keep '1', '2' or 'both' settles its conflict blocks.

        A memory holding git's conflict markers (a plain `git pull`) has its two sides merged
        as `mem sync` merges them first.
        """
        from memstore import gitmarkers
        from memstore.merge import has_conflict, resolve_memory

        with self.writing() as session:
            path = self.resolve(ref)
            current = self.plain(path, (self.root / path).read_bytes())
            taken = gitmarkers.take_over(current, path)  # git's markers: merge their two sides
            if taken is not None:
                current = taken.data
            elif not has_conflict(current):
                raise InvalidInputError(f"{path} has no conflict to resolve")
            if taken is None or (keep is not None and has_conflict(current)):
                current = resolve_memory(current, keep, path)
            memory = parse(current, path)
            session.write(path, self.seal(path, current))
            session.commit(self.subject("resolve", memory))
        return memory

    def doctor(self, fix: bool = False) -> builtins.list[Finding]:
        """Check the repository, the index and the files; with fix, repair what is safe."""
        from memstore.doctor import doctor

        return doctor(self, fix=fix)

    def check(self) -> builtins.list[Problem]:
        """Validate every memory file: schema, duplicate ids, broken links, stray files."""
        from memstore.check import check

        return check(self)
