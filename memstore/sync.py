"""Sync with a remote: fetch, merge memory by memory, push, and try again if the remote moved.

Everything goes through pygit2. Merges are made in memory with `merge_commits`; where git's line
merge conflicts, `memstore.merge` resolves it, so the work tree never sees conflict markers and
the repository is never left in a merge state. The work tree and HEAD move only once the merge
commit exists, and only the paths that changed are checked out. The outcome of every sync,
success or failure, is kept in `.git/memstore/sync.json` for `mem status`.

Credentials (see docs/sync.md): ssh uses the ssh agent, then `MEM_SSH_KEY`, then the usual key
files in `~/.ssh`; https uses `MEM_GIT_TOKEN`, then git's credential store file
(`~/.git-credentials`). Each is offered once, so a wrong one fails instead of looping.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from memstore import atomic, gitrepo, gitsetup, knownhosts
from memstore.errors import (
    AuthenticationError,
    HostKeyError,
    MemstoreError,
    NoRemoteError,
    NotAStoreError,
    PushRejectedError,
    RemoteUnreachableError,
    SyncConflictError,
    SyncError,
    UnrelatedHistoryError,
)
from memstore.memory import ENCRYPTED_SUFFIX, MEMORY_DIR, SUFFIX, is_encrypted, is_memory_name
from memstore.merge import has_conflict, merge_memory
from memstore.report import Reporter
from memstore.text import error_line

if TYPE_CHECKING:
    import pygit2

    from memstore.core import Core
    from memstore.crypto import Keyring

STATE_FILE = "sync.json"
RETRY_SECONDS = 45.0  # fetch, merge and push again while other pushes win the branch, so long
BACKOFF_CAP = 4.0  # seconds: the longest wait between two tries
PROGRESS_MIN_OBJECTS = 500
DEFAULT_REMOTE = "origin"
SSH_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")


@dataclass
class SyncResult:
    """What one sync did."""

    remote: str
    url: str
    received: int = 0  # commits that came in
    sent: int = 0  # commits pushed
    merged: list[str] = field(default_factory=list)  # paths merged by memstore
    conflicts: list[str] = field(default_factory=list)  # paths left flagged
    committed_pending: list[str] = field(default_factory=list)
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Status:
    """Where a store stands: local changes, its remote, the last sync and open conflicts."""

    branch: str
    remote: str | None
    url: str | None
    pending: list[str]
    ahead: int | None
    behind: int | None
    last_sync: dict[str, Any] | None
    conflicts: list[str]
    store: str = ""  # the store's folder, so that nobody wonders which store this is
    detached: bool = False  # HEAD names a commit, not a branch: mem cannot commit
    operation: str | None = None  # a git merge, rebase, ... in progress: mem cannot commit
    fetched: str | None = None  # when ahead/behind were true: the last fetch (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# State


def state_path(store: Core) -> Path:
    return store.git_dir / "memstore" / STATE_FILE


def read_state(store: Core) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(store).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(store: Core, data: dict[str, Any]) -> None:
    path = state_path(store)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    atomic.write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)


# Remotes


def remotes(repo: pygit2.Repository) -> list[tuple[str, str]]:
    """The configured remotes as (name, url)."""
    return [(r.name or "", r.url or "") for r in repo.remotes]


def add_remote(repo: pygit2.Repository, name: str, url: str) -> None:
    """Add a remote; refuse a name in use."""
    from memstore.errors import InvalidInputError

    if not name or any(c in name for c in " \t/:"):
        raise InvalidInputError(f"{name!r} is not a usable remote name: try 'origin'")
    if name in [r.name for r in repo.remotes]:
        raise InvalidInputError(
            f"a remote named {name!r} exists already: pick another name, or change its URL"
            f" with 'mem remote set-url {name} URL'"
        )
    repo.remotes.create(name, normalize_url(url))
    _follow_if_unset(repo, name)


def _follow_if_unset(repo: pygit2.Repository, name: str) -> None:
    """Make the current branch follow its namesake on the remote, as `git clone` does, unless
    it follows one already: plain `git pull` and `git push` then work without arguments."""
    branch = repo.head.shorthand if not repo.head_is_unborn else "main"
    if repo.head_is_detached or f"branch.{branch}.remote" in repo.config:
        return
    repo.config[f"branch.{branch}.remote"] = name
    repo.config[f"branch.{branch}.merge"] = f"refs/heads/{branch}"


def remove_remote(repo: pygit2.Repository, name: str) -> None:
    """Forget a remote: its URL and what was fetched from it (the remote itself is untouched)."""
    _existing_remote(repo, name)
    repo.remotes.delete(name)


def set_remote_url(repo: pygit2.Repository, name: str, url: str) -> None:
    """Point an existing remote at another URL (a moved folder, a new server)."""
    _existing_remote(repo, name)
    repo.remotes.set_url(name, normalize_url(url))


def _existing_remote(repo: pygit2.Repository, name: str) -> None:
    names = [r.name for r in repo.remotes]
    if name not in names:
        shown = ", ".join(n for n in names if n) or "none"
        raise NoRemoteError(
            f"no remote named {name!r} (remotes: {shown}): see them with 'mem remote list'"
        )


def normalize_url(url: str) -> str:
    """A local folder becomes an absolute path; URLs stay as they are."""
    if "://" in url or (":" in url and not url.startswith(("/", ".", "~"))):
        return url
    return str(Path(url).expanduser().resolve())


def _pick_remote(repo: pygit2.Repository, name: str | None) -> pygit2.Remote:
    names = [r.name for r in repo.remotes]
    if name is not None:
        if name not in names:
            shown = ", ".join(n for n in names if n) or "none"
            raise NoRemoteError(
                f"no remote named {name!r} (remotes: {shown}): add it with"
                f" 'mem remote add {name} URL'"
            )
        return repo.remotes[name]
    if not names:
        raise NoRemoteError(
            "this store has no remote: add one with 'mem remote add origin URL', then sync"
        )
    chosen = DEFAULT_REMOTE if DEFAULT_REMOTE in names else names[0]
    return repo.remotes[chosen or 0]


# Credentials and progress


def make_callbacks(reporter: Reporter, url: str = "", command: str = "mem sync") -> Any:
    """RemoteCallbacks that offer each credential once, refuse an ssh server that
    ~/.ssh/known_hosts does not vouch for, and report transfer progress."""
    import pygit2

    # libgit2 reads HOME once per process; tell it where ~/.ssh/known_hosts is now.
    pygit2.settings.homedir = str(Path.home())
    is_ssh = knownhosts.ssh_host(url) is not None

    class Callbacks(pygit2.RemoteCallbacks):
        def __init__(self) -> None:
            super().__init__()
            self.tried: set[str] = set()
            self.auth_failed = False
            self.rejected: list[str] = []
            self._stack = contextlib.ExitStack()
            self._advance: Callable[[int], None] | None = None
            self._done = 0

        def credentials(self, url: str, username_from_url: str | None, allowed: Any) -> Any:
            types = pygit2.enums.CredentialType
            user = username_from_url or os.environ.get("MEM_GIT_USERNAME") or ""
            if allowed & types.USERNAME:
                return pygit2.Username(user or "git")
            if allowed & types.SSH_KEY:
                for label, make in _ssh_options(user or "git"):
                    if label not in self.tried:
                        self.tried.add(label)
                        return make()
            if allowed & types.USERPASS_PLAINTEXT:
                for label, (name, secret) in _token_options(url, user):
                    if label not in self.tried:
                        self.tried.add(label)
                        return pygit2.UserPass(name, secret)
            self.auth_failed = True
            raise AuthenticationError(_auth_advice(url))

        def certificate_check(self, certificate: Any, valid: bool, host: bytes) -> bool:
            if not is_ssh:
                raise pygit2.Passthrough  # https: libgit2's TLS verification decides
            if valid:  # libssh2 found the server's key in ~/.ssh/known_hosts
                return True
            raise knownhosts.refusal(url, command)

        def transfer_progress(self, stats: Any) -> None:
            self._progress(stats.total_objects, stats.received_objects, "receiving")

        def push_transfer_progress(self, current: int, total: int, sent_bytes: int) -> None:
            self._progress(total, current, "sending")

        def _progress(self, total: int, current: int, label: str) -> None:
            if self._advance is None and total >= PROGRESS_MIN_OBJECTS:
                self._advance = self._stack.enter_context(reporter.progress(total, label))
                self._done = 0
            if self._advance is not None and current > self._done:
                self._advance(current - self._done)
                self._done = current

        def push_update_reference(self, refname: str, message: str | None) -> None:
            if message:
                self.rejected.append(f"{refname}: {message}")

        def close(self) -> None:
            self._stack.close()
            self._advance = None

    return Callbacks()


def _ssh_options(user: str) -> list[tuple[str, Callable[[], Any]]]:
    import pygit2

    options: list[tuple[str, Callable[[], Any]]] = []
    if os.environ.get("SSH_AUTH_SOCK"):
        options.append(("agent", lambda: pygit2.KeypairFromAgent(user)))
    key = os.environ.get("MEM_SSH_KEY")
    candidates = [Path(key).expanduser()] if key else []
    candidates += [Path.home() / ".ssh" / name for name in SSH_KEY_FILES]
    passphrase = os.environ.get("MEM_SSH_PASSPHRASE", "")
    for private in candidates:
        if private.is_file():
            public = private.with_name(private.name + ".pub")
            pub = str(public) if public.is_file() else None
            options.append((f"key:{private}", _keypair(user, pub, str(private), passphrase)))
    return options


def _keypair(user: str, public: str | None, private: str, passphrase: str) -> Callable[[], Any]:
    import pygit2

    return lambda: pygit2.Keypair(user, public, private, passphrase)


def credential_files() -> list[Path]:
    """git's credential store files, in the order git reads them."""
    files = [Path.home() / ".git-credentials"]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    files.append((Path(xdg) if xdg else Path.home() / ".config") / "git" / "credentials")
    return files


