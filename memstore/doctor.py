"""`mem doctor`: find what is wrong with a store, say how to fix each thing, repair what is safe.

Every check returns findings: a problem and its fix, and a repair function when the fix is safe
to make without asking (the index is a cache and can always be rebuilt; leftovers of a killed
process can go once nobody is using them). Problems make `mem doctor` exit with 1; notes (such
as commits not pushed yet) are worth knowing but are not wrong.

Areas checked: the repository (a merge in progress, a detached or broken HEAD, git lock files
left behind, `.git/index` out of step with HEAD, the remote and unpushed commits), the search
index (missing, out of date, damaged, not matching the files, folders and temporary files left by
interrupted work, locks held), the memory files (everything `mem check` reports, temporary files
of interrupted writes, files the index skips), and keys (the identity present, private and
readable, recipients files that parse, encrypted memories the identity can decrypt).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import atomic
from memstore.errors import MemstoreError
from memstore.locking import FileLock
from memstore.memory import MEMORY_DIR, is_memory_name

if TYPE_CHECKING:
    import pygit2

    from memstore.check import Checked
    from memstore.core import Core
    from memstore.indexaudit import SegmentAudit

# Leftovers younger than this may belong to a process that is still running.
LEFTOVER_AGE = 60.0
PROBLEM = "problem"
NOTE = "note"


@dataclass
class Finding:
    """One thing doctor found: what is wrong, what to do, and whether --fix repaired it."""

    area: str
    problem: str
    fix: str = ""
    severity: str = PROBLEM
    repair: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    fixed: bool = False

    @property
    def fixable(self) -> bool:
        return self.repair is not None

    def __str__(self) -> str:
        area = self.area if self.severity == PROBLEM else f"{self.area} ({self.severity})"
        text = f"{area}: {self.problem}"
        if self.fixed:
            return f"{text}: fixed"
        return f"{text}: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "severity": self.severity,
            "problem": self.problem,
            "fix": self.fix,
            "fixable": self.fixable,
            "fixed": self.fixed,
        }


def doctor(store: Core, fix: bool = False) -> list[Finding]:
    """Check the store; with fix, repair what is safe. Problems first, then notes."""
    from memstore.check import check_store
    from memstore.indexaudit import SegmentAudit

    findings: list[Finding] = []
    findings += check_repository(store)
    checked = check_store(store)
    audit = SegmentAudit(store.index.home)
    # Before anything catches the index up (files' uncommitted changes do), which would rebuild
    # a damaged one without a word.
    health = store.index.health(audit)
    findings += check_files(store, checked, index_usable=health is None)
    findings += check_index(store, findings, checked, audit, health)
    audit.save()
    findings += check_keys(store, checked)
    if fix:
        for finding in findings:
            if finding.repair is None:
                continue
            try:
                finding.repair()
            except (OSError, TimeoutError, MemstoreError) as error:
                finding.fix = f"{finding.fix} (--fix failed: {error})"
            else:
                finding.fixed = True
    return sorted(findings, key=lambda f: f.severity != PROBLEM)


def has_problems(findings: list[Finding]) -> bool:
    """Tell whether anything is still wrong: a problem that was not fixed."""
    return any(f.severity == PROBLEM and not f.fixed for f in findings)


# The repository


def check_repository(store: Core) -> list[Finding]:
    """Merge in progress, detached or broken HEAD, git lock files, .git/index, the remote."""
    import pygit2

    try:
        repo = store.repo
    except MemstoreError as error:
        return [Finding("repository", str(error), "run 'git status' in the store to see why")]
    findings: list[Finding] = []
    if repo.state() != pygit2.enums.RepositoryState.NONE:
        findings.append(
            Finding(
                "repository",
                "a merge, rebase or cherry-pick is in progress, so mem cannot commit",
                "finish it, or abort it with git (for example 'git merge --abort')",
            )
        )
    if repo.head_is_unborn:
        findings.append(
            Finding("repository", "the current branch has no commit", "run 'mem init' again")
        )
        return findings
    try:
        head = repo.head.peel(pygit2.Commit)
        _ = head.tree
    except (pygit2.GitError, KeyError, ValueError) as error:
        findings.append(
            Finding(
                "repository",
                f"HEAD cannot be read ({error})",
                "the repository is damaged: restore it from a clone or a backup",
            )
        )
        return findings
    if repo.head_is_detached:
        findings.append(
            Finding(
                "repository",
                "HEAD is detached, so mem cannot commit",
                "check out a branch (for example 'git switch main')",
            )
        )
    findings += _git_locks(store, repo)
    findings += _git_setup(store, repo)
    findings += _index_behind_head(store, repo)
    if not repo.head_is_detached:  # no branch, so nothing to compare with its remote
        findings += _remote(repo)
    return findings


def _git_setup(store: Core, repo: pygit2.Repository) -> list[Finding]:
    """git's merge driver and textconv: missing (a plain `git clone`) or another installation's."""
    from memstore import gitsetup

    differences = gitsetup.config_differences(repo)
    if not differences:
        return []
    if any(key.startswith("merge.") and old is None for key, old in differences.items()):
        problem = (
            "git's merge driver for memories is not set up: a plain 'git pull' would write"
            " conflict markers into memories"
        )
    else:
        problem = (
            "git's merge driver or textconv is not this installation's"
            f" ({_shown(sorted(differences))}): a plain 'git pull' could not run it"
        )

    def repair() -> None:
        store.set_up_git()

    return [
        Finding(
            "repository",
            problem,
            "run 'mem doctor --fix' (any other mem command sets it up too)",
            repair=repair,
        )
    ]


def _git_locks(store: Core, repo: pygit2.Repository) -> list[Finding]:
    from memstore.core import COMMIT_MARKER
    from memstore.gitrepo import git_lock_files

    findings = []
    marker = store.git_dir / "memstore" / COMMIT_MARKER
    for lock in git_lock_files(repo):
        age = atomic.files_now_ns(store.index.home) / 1e9 - lock.stat().st_mtime
        rel = os.path.relpath(lock, store.root)
        finding = Finding(
            "repository",
            f"git's lock file {rel} exists ({age:.0f} s old), so mem cannot commit",
            "if no git program is running in this repository, delete it",
        )
        if _left_by_killed_commit(store, lock, marker):
            finding.problem += "; a mem process was killed while committing"
            finding.fix = "the next mem write removes it, or 'mem doctor --fix'"
            finding.repair = _remove_git_lock(store, lock, marker)
        elif age >= LEFTOVER_AGE and _git_running_in(store.root) is False:
            finding.fix += "; 'mem doctor --fix' does"
            finding.repair = _remove_git_lock(store, lock)
        findings.append(finding)
    return findings


def _left_by_killed_commit(store: Core, lock: Path, marker: Path) -> bool:
    """The lock was made while a mem commit ran, and that mem process is gone (see Core)."""
    try:
        started = marker.stat().st_mtime
        made = lock.stat().st_mtime
    except FileNotFoundError:
        return False
    return started - 1 <= made <= started + 30 and _lock_holder(_write_lock(store).path) is None


def _remove_git_lock(store: Core, lock: Path, marker: Path | None = None) -> Callable[[], None]:
    def repair() -> None:
        with _write_lock(store).hold(5.0):  # no mem process is committing
            if (marker is not None and marker.exists()) or _git_running_in(store.root) is False:
                lock.unlink(missing_ok=True)

    return repair


def _git_running_in(root: Path) -> bool | None:
    """Whether a git program runs in the repository at root (its working folder is in it);
    None when it cannot be told (no /proc). git programs of other repositories do not count."""
    proc = Path("/proc")
    if not (proc / "self").is_dir():
        return None
    inside = os.path.realpath(root)
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() not in {"git", "git-remote-http"}:
                    continue
                folder = os.readlink(entry / "cwd")
            except FileNotFoundError:  # it ended
                continue
            except OSError:  # another user's git: it may be working here
                return True
            if folder == inside or folder.startswith(inside + os.sep):
                return True
    return False


def _index_behind_head(store: Core, repo: pygit2.Repository) -> list[Finding]:
    """Memory files whose .git/index entry is not HEAD's although the file on disk is.

    A process killed between writing a commit and updating .git/index leaves this behind; git
    then shows the memory as changed back, and a plain `git commit` would undo it.
    """
    import pygit2

    if repo.state() != pygit2.enums.RepositoryState.NONE or repo.head_is_detached:
        return []
    stale = stale_index_entries(store, repo)
    if not stale:
        return []

    def repair() -> None:
        with _write_lock(store).hold(5.0):
            index = repo.index
            index.read()
            for path in stale_index_entries(store, repo):
                if (store.root / path).is_file():
                    index.add(path)
                elif path in index:
                    index.remove(path)
            index.write()

    return [
        Finding(
            "repository",
            f"{_count(len(stale), 'memory file')} staged in .git/index differently from HEAD"
            f" although the files match HEAD ({_shown(stale)}); 'git status' shows them changed",
            "run 'mem doctor --fix' to stage them as committed (or 'git reset -- memories')",
            repair=repair,
        )
    ]


def stale_index_entries(store: Core, repo: pygit2.Repository) -> list[str]:
    """Paths under memories/ staged differently from HEAD while the work tree matches HEAD."""
    import pygit2

    from memstore.index import blob_id

    tree = repo.head.peel(pygit2.Commit).tree
    index = repo.index
    index.read(False)  # only if it changed on disk since repo.index loaded it
    # libgit2 compares the two (a walk of every entry here took seconds at 100,000 memories).
    differ: set[str] = set()
    for delta in index.diff_to_tree(tree).deltas:
        differ |= {delta.old_file.path, delta.new_file.path}
    head: dict[str, str] = {}
    for path in differ:
        if path.startswith(MEMORY_DIR + "/"):
            with contextlib.suppress(KeyError):
                head[path] = str(tree[path].id)
    stale = []
    for path in sorted(p for p in differ if p.startswith(MEMORY_DIR + "/")):
        full = store.root / path
        try:
            on_disk = None if full.is_symlink() else blob_id(full.read_bytes())
        except OSError:
            on_disk = None
        if on_disk == head.get(path):
            stale.append(path)
    return stale


def _remote(repo: pygit2.Repository) -> list[Finding]:
    """The branch's upstream: a remote that is gone, commits not pushed or not merged yet."""
    import pygit2

    branch = repo.head.shorthand
    try:
        remote_name = repo.config[f"branch.{branch}.remote"]
    except (KeyError, pygit2.GitError):
        remote_name = None
    remotes = {str(remote.name) for remote in repo.remotes}
    if remote_name is None:
        if not remotes:
            return [
                Finding(
                    "repository",
                    "no git remote: this store is kept on this machine only",
                    "to back it up or share it, add one ('mem remote add origin URL')",
                    severity=NOTE,
                )
            ]
        # mem sync sets no upstream: it syncs with origin, or the only remote there is.
        remote_name = (
            "origin" if "origin" in remotes else (min(remotes) if len(remotes) == 1 else None)
        )
        if remote_name is None:
            return []
    if remote_name != "." and remote_name not in remotes:
        return [
            Finding(
                "repository",
                f"branch {branch} follows the remote {remote_name!r}, which does not exist",
                f"add it ('git remote add {remote_name} URL') or stop following it"
                " ('git branch --unset-upstream')",
            )
        ]
    upstream = repo.branches.local[branch].upstream if branch in repo.branches.local else None
    if upstream is None:
        upstream = repo.branches.remote.get(f"{remote_name}/{branch}")
    if upstream is None:
        return []
    ahead, behind = repo.ahead_behind(repo.head.target, upstream.resolve().target)
    findings = []
    if ahead:
        findings.append(
            Finding(
                "repository",
                f"{_count(ahead, 'commit')} not pushed to {upstream.shorthand}",
                "push them ('mem sync')",
                severity=NOTE,
            )
        )
    if behind:
        findings.append(
            Finding(
                "repository",
                f"{_count(behind, 'commit')} on {upstream.shorthand} not merged here",
                "merge them ('mem sync')",
                severity=NOTE,
            )
        )
    return findings


