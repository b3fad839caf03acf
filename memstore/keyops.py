"""Key operations on a store: `mem key init`, `mem recipients add` and `remove`, `mem rekey`.

The identity, recipients files and the encryption policy they work with are in `keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memstore import atomic
from memstore.errors import RecipientsError
from memstore.keys import (
    RECIPIENTS_FILE,
    SSH_KEY_TYPES,
    KeyReport,
    create_or_adopt,
    encrypted_files,
    parse_recipient,
    parse_recipients,
    recipients_files,
    recipients_for,
    with_recipient,
    without_recipient,
    write_recipients,
)

if TYPE_CHECKING:
    from memstore.core import Core


def init_key(store: Core) -> KeyReport:
    """Create or adopt the identity, set up git's diff of encrypted files, add the key if none."""
    from memstore import gitrepo, gitsetup

    identity, created = create_or_adopt(store.clock())
    store.keyring.forget()
    gitsetup.configure_textconv(store.repo)
    report = KeyReport(str(identity.path), identity.public, created)
    files: dict[str, bytes | None] = dict(gitsetup.attributes_file(store.root))
    if not recipients_files(store.root) and identity.public:
        text = "# Public keys that can read this store's encrypted memories (docs/encryption.md)\n"
        files[RECIPIENTS_FILE] = (text + "".join(f"{k}\n" for k in identity.public)).encode()
        report.recipients_file = RECIPIENTS_FILE
    if files:
        with store.writing():
            for name, data in files.items():
                atomic.write_atomic(store.root / name, data or b"")
            message = "add recipients file" if report.recipients_file else "diff encrypted files"
            gitrepo.commit_files(store.repo, files, message, store.clock())
    return report


def _recipients_target(root: Path, folder: str | None) -> Path:
    from memstore.errors import InvalidInputError

    if not folder:
        return root / RECIPIENTS_FILE
    target = (root / folder).resolve()
    if target != root and root not in target.parents:
        raise InvalidInputError(f"{folder} is outside the store: give a folder inside {root}")
    if ".git" in target.relative_to(root).parts:
        raise InvalidInputError(f"{folder} is inside .git: give a folder of the store")
    return target / RECIPIENTS_FILE


def change_recipients(store: Core, key: str, folder: str | None, add: bool) -> bool:
    """Add or remove a key in a folder's recipients file and commit; False when nothing to do."""
    from memstore import gitrepo

    key = " ".join(key.split()[:2]) if key.startswith(SSH_KEY_TYPES) else key.strip()
    try:
        parse_recipient(key)
    except ValueError as error:
        raise RecipientsError(f"{key[:40]!r}: {error}: give an age1… or ssh public key") from None
    target = _recipients_target(store.root, folder)
    shown = target.relative_to(store.root).as_posix()
    with store.writing():
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        text = with_recipient(current, key) if add else without_recipient(current, key)
        if text is None:
            return False
        if not add and not parse_recipients(text, shown):
            raise RecipientsError(
                f"{key[:40]} is the last key in {shown}: add another key first, or the"
                " memories it covers could not be encrypted again"
            )
        parse_recipients(current, shown)  # refuse to build on a file with a bad line
        target.parent.mkdir(parents=True, exist_ok=True)
        write_recipients(target, text)
        verb = "add recipient to" if add else "remove recipient from"
        gitrepo.commit_files(store.repo, {shown: text.encode()}, f"{verb} {shown}", store.clock())
    return True


def rekey(store: Core, folder: str | None = None) -> list[str]:
    """Re-encrypt every encrypted memory (below folder) to its current recipients, one commit."""
    from memstore import crypto
    from memstore.errors import DecryptionError

    done: list[str] = []
    with store.writing() as session:
        for path in encrypted_files(store.root, folder):
            data = (store.root / path).read_bytes()
            try:
                plain = store.keyring.decrypt(data, path)
            except DecryptionError as error:
                store.reporter.warning(f"{error} (not re-encrypted)")
                continue
            session.write(path, crypto.encrypt(plain, recipients_for(store.root, path)))
            done.append(path)
        if done:
            noun = "memory" if len(done) == 1 else "memories"
            session.commit(f"rekey {len(done)} encrypted {noun}")
    return done