def _token_options(url: str, user: str) -> list[tuple[str, tuple[str, str]]]:
    options: list[tuple[str, tuple[str, str]]] = []
    token = os.environ.get("MEM_GIT_TOKEN")
    if token:
        options.append(("env", (user or "x-access-token", token)))
    wanted = urlsplit(url)
    for path in credential_files():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines):
            entry = urlsplit(line.strip())
            if (
                entry.scheme == wanted.scheme
                and entry.hostname == wanted.hostname
                and entry.port == wanted.port
                and entry.password
                and (not user or entry.username == user)
            ):
                from urllib.parse import unquote

                name = unquote(entry.username or "")
                options.append((f"{path}:{number}", (name, unquote(entry.password))))
    return options


def _auth_advice(url: str, command: str = "mem sync") -> str:
    if url.startswith(("http://", "https://")):
        return (
            f"{url} refused the credentials: set MEM_GIT_TOKEN to an access token"
            f" (or store one in ~/.git-credentials), then run '{command}' again"
        )
    return (
        f"{url} refused the ssh credentials: load your key into ssh-agent or set MEM_SSH_KEY"
        f" (and MEM_SSH_PASSPHRASE), then run '{command}' again"
    )


def _local_problem(url: str) -> str | None:
    """What is wrong with a remote that is a folder on this machine, if that is the trouble."""
    folder = _local_folder(url)
    if folder is None:
        return None
    if not folder.exists():
        return f"the local path {folder} does not exist"
    if not folder.is_dir() or not ((folder / "HEAD").is_file() or (folder / ".git").exists()):
        return f"the local path {folder} is not a git repository"
    return None