# The memory files


def check_files(
    store: Core, checked: Checked | None = None, index_usable: bool = True
) -> list[Finding]:
    """What `mem check` reports, with temporary files of interrupted writes made removable.

    Uncommitted changes come from the index's pending paths when it is usable, else from git.
    """
    findings: list[Finding] = []
    from memstore.check import check_store

    checked = checked or check_store(store)
    for problem in checked.problems:
        if atomic.is_temporary(Path(problem.path).name):
            continue
        findings.append(Finding("files", str(problem)))
    temps = sorted(store.root / path for path in checked.temporary)
    temps = [p for p in temps if _is_temp_file(p)]
    now = atomic.files_now_ns(store.index.home) / 1e9  # the file system's clock, as the files'
    old = [p for p in temps if now - p.lstat().st_mtime >= LEFTOVER_AGE]
    young = [p for p in temps if p not in old]
    if old:
        findings.append(
            Finding(
                "files",
                f"{_count(len(old), 'temporary file')} left by interrupted writes"
                f" ({_shown(p.relative_to(store.root).as_posix() for p in old)})",
                "run 'mem doctor --fix' to delete them (searches ignore them)",
                repair=_remove_temp_files(store, old),
            )
        )
    if young:
        findings.append(
            Finding(
                "files",
                f"{_count(len(young), 'temporary file')} less than a minute old"
                f" ({_shown(p.relative_to(store.root).as_posix() for p in young)})",
                "a write may be in progress; if they stay, run 'mem doctor --fix' later",
                severity=NOTE,
            )
        )
    pending = _uncommitted(store, index_usable)
    if pending:
        findings.append(
            Finding(
                "files",
                f"{_count(len(pending), 'memory file')} changed outside mem not committed yet"
                f" ({_shown(pending)})",
                "the next 'mem add', 'mem edit' or 'mem rm' commits them",
                severity=NOTE,
            )
        )
    return findings


