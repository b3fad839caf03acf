"""Git operations through pygit2: commits of exactly the memory files that changed, and history.

Commits are built from HEAD's tree with tree builders along the changed paths only, so their
cost does not grow with the store, and nothing but the named paths is ever committed (whatever
else a user has staged stays staged). `.git/index` is then updated for those paths so that
`git status` on the command line tells the truth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore.errors import NotAStoreError, RepositoryStateError

if TYPE_CHECKING:
    import pygit2

BRANCH = "main"
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>]*)>\s*$")


def init_repository(path: Path) -> pygit2.Repository:
    """Create a git repository whose first branch is main."""
    import pygit2

    return pygit2.init_repository(str(path), initial_head=BRANCH)


def open_repository(path: Path) -> pygit2.Repository:
    """Open the repository whose work tree is path."""
    import pygit2

    try:
        return pygit2.Repository(str(path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
    except pygit2.GitError:
        raise NotAStoreError(
            f"{path} is not a git repository: run 'mem init {path}' to make it a store"
        ) from None


def git_dir(root: Path) -> Path:
    """The .git folder of a work tree, following a 'gitdir:' file (worktrees, submodules)."""
    dot_git = root / ".git"
    if dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:") :].strip())
            return target if target.is_absolute() else (root / target).resolve()
    return dot_git


def read_head(gdir: Path) -> str | None:
    """HEAD's commit id read straight from the files, without loading pygit2 (None if unborn)."""
    try:
        head = (gdir / "HEAD").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head[4:].strip()
    try:
        return (gdir / ref).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        with open(gdir / "packed-refs", encoding="ascii") as packed:
            for line in packed:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        return None
    return None