def _network_error(error: BaseException, remote: str, url: str, callbacks: Any) -> SyncError:
    if isinstance(error, SyncError):
        return error
    local = _local_problem(url)
    if local is not None:  # libgit2 calls a missing folder an "unsupported URL protocol"
        return RemoteUnreachableError(
            f"cannot reach {remote}: {local}; check the path (a drive not mounted?) or change"
            f" it with 'mem remote set-url {remote} PATH', then run 'mem sync' again (your"
            " commits are kept)"
        )
    text = error_line(error)
    lowered = text.lower()
    if callbacks.auth_failed or any(
        word in lowered
        for word in ("authentication", "401", "403", "credentials", "permission denied")
    ):
        return AuthenticationError(_auth_advice(url))
    return RemoteUnreachableError(
        f"cannot reach {remote} ({url}): {text}; check the URL and your network, then run"
        " 'mem sync' again (your commits are kept)"
    )


# Syncing


def sync(store: Core, remote_name: str | None = None) -> SyncResult:
    """Commit pending edits, fetch, merge, push; record the outcome for `mem status`."""
    record: dict[str, Any] = {"time": store.clock().isoformat(timespec="seconds")}
    previous = read_state(store) or {}
    fetched = previous.get("fetched")
    record["fetched"] = dict(fetched) if isinstance(fetched, dict) else {}
    try:
        with store.writing() as session:
            repo = store.repo
            remote = _pick_remote(repo, remote_name)
            record.update(remote=remote.name, url=remote.url)
            result = SyncResult(remote=remote.name or "", url=remote.url or "")
            result.committed_pending = list(session.committed_pending)
            with _remote_lock(remote.url or ""):
                _sync_locked(store, repo, remote, result, record)
    except BaseException as error:  # whatever stopped it, `mem status` says so
        message = str(error) if isinstance(error, Exception) else "interrupted"
        record.update(result="failed", message=message or type(error).__name__)
        _write_state(store, record)
        raise
    record.update(result="ok", message=_summary(result), conflicts=result.conflicts)
    _write_state(store, record)
    return result


def _summary(result: SyncResult) -> str:
    parts = [f"received {_plural(result.received, 'commit')}, sent {result.sent}"]
    if result.merged:
        parts.append(f"merged {_plural(len(result.merged), 'memory', 'memories')}")
    if result.conflicts:
        parts.append(f"{len(result.conflicts)} with conflicts to resolve")
    return "; ".join(parts)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


@contextlib.contextmanager
def _remote_lock(url: str) -> Iterator[None]:
    """For a remote on a file system, hold a lock in it from fetch to push.

    libgit2 moves a local remote's branch without checking that it is still where the fetch saw
    it, so two syncs pushing at once could each overwrite the other's commit on the remote (the
    commit stays in its clone and comes back at its next sync). The lock makes mem syncs to one
    local remote take turns.
    """
    from memstore.locking import WRITE_LOCK_WAIT, FileLock

    folder = _local_folder(url)
    if folder is None or not folder.is_dir():
        yield
        return
    held = FileLock(folder / "memstore-sync.lock").hold(WRITE_LOCK_WAIT)
    try:
        held.__enter__()
    except TimeoutError:
        raise RemoteUnreachableError(
            f"another mem sync has held {url} for {WRITE_LOCK_WAIT:.0f} s: wait for it to finish,"
            " then run 'mem sync' again (your commits are kept)"
        ) from None
    except PermissionError:  # a read-only remote: syncing still reads it
        yield
        return
    try:
        yield
    finally:
        held.__exit__(None, None, None)