def _is_temp_file(path: Path) -> bool:
    return atomic.is_temporary(path.name) and path.is_file() and not path.is_symlink()


def _remove_temp_files(store: Core, paths: list[Path]) -> Callable[[], None]:
    def repair() -> None:
        with _write_lock(store).hold(5.0):  # no write is in progress
            for path in paths:
                path.unlink(missing_ok=True)

    return repair


def _uncommitted(store: Core, index_usable: bool) -> list[str]:
    from memstore import gitrepo
    from memstore.sync import changed_memories

    try:
        # The index's pending paths cost what changed, where git status reads every file; but a
        # damaged index would be rebuilt without a word on the way, so then git is asked.
        if index_usable:
            changed: Iterable[str] = changed_memories(store)
        else:
            changed = gitrepo.pending_changes(store.repo, MEMORY_DIR)
    except MemstoreError:
        return []
    return sorted(
        path
        for path in changed
        if is_memory_name(path) and not any(p.startswith(".") for p in path.split("/"))
    )


# The search index


def check_index(
    store: Core,
    earlier: list[Finding],
    checked: Checked | None = None,
    audit: SegmentAudit | None = None,
    health: str | None = "",
) -> list[Finding]:
    """Missing, out of date, damaged or not matching the files; leftovers; locks in use.

    health is what index.health() said, when it was asked already ("" when not).
    """
    index = store.index
    findings: list[Finding] = []
    locks = (("write.lock", "writing to the store"), ("index.lock", "updating the index"))
    for name, what in locks:
        holder = _lock_holder(index.home / name)
        if holder is not None:
            findings.append(
                Finding(
                    "index",
                    f"another mem process{holder} is {what}",
                    "run 'mem doctor' again when it has finished",
                    severity=NOTE,
                )
            )
    reason = index.health(audit) if health == "" else health
    if reason is not None:
        findings.append(
            Finding(
                "index",
                f"the search index is {reason}",
                "run 'mem doctor --fix' or 'mem reindex' to rebuild it (a search would too)",
                repair=store.index.rebuild,
            )
        )
    else:
        findings += _index_matches_files(store, earlier, checked, audit)
    try:
        leftovers = index.leftovers()
    except (TimeoutError, OSError):  # busy, or a store that cannot be written
        leftovers = []
    if leftovers:
        findings.append(
            Finding(
                "index",
                f"{_count(len(leftovers), 'index folder or temporary file', 'leftovers')}"
                " in .git/memstore from interrupted index updates"
                f" ({_shown(p.name for p in leftovers)})",
                "run 'mem doctor --fix' to remove them",
                repair=lambda: _remove_leftovers(store),
            )
        )
    return findings


