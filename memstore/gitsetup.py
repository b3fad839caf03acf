"""git's own wiring for a store: the merge driver, the textconv of encrypted memories, and the
`.gitattributes` lines that point git at them.

pygit2 never runs these; they serve plain `git pull`, `git merge`, `git diff` and `git log -p` in a
store (docs/sync.md, "Plain git users"). `mem merge-driver` and `mem textconv` run the code here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from memstore import atomic
from memstore.memory import is_encrypted
from memstore.merge import merge_memory

if TYPE_CHECKING:
    import pygit2

ATTRIBUTES_LINE = "memories/** merge=mem"
# git diff and git log -p show encrypted memories decrypted, through `mem textconv`; -text keeps
# line-ending conversion (core.autocrlf) away from the ciphertext.
AGE_ATTRIBUTES_LINE = "*.md.age -text diff=age"


def driver_command() -> str:
    """The command git runs as the `mem` merge driver."""
    if shutil.which("mem"):
        return "mem merge-driver %O %A %B %P"
    return f'"{sys.executable}" -m memstore merge-driver %O %A %B %P'


def configure_merge_driver(repo: pygit2.Repository) -> None:
    """Point git's `mem` merge driver at `mem merge-driver` in the repository's config."""
    repo.config["merge.mem.name"] = "memstore memory-aware merge"
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
    if shutil.which("mem"):
        return "mem textconv"
    return f'"{sys.executable}" -m memstore textconv'


def configure_textconv(repo: pygit2.Repository) -> None:
    """Point git's `age` diff at `mem textconv`; never cache the plaintext in git notes."""
    repo.config["diff.age.textconv"] = textconv_command()
    repo.config["diff.age.cachetextconv"] = False


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
    if is_encrypted(path):
        return _run_encrypted_merge_driver(base, ours, theirs, path)
    base_data = base.read_bytes()
    outcome = merge_memory(base_data or None, ours.read_bytes(), theirs.read_bytes(), path)
    atomic.write_atomic(ours, outcome.data)
    return outcome.conflict


def _run_encrypted_merge_driver(base: Path, ours: Path, theirs: Path, path: str) -> bool:
    """The merge driver for an encrypted memory: merge the plaintext, write ciphertext to ours.

    Without an identity git is told of a conflict and ours is left as it is (git keeps theirs).
    """
    from memstore import crypto, keys
    from memstore.crypto import Keyring

    keyring = Keyring()
    if not keyring.available():
        return True
    base_data = base.read_bytes()
    base_plain = keyring.decrypt(base_data, path) if base_data else None
    mine = keyring.decrypt(ours.read_bytes(), path)
    other = keyring.decrypt(theirs.read_bytes(), path)
    outcome = merge_memory(base_plain, mine, other, path)
    recipients = keys.recipients_for(Path.cwd(), path)  # git runs drivers at the top of the tree
    atomic.write_atomic(ours, crypto.encrypt(outcome.data, recipients))
    return outcome.conflict