def _local_folder(url: str) -> Path | None:
    if url.startswith("file://"):
        from urllib.parse import unquote

        return Path(unquote(urlsplit(url).path))
    if "://" in url or (":" in url and not url.startswith(("/", "."))):
        return None
    return Path(url).expanduser()


def _sync_locked(
    store: Core,
    repo: pygit2.Repository,
    remote: pygit2.Remote,
    result: SyncResult,
    record: dict[str, Any],
) -> None:
    import pygit2

    branch = repo.head.shorthand if not repo.head_is_unborn else "main"
    local_ref = f"refs/heads/{branch}"
    tracking = f"refs/remotes/{remote.name}/{branch}"
    give_up_at = time.monotonic() + RETRY_SECONDS  # within the write lock's 60 s wait
    for attempt in itertools.count(1):
        result.attempts = attempt
        started = time.monotonic()
        callbacks = make_callbacks(store.reporter, result.url)
        try:
            remote.fetch(callbacks=callbacks)
        except Exception as error:
            raise _network_error(error, result.remote, result.url, callbacks) from None
        finally:
            callbacks.close()
        record["fetched"][result.remote] = record["time"]  # what `mem status` compares with
        theirs_ref = repo.references.get(tracking)
        theirs = theirs_ref.peel(pygit2.Commit) if theirs_ref is not None else None
        ours = repo.head.peel(pygit2.Commit)
        if theirs is not None and theirs.id != ours.id:
            _integrate(store, repo, ours, theirs, local_ref, result)
        head = repo.head.peel(pygit2.Commit)
        if theirs is not None and (head.id == theirs.id or repo.descendant_of(theirs.id, head.id)):
            return  # nothing of ours to send
        ahead = _count(repo, head.id, theirs.id if theirs is not None else None)
        callbacks = make_callbacks(store.reporter, result.url)
        try:
            remote.push([f"{local_ref}:{local_ref}"], callbacks=callbacks)
        except Exception as error:
            if _is_non_fast_forward(error):
                if _back_off(attempt, time.monotonic() - started, give_up_at):
                    continue
                raise _kept_moving(result.remote, attempt) from None
            failure = _network_error(error, result.remote, result.url, callbacks)
            if isinstance(failure, (AuthenticationError, HostKeyError)):
                raise failure from None
            raise PushRejectedError(
                f"{result.remote} ({result.url}) did not take the push: {error_line(error)};"
                " your commits are kept: check your access to the remote, then run"
                " 'mem sync' again"
            ) from None
        finally:
            callbacks.close()
        if callbacks.rejected and _moved_meanwhile(callbacks.rejected):
            # another push won the race for the branch: fetch and merge again
            if _back_off(attempt, time.monotonic() - started, give_up_at):
                continue
            raise _kept_moving(result.remote, attempt)
        if callbacks.rejected:
            raise PushRejectedError(
                f"{result.remote} refused the push ({'; '.join(callbacks.rejected)}): your"
                " commits are kept; check your access to the remote, then run 'mem sync' again"
            )
        with contextlib.suppress(Exception):
            repo.references.create(tracking, head.id, force=True)
        result.sent = ahead
        return


def _back_off(attempt: int, took: float, give_up_at: float) -> bool:
    """Wait a random time before trying again after another push won the branch; False once
    the sync has tried for RETRY_SECONDS.

    Exponential backoff with full jitter, in units of the attempt that lost: up to its length
    after the first loss, doubling with each try, at most BACKOFF_CAP. Replicas that lost the
    same race then come back at different times instead of colliding again, and the unit
    follows the server's speed (milliseconds on disk, seconds on a busy server).
    """
    left = give_up_at - time.monotonic()
    if left <= 0:
        return False
    wait = random.uniform(0, min(BACKOFF_CAP, max(took, 0.01) * 2 ** (attempt - 1)))
    time.sleep(min(wait, left))
    return True


def _kept_moving(remote: str, attempts: int) -> PushRejectedError:
    return PushRejectedError(
        f"{remote} kept moving while we synced ({attempts} tries in {RETRY_SECONDS:.0f} s):"
        " run 'mem sync' again (your commits are kept)"
    )


def _count(repo: pygit2.Repository, head: Any, other: Any) -> int:
    if other is None:
        return sum(1 for _ in repo.walk(head))
    ahead, _ = repo.ahead_behind(head, other)
    return int(ahead)


def _moved_meanwhile(rejected: list[str]) -> bool:
    """The server refused the branch because another push moved or held it meanwhile (git
    receive-pack's "failed to update ref", "cannot lock ref", "fetch first", ...)."""
    return any(
        phrase in message.lower()
        for message in rejected
        for phrase in (
            "failed to update ref",
            "cannot lock ref",
            "failed to lock",
            "fetch first",
            "non-fast-forward",
            "stale info",
        )
    )