def _remove_leftovers(store: Core) -> None:
    store.index.remove_leftovers(min_age=LEFTOVER_AGE)


def _lock_holder(path: Path) -> str | None:
    """' (pid N)' when another process holds the lock file, '' if its pid is unknown, or None."""
    if not path.exists():
        return None
    try:
        with FileLock(path).hold(0, shared=True):  # shared: works where it cannot be written
            return None
    except TimeoutError:
        try:
            pid = path.read_text().strip()
        except OSError:
            pid = ""
        return f" (pid {pid})" if pid.isdigit() else ""


def _index_matches_files(
    store: Core,
    earlier: list[Finding],
    checked: Checked | None = None,
    audit: SegmentAudit | None = None,
) -> list[Finding]:
    """After catching up, the index must hold exactly the readable memory files, as they are."""
    from memstore.check import check_store

    try:
        indexed = store.index.indexed_blobs(audit)
    except MemstoreError as error:
        return [Finding("index", str(error), "run 'mem doctor' again", severity=NOTE)]
    if store.index.read_only is not None:  # it could not catch up: comparing says nothing new
        return [
            Finding(
                "index",
                f"the store cannot be written ({store.index.read_only}), so the search index"
                " could not be brought up to date; searches use it as it is",
                "to update it, run any mem command where the store can be written",
                severity=NOTE,
            )
        ]
    # The files the index reads: .md under memories/, no dot names, no symbolic links; those it
    # skips (they do not parse) are reported with the files (or with the keys).
    checked = checked or check_store(store)
    expected = {
        path: blob for path, blob in checked.blobs.items() if blob is not None and "/." not in path
    }
    findings: list[Finding] = []
    if expected != indexed:  # compared in one go; what differs is worked out only then
        missing = expected.keys() - indexed.keys()
        extra = indexed.keys() - expected.keys()
        outdated = {p for p in expected.keys() & indexed.keys() if expected[p] != indexed[p]}
        parts = [
            f"{len(group)} {label}"
            for group, label in (
                (missing, "files not in it"),
                (extra, "entries for files that are gone"),
                (outdated, "entries older than their files"),
            )
            if group
        ]
        findings.append(
            Finding(
                "index",
                "the search index does not match the files (" + ", ".join(parts) + ")",
                "run 'mem doctor --fix' or 'mem reindex' to rebuild it",
                repair=store.index.rebuild,
            )
        )
    reported = {str(f) for f in earlier}
    for path, why in sorted(store.index.skipped().items()):
        if not any(line.startswith(f"files: {path}:") for line in reported):
            findings.append(Finding("files", f"{path}: skipped by the search index, {why}"))
    return findings


