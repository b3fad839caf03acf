"""git's own wiring for a store: the merge driver, the textconv of encrypted memories, and the
`.gitattributes` lines that point git at them.

pygit2 never runs these; they serve plain `git pull`, `git merge`, `git diff` and `git log -p` in a
store (docs/sync.md, "Plain git users"). `mem merge-driver` and `mem textconv` run the code here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from memstore import atomic
from memstore.memory import is_encrypted

if TYPE_CHECKING:
    import pygit2

ATTRIBUTES_LINE = "memories/** merge=mem"
# git diff and git log -p show encrypted memories decrypted, through `mem textconv`; -text keeps
# line-ending conversion (core.autocrlf) away from the ciphertext.
AGE_ATTRIBUTES_LINE = "*.md.age -text diff=age"


DRIVER_NAME = "memstore memory-aware merge"
# When the driver cannot run (a Python that moved or was removed) or gives up, git's own line
# merge writes both sides with conflict markers; without it git would keep only our side.
DRIVER_FALLBACK = "git merge-file -L ours -L base -L theirs %A %O %B"
STAMP_FILE = "gitsetup"
SET_UP_NOTICE = (
    "set up git's merge driver for memories in .git/config: a plain 'git pull' now merges"
    " them as 'mem sync' does"
)


def _python() -> str:
    import shlex

    return shlex.quote(sys.executable)


def driver_command() -> str:
    """The command git runs as the `mem` merge driver: this installation's Python, by its path,
    and git's line merge with markers when that fails (git runs it through the shell)."""
    return f"{_python()} -P -m memstore merge-driver %O %A %B %P || {DRIVER_FALLBACK}"


def configure_merge_driver(repo: pygit2.Repository) -> None:
    """Point git's `mem` merge driver at `mem merge-driver` in the repository's config."""
    repo.config["merge.mem.name"] = DRIVER_NAME
    repo.config["merge.mem.driver"] = driver_command()


def attributes_text(current: str) -> str | None:
    """.gitattributes with the memories lines added; None when they are there already."""
    missing = [
        line for line in (ATTRIBUTES_LINE, AGE_ATTRIBUTES_LINE) if line not in current.splitlines()
    ]
    if not missing:
        return None
    prefix = current if not current or current.endswith("\n") else current + "\n"
    return prefix + "".join(line + "\n" for line in missing)


def textconv_command() -> str:
    """The command git runs to show an encrypted memory as text (it appends the file)."""
    return f"{_python()} -P -m memstore textconv"


def configure_textconv(repo: pygit2.Repository) -> None:
    """Point git's `age` diff at `mem textconv`; never cache the plaintext in git notes."""
    repo.config["diff.age.textconv"] = textconv_command()
    repo.config["diff.age.cachetextconv"] = False


def wanted_config() -> dict[str, str]:
    """The repository config git needs for memories, as `git config` shows it."""
    return {
        "merge.mem.name": DRIVER_NAME,
        "merge.mem.driver": driver_command(),
        "diff.age.textconv": textconv_command(),
        "diff.age.cachetextconv": "false",
    }


def config_differences(repo: pygit2.Repository) -> dict[str, str | None]:
    """The entries of `wanted_config` that the repository lacks (None) or holds otherwise."""
    found: dict[str, str | None] = {}
    for key, wanted in wanted_config().items():
        try:
            current: str | None = repo.config[key]
        except KeyError:
            current = None
        if current is None or (current.lower() if wanted == "false" else current) != wanted:
            found[key] = current
    return found


def set_up(repo: pygit2.Repository) -> dict[str, str | None]:
    """Write the merge driver and textconv config where it is missing or outdated; returns
    what was changed, with the old values (None: it was missing)."""
    changed = config_differences(repo)
    if any(key.startswith("merge.") for key in changed):
        configure_merge_driver(repo)
    if any(key.startswith("diff.") for key in changed):
        configure_textconv(repo)
    return changed