def _is_non_fast_forward(error: BaseException) -> bool:
    text = str(error).lower()
    return any(
        phrase in text
        for phrase in ("non-fast-forward", "fastforward", "not present locally", "fetch first")
    )


def _integrate(
    store: Core,
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    theirs: pygit2.Commit,
    local_ref: str,
    result: SyncResult,
) -> None:
    """Bring the remote's commits into the current branch: fast-forward or merge."""
    if repo.descendant_of(ours.id, theirs.id):
        return  # we have everything they have
    base = repo.merge_base(ours.id, theirs.id)
    result.received += _count(repo, theirs.id, ours.id) if base is not None else 0
    if base is None:
        if _is_fresh(repo, ours) and ".memstore.toml" in theirs.tree:
            _move_to(store, repo, ours, theirs.id, theirs.tree, local_ref, "sync: start from")
            result.received = _count(repo, theirs.id, None)
            return
        raise UnrelatedHistoryError(
            f"{result.remote} ({result.url}) has a history unrelated to this store's: to work"
            f" on its memories, clone it with 'mem clone {result.url} PATH'"
        )
    if base == ours.id:
        _move_to(store, repo, ours, theirs.id, theirs.tree, local_ref, "sync: fast-forward to")
        result.conflicts += _flagged(repo, ours.tree, theirs.tree, store.keyring)
        return
    tree_id, merged, conflicts = merge_trees(repo, ours, theirs, store)
    now = store.clock()
    sig = gitrepo.signature(repo, now)
    message = f"sync: merge {result.remote}/{local_ref.rsplit('/', 1)[-1]}"
    if merged:
        message += "\n\nmerged by memstore:\n" + "\n".join(
            f"{path}{' (conflict flagged)' if path in conflicts else ''}" for path in merged
        )
    commit_id = repo.create_commit(None, sig, sig, message, tree_id, [ours.id, theirs.id])
    _move_to(store, repo, ours, commit_id, repo[tree_id], local_ref, message.split("\n")[0])
    result.merged += merged
    flagged = _flagged(repo, ours.tree, repo[tree_id], store.keyring)
    result.conflicts += sorted(set(conflicts) | set(flagged))


def _is_fresh(repo: pygit2.Repository, commit: pygit2.Commit) -> bool:
    """A store just made by `mem init`: one commit, no memories."""
    import pygit2

    if commit.parents:
        return False
    if MEMORY_DIR not in commit.tree:
        return True
    folder = repo[commit.tree[MEMORY_DIR].id]
    return isinstance(folder, pygit2.Tree) and len(folder) == 0


def merge_trees(
    repo: pygit2.Repository, ours: pygit2.Commit, theirs: pygit2.Commit, store: Core | None = None
) -> tuple[Any, list[str], list[str]]:
    """Merge two commits in memory; returns the tree id, paths memstore merged, and conflicts.

    Encrypted memories are merged with the store's identity (see `_merge_encrypted`).
    """
    import pygit2

    index = repo.merge_commits(ours, theirs, flags=pygit2.enums.MergeFlag(0))
    merged: list[str] = []
    conflicts: list[str] = []
    # Only paths where the two sides differ can differ from ours in the result: build the tree
    # from ours along those paths, not from the whole index (which rewrites every tree).
    differing = gitrepo.tree_changes(repo, ours.tree, theirs.tree)
    _recheck_clean_merges(repo, ours, theirs, index, differing, merged, conflicts)
    if index.conflicts is None:
        return _tree_from(repo, ours.tree, index, differing), merged, conflicts
    entries = [(a, o, t) for a, o, t in index.conflicts]
    outside = [
        _entry_path(a, o, t)
        for a, o, t in entries
        if not _entry_path(a, o, t).startswith(MEMORY_DIR + "/")
        or _entry_path(a, o, t).endswith("/.age-recipients")
    ]
    if outside:
        raise SyncConflictError(
            f"{', '.join(sorted(outside)[:3])} changed on both sides and is not a memory:"
            " merge it with git ('git pull'), then run 'mem sync' again (nothing was changed)"
        )
    for ancestor, mine, other in entries:
        path = _entry_path(ancestor, mine, other)
        del index.conflicts[path]
        merged.append(path)
        if mine is None or other is None:  # an edit against a deletion: the edit wins
            kept = mine or other
            assert kept is not None
            index.add(pygit2.IndexEntry(path, kept.id, kept.mode))
            continue
        data_a, data_b = _blob(repo, mine.id), _blob(repo, other.id)
        base = _blob(repo, ancestor.id) if ancestor is not None else None
        if is_encrypted(path):
            kept, conflict = _merge_encrypted(
                repo, store, index, path, (base, data_a, data_b), (mine, other)
            )
            merged += [kept] if kept else []
            conflicts += [path] if conflict else []
            continue
        if base is None and path.endswith(SUFFIX) and _ids(data_a) != _ids(data_b):
            # Two new memories at one path: both kept, the second under a name of its own.
            first, second = sorted((data_a, data_b))
            index.add(pygit2.IndexEntry(path, repo.create_blob(first), mine.mode))
            other_path = _second_path(path, str(repo.create_blob(second)))
            index.add(pygit2.IndexEntry(other_path, repo.create_blob(second), mine.mode))
            merged.append(other_path)
            continue
        outcome = merge_memory(base, data_a, data_b, path)
        index.add(pygit2.IndexEntry(path, repo.create_blob(outcome.data), mine.mode))
        if outcome.conflict:
            conflicts.append(path)
    tree_id = _tree_from(repo, ours.tree, index, sorted(set(differing) | set(merged)))
    return tree_id, sorted(merged), sorted(conflicts)