# Keys


def check_keys(store: Core, checked: Checked | None = None) -> list[Finding]:
    """The identity usable, recipients files parsing, encrypted memories it can decrypt."""
    from memstore import keys
    from memstore.errors import DecryptionError, NotARecipientError

    findings: list[Finding] = []
    encrypted = checked.encrypted if checked else keys.encrypted_files(store.root)
    recipients_files = (
        keys.recipients_files(store.root)
        if checked is None
        else [p for p in [store.root / keys.RECIPIENTS_FILE] if p.is_file()]
        + [store.root / path for path in checked.recipients]
    )
    identity = None
    try:
        identity = store.keyring.identity
    except MemstoreError as error:
        findings.append(Finding("keys", str(error)))
    else:
        if identity is None and encrypted:
            # Not a fault: a teammate may share a store whose encrypted memories are not theirs.
            findings.append(
                Finding(
                    "keys",
                    f"{_count(len(encrypted), 'encrypted memory', 'encrypted memories')} you"
                    f" cannot read: no identity ({keys.identity_path()} does not exist)",
                    "if you should read them, run 'mem key init' (or set MEM_IDENTITY to your"
                    " age or ssh key file) and ask a reader to add your public key"
                    " ('mem recipients add KEY', then 'mem rekey')",
                    severity=NOTE,
                )
            )
    listed: list[str] = []
    for path in recipients_files:
        try:
            listed += keys.read_recipients(path, path.relative_to(store.root).as_posix())
        except MemstoreError as error:
            findings.append(Finding("keys", str(error)))
    if encrypted and not recipients_files:
        findings.append(
            Finding(
                "keys",
                "encrypted memories but no .age-recipients file: edits cannot be encrypted",
                "run 'mem recipients add KEY' with the public key of each reader",
            )
        )
    if identity is not None:
        foreign: list[str] = []
        damaged: list[str] = []
        for name in encrypted:
            try:
                store.keyring.decrypt((store.root / name).read_bytes(), name)
            except NotARecipientError:
                foreign.append(name)
            except (OSError, DecryptionError):
                damaged.append(name)
        if damaged:
            findings.append(
                Finding(
                    "keys",
                    f"{_count(len(damaged), 'encrypted memory', 'encrypted memories')} cannot"
                    f" be decrypted: damaged or not age ({_shown(damaged)})",
                    "'mem check' says why for each; restore them from git history ('mem log')",
                )
            )
        if foreign:
            findings.append(
                Finding(
                    "keys",
                    f"{_count(len(foreign), 'encrypted memory', 'encrypted memories')} not"
                    f" encrypted to {identity.path} ({_shown(foreign)})",
                    "if you should read them, someone who can adds your key"
                    " ('mem recipients add') and runs 'mem rekey'",
                    severity=NOTE,
                )
            )
        findings += _scratch_copies(store, encrypted)
        if listed and identity.public and not set(identity.public) & set(listed):
            findings.append(
                Finding(
                    "keys",
                    "your public key is in no recipients file: you cannot read new encrypted"
                    " memories",
                    f"run 'mem recipients add {identity.public[0]}'",
                    severity=NOTE,
                )
            )
    return findings