def ensure_set_up(
    git_dir: Path, open_repo: Callable[[], pygit2.Repository]
) -> dict[str, str | None]:
    """`set_up`, at the cost of one stat and one small read when nothing changed.

    A stamp in `.git/memstore/` holds the config file's size and time and the commands of this
    installation as of the last check; pygit2 is opened only when either differs (a `git clone`
    that never had the config, a `git config` edit, an installation that moved). A repository
    that cannot be written is left as it is: `mem doctor` reports it.
    """
    common = git_dir
    with contextlib.suppress(OSError):
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    config, stamp = common / "config", git_dir / "memstore" / STAMP_FILE
    wanted = "\n".join(wanted_config().values())

    def key() -> str:
        info = config.stat()
        return f"{info.st_mtime_ns} {info.st_size} {info.st_ino}\n{wanted}\n"

    try:
        if stamp.read_text(encoding="utf-8") == key():
            return {}
    except OSError:
        pass
    import pygit2

    try:
        changed = set_up(open_repo())
        stamp.parent.mkdir(mode=0o700, exist_ok=True)
        atomic.write_atomic(stamp, key().encode("utf-8"))
    except (OSError, pygit2.GitError):
        return {}
    return changed


def attributes_file(root: Path) -> dict[str, bytes]:
    """{'.gitattributes': new bytes} when the memories line must be added, else {}."""
    target = root / ".gitattributes"
    try:
        current = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ""
    text = attributes_text(current)
    return {} if text is None else {".gitattributes": text.encode("utf-8")}


def set_up_clone(repo: pygit2.Repository, path: Path) -> None:
    """Configure a fresh clone's merge driver and textconv; wire an older store locally."""
    configure_merge_driver(repo)
    configure_textconv(repo)
    if attributes_file(path):  # an older store: give this clone the driver locally
        info = Path(repo.path) / "info" / "attributes"
        current = info.read_text(encoding="utf-8") if info.exists() else ""
        text = attributes_text(current)
        if text is not None:
            atomic.write_atomic(info, text.encode("utf-8"))


def run_merge_driver(base: Path, ours: Path, theirs: Path, path: str) -> bool:
    """git's merge driver: merge the three files, write the result to ours; True on conflict."""
    from memstore.merge import merge_memory

    if is_encrypted(path):
        return _run_encrypted_merge_driver(base, ours, theirs, path)
    base_data = base.read_bytes()
    outcome = merge_memory(base_data or None, ours.read_bytes(), theirs.read_bytes(), path)
    atomic.write_atomic(ours, outcome.data)
    return outcome.conflict


def _run_encrypted_merge_driver(base: Path, ours: Path, theirs: Path, path: str) -> bool:
    """The merge driver for an encrypted memory: merge the plaintext, write ciphertext to ours.

    Without an identity it fails, ours untouched: git then records a conflict and keeps both
    sides in its index (`git checkout --theirs`), instead of taking ours as the merge.
    """
    from memstore import crypto, keys
    from memstore.crypto import Keyring
    from memstore.errors import IdentityError
    from memstore.merge import merge_memory

    keyring = Keyring()
    if not keyring.available():
        raise IdentityError(
            f"{path}: encrypted, changed on both sides, and no identity here to merge it: run"
            " 'mem sync' where the key is, or settle it with 'git checkout --ours/--theirs'"
        )
    base_data = base.read_bytes()
    base_plain = keyring.decrypt(base_data, path) if base_data else None
    mine = keyring.decrypt(ours.read_bytes(), path)
    other = keyring.decrypt(theirs.read_bytes(), path)
    outcome = merge_memory(base_plain, mine, other, path)
    recipients = keys.recipients_for(Path.cwd(), path)  # git runs drivers at the top of the tree
    atomic.write_atomic(ours, crypto.encrypt(outcome.data, recipients))
    return outcome.conflict