def _merge_encrypted(
    repo: pygit2.Repository,
    store: Core | None,
    index: Any,
    path: str,
    data: tuple[bytes | None, bytes, bytes],
    entries: tuple[Any, Any],
) -> tuple[str | None, bool]:
    """Merge an encrypted memory's plaintext in memory and store only the new ciphertext.

    The three versions are decrypted into Python bytes, merged by the rules of plain memories
    and encrypted again to the folder's recipients: no plaintext becomes a git object. Without
    an identity that reads both sides, both versions are kept, the second beside the first.
    Returns the second version's path if there is one, and whether a conflict is left.
    """
    import pygit2

    mine, other = entries
    plain: list[bytes | None] = []
    for side, blob in enumerate(data):
        text = None
        try:
            text = None if blob is None or store is None else store.keyring.try_decrypt(blob, path)
        except MemstoreError as error:  # an ancestor we cannot read: merge the sides without it
            if side and store is not None:
                store.reporter.warning(str(error))
        plain.append(text)
    base, ours, theirs = plain
    if store is None or ours is None or theirs is None:
        index.add(pygit2.IndexEntry(path, mine.id, mine.mode))
        second = f"{path.removesuffix(ENCRYPTED_SUFFIX)}-{str(other.id)[:8]}{ENCRYPTED_SUFFIX}"
        index.add(pygit2.IndexEntry(second, other.id, other.mode))
        if store is not None:
            store.reporter.warning(
                f"{path} is encrypted, changed on both sides, and cannot be decrypted here:"
                f" both versions kept ({path} and {second}); merge them where the key is"
                " (see docs/encryption.md)"
            )
        return second, True
    outcome = merge_memory(base, ours, theirs, path)
    sealed = store.seal(path, outcome.data)
    index.add(pygit2.IndexEntry(path, repo.create_blob(sealed), mine.mode))
    return None, outcome.conflict


def _recheck_clean_merges(
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    theirs: pygit2.Commit,
    index: Any,
    paths: list[str],
    merged: list[str],
    conflicts: list[str],
) -> None:
    """Redo git's clean line merges of memories that broke the header (a key added twice)."""
    import pygit2

    base_tree: Any = None
    for path in paths:
        if not path.startswith(MEMORY_DIR + "/") or not path.endswith(SUFFIX):
            continue
        try:
            entry = index[path]
        except KeyError:
            continue
        mine, other = _entry_id(ours.tree, path), _entry_id(theirs.tree, path)
        if mine is None or other is None or entry.id in (mine, other):
            continue  # not a content merge of two versions
        if _sound(_blob(repo, entry.id)) or not (
            _sound(_blob(repo, mine)) and _sound(_blob(repo, other))
        ):
            continue
        if base_tree is None:
            base_id = repo.merge_base(ours.id, theirs.id)
            base_tree = repo[base_id].peel(pygit2.Commit).tree if base_id else False
        ancestor = _entry_id(base_tree, path) if base_tree else None
        base = _blob(repo, ancestor) if ancestor is not None else None
        outcome = merge_memory(base, _blob(repo, mine), _blob(repo, other), path)
        index.add(pygit2.IndexEntry(path, repo.create_blob(outcome.data), entry.mode))
        merged.append(path)
        if outcome.conflict:
            conflicts.append(path)


def _entry_id(tree: Any, path: str) -> Any:
    try:
        return tree[path].id
    except KeyError:
        return None


def _sound(data: bytes) -> bool:
    """A memory whose header reads field by field (no key twice, no odd layout)."""
    from memstore.errors import MalformedMemoryError
    from memstore.memory import parse

    try:
        return parse(data, "").blocks is not None
    except MalformedMemoryError:
        return False


def _tree_from(repo: pygit2.Repository, tree: Any, index: Any, paths: list[str]) -> Any:
    """Ours' tree with the index's entries (or their absence) at the given paths."""
    changes: dict[tuple[str, ...], tuple[Any, int] | None] = {}
    for path in paths:
        try:
            entry = index[path]
        except KeyError:
            changes[tuple(path.split("/"))] = None
        else:
            changes[tuple(path.split("/"))] = (entry.id, int(entry.mode))
    built = gitrepo.build_tree(repo, tree, changes)
    return built if built is not None else repo.TreeBuilder().write()