def _scratch_copies(store: Core, encrypted: list[str]) -> list[Finding]:
    """Decrypted copies that a `mem edit` killed before it finished left in /dev/shm."""
    from memstore.memory import ENCRYPTED_SUFFIX

    ids = {path.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX) for path in encrypted}
    shm = Path("/dev/shm")
    try:
        entries = list(shm.glob("mem-*.md")) if shm.is_dir() else []
    except OSError:
        return []
    now = atomic.files_now_ns(store.index.home) / 1e9
    left = [
        p
        for p in entries
        if p.name.split("-")[1] in ids
        and p.is_file()
        and not p.is_symlink()
        and p.stat().st_uid == os.getuid()
        and now - p.stat().st_mtime >= LEFTOVER_AGE
    ]
    if not left:
        return []

    def repair() -> None:
        for path in left:
            path.unlink(missing_ok=True)

    return [
        Finding(
            "keys",
            f"{_count(len(left), 'decrypted copy', 'decrypted copies')} of encrypted memories"
            f" left in {shm} by an interrupted 'mem edit' ({_shown(p.name for p in left)})",
            "copy back any edit you want to keep, then run 'mem doctor --fix' to delete them",
            repair=repair,
        )
    ]


def _count(number: int, word: str, plural: str | None = None) -> str:
    return f"{number} {word if number == 1 else plural or word + 's'}"


def _shown(names: Iterable[str], most: int = 3) -> str:
    items = list(names)
    return ", ".join(items[:most]) + (", …" if len(items) > most else "")


def _write_lock(store: Core) -> FileLock:
    """The store's write lock, the one every mem write holds (see Core)."""
    return FileLock(store.git_dir / "memstore" / "write.lock")