def signature(repo: pygit2.Repository, now: datetime) -> pygit2.Signature:
    """The author of memstore's commits: MEM_AUTHOR, then git config, then user@host."""
    import getpass
    import socket

    import pygit2

    name = email = None
    env = os.environ.get("MEM_AUTHOR", "")
    match = _AUTHOR.match(env)
    if match:
        name, email = match["name"], match["email"]
    elif env.strip():
        name = env.strip()
    if not name:
        try:
            name = repo.config["user.name"]
            email = email or repo.config["user.email"]
        except (KeyError, pygit2.GitError):
            pass
    if not name:
        name = getpass.getuser()
    if not email:
        email = f"{getpass.getuser()}@{socket.gethostname() or 'localhost'}"
    offset = now.utcoffset() or timedelta(0)
    return pygit2.Signature(name, email, int(now.timestamp()), int(offset.total_seconds() // 60))


def check_writable(repo: pygit2.Repository) -> None:
    """Refuse to commit in the middle of a merge, rebase or on a detached HEAD."""
    import pygit2

    if repo.state() != pygit2.enums.RepositoryState.NONE:
        raise RepositoryStateError(
            "the repository is in the middle of a merge, rebase or cherry-pick: finish or abort"
            " it with git (for example 'git merge --abort'), then try again"
        )
    if repo.head_is_detached:
        raise RepositoryStateError(
            f"HEAD is detached: check out a branch (for example 'git switch {BRANCH}'),"
            " then try again"
        )
    locks = git_lock_files(repo)
    if locks:
        raise RepositoryStateError(
            f"git's lock file {locks[0]} exists: a git program is working in this repository,"
            " or one was killed; wait for it to finish, or if no git program is running, delete the"
            " file ('mem doctor --fix' removes it once it is a minute old), then try again"
        )


# git's repository states, by the name of the operation left in progress.
_STATES = {
    "MERGE": "merge",
    "REVERT": "revert",
    "REVERT_SEQUENCE": "revert",
    "CHERRYPICK": "cherry-pick",
    "CHERRYPICK_SEQUENCE": "cherry-pick",
    "BISECT": "bisect",
    "REBASE": "rebase",
    "REBASE_INTERACTIVE": "rebase",
    "REBASE_MERGE": "rebase",
    "APPLY_MAILBOX": "am",
    "APPLY_MAILBOX_OR_REBASE": "am",
}


def operation_in_progress(repo: pygit2.Repository) -> str | None:
    """The git operation left in progress (merge, rebase, cherry-pick, ...), or None."""
    import pygit2

    state = pygit2.enums.RepositoryState(repo.state())
    if state == pygit2.enums.RepositoryState.NONE:
        return None
    return _STATES.get(state.name, state.name.lower())


def operation_advice(operation: str) -> str:
    """How to finish or abort a git operation in progress."""
    if operation == "merge":
        return "finish it with git ('git commit') or abort it ('git merge --abort')"
    if operation == "bisect":
        return "end it with 'git bisect reset'"
    if operation in _STATES.values():
        return f"finish it ('git {operation} --continue') or abort it ('git {operation} --abort')"
    return "finish or abort it with git"


def git_lock_files(repo: pygit2.Repository) -> list[Path]:
    """Lock files git and libgit2 hold while they change the index or the current branch."""
    gdir = Path(repo.path)
    candidates = [gdir / "index.lock", gdir / "HEAD.lock"]
    if not repo.head_is_detached:
        try:
            ref = (gdir / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            ref = ""
        if ref.startswith("ref:"):
            candidates.append(gdir / (ref[4:].strip() + ".lock"))
    return [path for path in candidates if path.exists()]


def build_tree(
    repo: pygit2.Repository, tree: Any, changes: dict[tuple[str, ...], tuple[Any, int] | None]
) -> Any:
    """Apply (blob id, mode) or None (delete) at paths below tree; None if it ends up empty.

    Only the trees along the changed paths are rebuilt, so the cost follows the change.
    """
    import pygit2

    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    leaves: dict[str, tuple[Any, int] | None] = {}
    deeper: dict[str, dict[tuple[str, ...], tuple[Any, int] | None]] = {}
    for parts, value in changes.items():
        if len(parts) == 1:
            leaves[parts[0]] = value
        else:
            deeper.setdefault(parts[0], {})[parts[1:]] = value
    for name, value in leaves.items():
        if value is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, value[0], value[1])
    for name, sub_changes in deeper.items():
        existing = tree[name] if tree is not None and name in tree else None
        subtree = repo[existing.id] if existing is not None else None
        if subtree is not None and not isinstance(subtree, pygit2.Tree):
            subtree = None
        new_id = build_tree(repo, subtree, sub_changes)
        if new_id is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, new_id, pygit2.enums.FileMode.TREE)
    if len(builder) == 0:
        return None
    return builder.write()


def commit_files(
    repo: pygit2.Repository,
    changes: dict[str, bytes | None],
    message: str,
    now: datetime,
) -> str:
    """Commit the given paths (bytes to write, None to delete) on the current branch."""
    import pygit2

    check_writable(repo)
    head = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
    blob = int(pygit2.enums.FileMode.BLOB)
    blob_changes = {
        tuple(path.split("/")): (repo.create_blob(data), blob) if data is not None else None
        for path, data in changes.items()
    }
    tree_id = build_tree(repo, head.tree if head else None, blob_changes)
    if tree_id is None:
        tree_id = repo.TreeBuilder().write()
    if head is not None and tree_id == head.tree_id:
        return str(head.id)
    sig = signature(repo, now)
    parents = [head.id] if head is not None else []
    # .git/index first: a process killed between the two steps leaves the change staged, which
    # the next commit completes. The other order left .git/index behind HEAD for good, so that
    # `git status` showed the memory as changed back and a plain `git commit` would revert it.
    try:
        _update_index(repo, changes)
        commit_id = repo.create_commit("HEAD", sig, sig, message, tree_id, parents)
    except pygit2.GitError as error:
        raise RepositoryStateError(
            f"git could not record the commit ({error}): if a git program is running in this"
            " repository, wait for it to finish and try again; otherwise run 'mem doctor'"
        ) from None
    return str(commit_id)


def _update_index(repo: pygit2.Repository, changes: dict[str, bytes | None]) -> None:
    """Bring .git/index in line with the commit for the paths it touched.

    In place when `gitindex` can (the same bytes, without loading the whole index), else
    through libgit2.
    """
    if not _update_index_in_place(repo, changes):
        _update_index_with_libgit2(repo, changes)


def _update_index_with_libgit2(repo: pygit2.Repository, changes: dict[str, bytes | None]) -> None:
    """`_update_index` through libgit2, which loads and writes the whole index."""
    import pygit2

    index = repo.index
    index.read(False)  # loading .git/index costs ~60 ms at 100k: only if it changed on disk
    for path, data in changes.items():
        if data is None:
            if path in index:
                index.remove(path)
        elif (Path(repo.workdir) / path).is_file():
            index.add(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
    index.write()


def _update_index_in_place(repo: pygit2.Repository, changes: dict[str, bytes | None]) -> bool:
    """`_update_index` by `gitindex`; False when it is left to libgit2."""
    import pygit2

    from memstore import gitindex

    try:
        config = repo.config
        # gitindex writes what libgit2 writes with these settings (its defaults) only.
        if (
            _config_flag(config, "core.ignorecase", False)
            or not _config_flag(config, "core.filemode", True)
            or _config_text(config, "core.safecrlf") not in ("", "false", "no", "off", "0", "warn")
        ):
            return False
        workdir = repo.workdir
    except (pygit2.GitError, ValueError):
        return False
    if workdir is None:
        return False
    return gitindex.update(Path(repo.path), Path(workdir), changes)


def _config_flag(config: Any, name: str, default: bool) -> bool:
    try:
        return bool(config.get_bool(name))
    except KeyError:
        return default


def _config_text(config: Any, name: str) -> str:
    try:
        return str(config[name]).strip().lower()
    except KeyError:
        return ""


def unstage(repo: pygit2.Repository, paths: list[str]) -> None:
    """Drop paths from .git/index where they are staged but not in HEAD (an undone add)."""
    import pygit2

    index = repo.index
    index.read(False)
    head = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit).tree
    dropped = False
    for path in paths:
        if path in index and (head is None or path not in head):
            index.remove(path)
            dropped = True
    if dropped:
        index.write()


def pending_changes(repo: pygit2.Repository, prefix: str) -> dict[str, int]:
    """Paths below prefix that differ from HEAD in the work tree, with their status flags."""
    import pygit2

    wanted = prefix.rstrip("/") + "/"
    ignored = pygit2.enums.FileStatus.IGNORED
    return {
        path: flags
        for path, flags in repo.status(untracked_files="all").items()
        if path.startswith(wanted) and not flags & ignored
    }


def committed_blob_id(repo: pygit2.Repository, path: str) -> str | None:
    """The blob id of a path in HEAD, or None if HEAD does not have it."""
    import pygit2

    if repo.head_is_unborn:
        return None
    try:
        return str(repo.head.peel(pygit2.Commit).tree[path].id)
    except KeyError:
        return None


def changed_paths(
    repo: pygit2.Repository, old: str | None, new: str | None, prefix: str
) -> set[str] | None:
    """Paths below prefix whose blobs differ between two commits; None if a commit is missing."""
    found = changed_blobs(repo, old, new, prefix)
    return None if found is None else set(found)


def changed_blobs(
    repo: pygit2.Repository, old: str | None, new: str | None, prefix: str
) -> dict[str, tuple[str | None, str | None]] | None:
    """changed_paths with each path's blob ids in the two commits (tree_blob_changes)."""
    import pygit2

    def tree_at(commit_id: str | None) -> pygit2.Tree | None:
        if commit_id is None:
            return None
        try:
            obj = repo[commit_id].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            raise LookupError(commit_id) from None
        tree = obj.tree
        for part in prefix.split("/"):
            if part not in tree:
                return None
            entry = repo[tree[part].id]
            if not isinstance(entry, pygit2.Tree):
                return None
            tree = entry
        return tree

    try:
        old_tree, new_tree = tree_at(old), tree_at(new)
    except LookupError:
        return None
    return tree_blob_changes(repo, old_tree, new_tree, prefix + "/")


def tree_changes(repo: pygit2.Repository, old: Any, new: Any, base: str = "") -> list[str]:
    """Paths whose entries differ between two trees (content or file mode), sorted, each
    prefixed with base; either tree may be None (nothing there).

    Descends only into subtrees whose ids differ: the cost follows the change, not the store.
    """
    return list(tree_blob_changes(repo, old, new, base))


def tree_blob_changes(
    repo: pygit2.Repository, old: Any, new: Any, base: str = ""
) -> dict[str, tuple[str | None, str | None]]:
    """tree_changes, each path with its blob id in the old and the new tree (None where it is
    not a blob there), in path order: the blobs can be read without looking the paths up."""
    found: dict[str, tuple[str | None, str | None]] = {}
    _blob_changes(repo, old, new, base, found)
    return found


def _blob_changes(
    repo: pygit2.Repository,
    old: Any,
    new: Any,
    base: str,
    found: dict[str, tuple[str | None, str | None]],
) -> None:
    if old is not None and new is not None and old.id == new.id:
        return
    olds = {} if old is None else {entry.name: entry for entry in old}
    news = {} if new is None else {entry.name: entry for entry in new}
    for name in sorted(olds.keys() | news.keys()):
        a, b = olds.get(name), news.get(name)
        if a is not None and b is not None and a.id == b.id and a.filemode == b.filemode:
            continue
        path = f"{base}{name}"
        a_tree = repo[a.id] if a is not None and a.type_str == "tree" else None
        b_tree = repo[b.id] if b is not None and b.type_str == "tree" else None
        if a_tree is not None or b_tree is not None:
            _blob_changes(repo, a_tree, b_tree, path + "/", found)
        a_blob = str(a.id) if a is not None and a.type_str == "blob" else None
        b_blob = str(b.id) if b is not None and b.type_str == "blob" else None
        if (a is not None and a.type_str != "tree") or (b is not None and b.type_str != "tree"):
            found[path] = (a_blob, b_blob)


@dataclass
class LogEntry:
    """One commit in a memory's (or the store's) history."""

    commit: str
    author: str
    email: str
    date: datetime
    message: str


def log_entry(commit: Any) -> LogEntry:
    """A commit as a line of history: its id, author, author's date and message."""
    tz = timezone(timedelta(minutes=commit.author.offset))
    return LogEntry(
        commit=str(commit.id),
        author=commit.author.name,
        email=commit.author.email,
        date=datetime.fromtimestamp(commit.author.time, tz),
        message=commit.message.rstrip("\n"),
    )


def history(
    repo: pygit2.Repository, path: str | list[str] | None = None, limit: int = 0
) -> Iterator[LogEntry]:
    """Commits newest first; with a path (or paths), only those that changed it (no renames)."""
    import pygit2

    if repo.head_is_unborn:
        return
    paths = [path] if isinstance(path, str) else path
    count = 0
    walker = repo.walk(
        repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME
    )
    for commit in walker:
        if paths is not None and not any(_touches(repo, commit, p) for p in paths):
            continue
        yield log_entry(commit)
        count += 1
        if limit and count >= limit:
            return


def removed_files(repo: pygit2.Repository, prefix: str) -> dict[str, bytes]:
    """Files below prefix that history has and HEAD has not, with their last committed bytes.

    Each commit is compared with its parents along the subtrees that differ, so the cost
    follows the number of commits and what they changed, not the size of the store.
    """
    import pygit2

    if repo.head_is_unborn:
        return {}
    head = repo.head.peel(pygit2.Commit)
    found: dict[str, bytes] = {}
    walker = repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
    for commit in walker:
        parents: list[Any] = list(commit.parents) or [None]
        for parent in parents:
            old = str(parent.id) if parent is not None else None
            for path in changed_paths(repo, old, str(commit.id), prefix) or ():
                if path in found or _blob_at(head, path) is not None:
                    continue
                # Newest first: the first commit met that changed it is the one that removed it.
                blob_id = _blob_at(commit, path)
                if blob_id is None and parent is not None:
                    blob_id = _blob_at(parent, path)
                blob = repo[blob_id] if blob_id is not None else None
                if isinstance(blob, pygit2.Blob):
                    found[path] = blob.data
    return found


def _blob_at(commit: Any, path: str) -> Any:
    try:
        return commit.tree[path].id
    except KeyError:
        return None


def _touches(repo: pygit2.Repository, commit: Any, path: str) -> bool:
    here = _blob_at(commit, path)
    if not commit.parents:
        return here is not None
    return any(_blob_at(parent, path) != here for parent in commit.parents)


def read_committed(repo: pygit2.Repository, path: str) -> bytes | None:
    """A file's bytes in HEAD, or None."""
    import pygit2

    if repo.head_is_unborn:
        return None
    try:
        entry = repo.head.peel(pygit2.Commit).tree[path]
    except KeyError:
        return None
    blob = repo[entry.id]
    return blob.data if isinstance(blob, pygit2.Blob) else None