def _blob(repo: pygit2.Repository, oid: Any) -> bytes:
    import pygit2

    blob = repo[oid]
    return blob.data if isinstance(blob, pygit2.Blob) else b""


def _entry_path(*entries: Any) -> str:
    return next(str(e.path) for e in entries if e is not None)


def _ids(data: bytes) -> str | None:
    from memstore.errors import MalformedMemoryError
    from memstore.memory import parse

    try:
        return parse(data, "").id or None
    except MalformedMemoryError:
        return None


def _second_path(path: str, blob: str) -> str:
    stem = path[: -len(SUFFIX)] if path.endswith(SUFFIX) else path
    return f"{stem}-{blob[:8]}{SUFFIX if path.endswith(SUFFIX) else ''}"


def _flagged(
    repo: pygit2.Repository, old: Any, new: Any, keyring: Keyring | None = None
) -> list[str]:
    """Memory files that changed between two trees and carry a conflict flag.

    Encrypted ones are decrypted with keyring to tell; those it cannot read are not reported.
    """
    import pygit2

    found: list[str] = []
    for path in gitrepo.tree_changes(repo, old, new):
        if not path.startswith(MEMORY_DIR + "/"):
            continue
        try:
            blob = repo[new[path].id]
        except KeyError:
            continue
        if not isinstance(blob, pygit2.Blob):
            continue
        data = blob.data
        if is_encrypted(path):
            try:
                data = (keyring.try_decrypt(data, path) if keyring else None) or b""
            except MemstoreError:
                continue
        if has_conflict(data):
            found.append(path)
    return sorted(found)


def _move_to(
    store: Core,
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    target: Any,
    tree: Any,
    local_ref: str,
    message: str,
) -> None:
    """Check out what changed, then move the branch: the work tree never runs ahead of HEAD."""
    import pygit2

    paths = gitrepo.tree_changes(repo, ours.tree, tree)
    if paths:
        strategy = (
            pygit2.enums.CheckoutStrategy.SAFE
            | pygit2.enums.CheckoutStrategy.DISABLE_PATHSPEC_MATCH
        )
        try:
            repo.checkout_tree(tree, strategy=strategy, paths=paths)
        except pygit2.GitError as error:
            raise SyncConflictError(
                "files in the work tree have changes the sync would overwrite"
                f" ({error_line(error)}): commit or move them (for a memory: fix it, see"
                " 'mem check'), then run 'mem sync' again (nothing was changed)"
            ) from None
    repo.references.create(local_ref, target, force=True)
    _index_paths(store, repo, tree, paths, str(ours.id), str(target))


def _index_paths(
    store: Core, repo: pygit2.Repository, tree: Any, paths: list[str], old: str, new: str
) -> None:
    """Index the memories a sync brought in, as a commit does: no scan of the store."""
    import pygit2

    changes: dict[str, bytes | None] = {}
    for path in paths:
        if not path.startswith(MEMORY_DIR + "/") or not is_memory_name(path):
            continue
        try:
            blob = repo[tree[path].id]
        except KeyError:
            changes[path] = None
            continue
        changes[path] = blob.data if isinstance(blob, pygit2.Blob) else None
    if not changes:
        return
    store.index.record(changes, old, new)  # the sync stands if it cannot: it warns


# Status


def status(store: Core) -> Status:
    """Pending changes, ahead/behind as of the last fetch, the last sync, open conflicts.

    Nothing here touches the network: ahead and behind compare HEAD with the remote-tracking
    branch that the last fetch left, and are None when the remote was never fetched.
    """
    from memstore import gitrepo

    repo = store.repo
    unborn = repo.head_is_unborn
    detached = not unborn and repo.head_is_detached
    branch = repo.head.shorthand if not unborn else "main"
    pending = changed_memories(store)
    operation = gitrepo.operation_in_progress(repo)
    state = read_state(store)
    remote_name: str | None = None
    url: str | None = None
    ahead = behind = None
    fetched: str | None = None
    try:
        remote = _pick_remote(repo, None)
    except NoRemoteError:
        remote = None
    if remote is not None:
        remote_name, url = remote.name, remote.url
        ref = repo.references.get(f"refs/remotes/{remote.name}/{branch}")
        if ref is not None and not unborn and not detached:
            ahead, behind = repo.ahead_behind(repo.head.target, ref.resolve().target)
            fetched = _last_fetch(state, remote_name or "")
    return Status(
        branch=branch,
        remote=remote_name,
        url=url,
        pending=pending,
        ahead=ahead,
        behind=behind,
        last_sync=state,
        conflicts=conflicts(store),
        store=str(store.root),
        detached=detached,
        operation=operation,
        fetched=fetched,
    )


def _last_fetch(state: dict[str, Any] | None, remote: str) -> str | None:
    """When the remote was last fetched, as mem sync recorded it; None if it is not known."""
    if state is None:
        return None
    fetched = state.get("fetched")
    if isinstance(fetched, dict) and isinstance(fetched.get(remote), str):
        return str(fetched[remote])
    if state.get("result") == "ok" and state.get("remote") == remote:  # every sync fetches
        time = state.get("time")
        return time if isinstance(time, str) else None
    return None


def conflicts(store: Core) -> list[str]:
    """Paths of memories flagged with an unresolved sync conflict, as the index keeps them."""
    return store.index.conflicts(lambda: conflicted_paths(store.root, store.keyring))


def changed_memories(store: Core) -> list[str]:
    """Memory files that differ from HEAD in the work tree: what the next write commits.

    Only the index's pending paths are compared, so this costs what changed; when the index does
    not know them (after a rebuild), git status is asked once and the index keeps the answer.
    """
    from memstore.index import blob_id

    candidates = store.index.pending()
    if candidates is None:
        found = set(gitrepo.pending_changes(store.repo, MEMORY_DIR))
        with contextlib.suppress(OSError):  # a store that cannot be written: ask again next time
            store.index.learn_pending(found)
        candidates = found
    changed = []
    for path in sorted(candidates):
        name = path.rsplit("/", 1)[-1]
        if not is_memory_name(name) or name.startswith("."):
            continue
        full = store.root / path
        data = None if full.is_symlink() or not full.is_file() else full.read_bytes()
        current = None if data is None else blob_id(data)
        if current != gitrepo.committed_blob_id(store.repo, path):
            changed.append(path)
    return changed


def conflicted_paths(root: Path, keyring: Keyring | None = None) -> list[str]:
    """Memory files in the work tree flagged with a conflict (encrypted ones with keyring)."""
    found: list[str] = []
    base = root / MEMORY_DIR
    for folder, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not is_memory_name(name) or name.startswith("."):
                continue
            full = Path(folder) / name
            try:
                data = full.read_bytes()
                if is_encrypted(name):
                    data = (keyring.try_decrypt(data, name) if keyring else None) or b""
            except (OSError, MemstoreError):
                continue
            if has_conflict(data):
                found.append(full.relative_to(root).as_posix())
    return sorted(found)


def format_time(text: str | None) -> str:
    """A recorded time for people: 2026-11-21 10:55."""
    if not text:
        return "never"
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return text


# Cloning and the merge driver


def clone_repository(url: str, path: Path, reporter: Reporter) -> None:
    """Clone url into path (missing or empty) and set it up for syncing."""
    import pygit2

    from memstore import locate
    from memstore.errors import InvalidInputError

    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(f"{path} exists and is not empty: choose a new folder")
    created = not path.exists()
    source = normalize_url(url)
    local = _local_problem(source)
    if local is not None:
        raise RemoteUnreachableError(
            f"cannot clone {url}: {local}; check the path (nothing was made)"
        )
    callbacks = make_callbacks(reporter, source, "mem clone")
    try:
        repo = pygit2.clone_repository(source, str(path), callbacks=callbacks)
    except Exception as error:
        _remove_partial(path, created)
        failure = _network_error(error, DEFAULT_REMOTE, source, callbacks)
        if isinstance(failure, HostKeyError):
            raise failure from None
        if isinstance(failure, AuthenticationError):
            raise AuthenticationError(_auth_advice(source, "mem clone")) from None
        raise RemoteUnreachableError(
            f"cannot clone {source}: {error_line(error)}; check the URL and your network, then"
            " run 'mem clone' again (nothing was made)"
        ) from None
    finally:
        callbacks.close()
    if repo.head_is_unborn:
        _check_out_remote_branch(repo)
    if repo.head_is_unborn:  # an empty remote: the store starts here, on main
        repo.references.create("HEAD", "refs/heads/main", force=True)
    elif not locate.is_store(path):
        _remove_partial(path, created)
        raise NotAStoreError(
            f"{url} is a git repository but not a memstore store: create the store with"
            f" 'mem init {path}' and add the remote with 'mem remote add origin {url}'"
        )
    gitsetup.set_up_clone(repo, path)


def _remove_partial(path: Path, created: bool) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _check_out_remote_branch(repo: pygit2.Repository) -> None:
    """After a clone whose remote HEAD names no branch (a bare `git init`): use main or the one."""
    import pygit2

    prefix = f"refs/remotes/{DEFAULT_REMOTE}/"
    names = [n[len(prefix) :] for n in repo.references if n.startswith(prefix)]
    names = [n for n in names if n != "HEAD"]
    if not names:
        return
    branch = "main" if "main" in names else sorted(names)[0]
    commit = repo.references[prefix + branch].peel(pygit2.Commit)
    repo.references.create(f"refs/heads/{branch}", commit.id, force=True)
    repo.references.create("HEAD", f"refs/heads/{branch}", force=True)
    repo.checkout_tree(commit.tree, strategy=pygit2.enums.CheckoutStrategy.FORCE)
    repo.config[f"branch.{branch}.remote"] = DEFAULT_REMOTE
    repo.config[f"branch.{branch}.merge"] = f"refs/heads/{branch}"
