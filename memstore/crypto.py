"""The encrypted memory format: age ciphertext of the whole memory file, and its error messages.

Format 1 (see docs/format.md): a `<id>.md.age` file is an age v1 file, binary (not armored), of
the exact bytes a plain memory file would hold, header and body. Nothing else is added, so the
reference `age` tool reads and writes it. The version is the age header's: a file that starts
with another `age-encryption.org/` version is refused with a message to upgrade, and an armored
file (made by hand with `age -a`) is read too.

Crypto code never prompts: identities and recipients come in as arguments. `Keyring` holds the
user's identity, loaded on first use, so that stores without encrypted memories never read it.
pyrage is imported inside functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from memstore.errors import DecryptionError, IdentityError, NotARecipientError, RecipientsError
from memstore.memory import is_encrypted
from memstore.text import error_line

if TYPE_CHECKING:
    from memstore.keys import Identity

FORMAT_VERSION = 1
AGE_HEADER = b"age-encryption.org/v1\n"
AGE_HEADER_PREFIX = b"age-encryption.org/"
ARMOR_HEADER = b"-----BEGIN AGE ENCRYPTED FILE-----"


def encrypt(plaintext: bytes, recipients: list[str]) -> bytes:
    """Encrypt bytes to public keys (age or ssh), binary age format."""
    import pyrage

    from memstore.keys import parse_recipient

    if not recipients:
        raise RecipientsError("no recipients to encrypt to: add one with 'mem recipients add KEY'")
    try:
        parsed = [parse_recipient(key) for key in recipients]
    except ValueError as error:
        raise RecipientsError(f"cannot encrypt to a recipient: {error}") from None
    try:
        return bytes(pyrage.encrypt(plaintext, parsed, armored=False))
    except pyrage.EncryptError as error:
        raise RecipientsError(f"cannot encrypt: {error_line(error)}") from None


def looks_encrypted(data: bytes) -> bool:
    """Tell whether bytes start like an age file (binary or armored) of any version."""
    return data.startswith(AGE_HEADER_PREFIX) or data.lstrip().startswith(ARMOR_HEADER)


def decrypt(data: bytes, identity: Identity, path: str) -> bytes:
    """Decrypt an encrypted memory; DecryptionError with one line saying what is wrong."""
    import pyrage

    if not looks_encrypted(data):
        what = "empty" if not data else "not age ciphertext"
        raise DecryptionError(
            f"{path}: {what}: restore it from git history ('mem log {path}'), or move it out"
            " of memories/"
        )
    if data.startswith(AGE_HEADER_PREFIX) and not data.startswith(AGE_HEADER):
        version = data.split(b"\n", 1)[0].decode("ascii", "replace")
        raise DecryptionError(
            f"{path}: written in a newer age format ({version}): upgrade memstore to read it"
        )
    try:
        return bytes(pyrage.decrypt(data, identity.secrets))
    except pyrage.DecryptError as error:
        reason = error_line(error)
        if "no matching keys" in reason.lower():
            raise NotARecipientError(
                f"{path}: not encrypted to your identity ({identity.path}): ask someone who"
                " can read it to add your public key ('mem recipients add KEY') and run"
                " 'mem rekey'"
            ) from None
        raise DecryptionError(
            f"{path}: damaged or truncated ciphertext ({reason}): restore it from git"
            f" history ('mem log {path}')"
        ) from None


class Keyring:
    """The user's identity for one store session: read once, on the first encrypted file."""

    # A search decrypts each encrypted hit twice (its snippet, then its title and tags).
    MEMO_SIZE = 64

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._identity: Identity | None = None
        self._loaded = False
        self._memo: dict[tuple[str, bytes], bytes] = {}

    @property
    def identity(self) -> Identity | None:
        """The identity, or None when there is none (IdentityError when it is unusable)."""
        if not self._loaded:
            from memstore.keys import load_identity

            self._identity = load_identity(self._path)
            self._loaded = True
        return self._identity

    def available(self) -> bool:
        """Tell whether an identity is there to decrypt with."""
        return self.identity is not None

    def fingerprint(self) -> str:
        """A short digest of the identity's public keys ('' with none): tells identities apart."""
        import hashlib

        identity = self.identity
        if identity is None:
            return ""
        keys = "\n".join(sorted(identity.public)).encode()
        return hashlib.sha256(keys).hexdigest()[:16]

    def forget(self) -> None:
        """Read the identity again on next use (after `mem key init`)."""
        self._loaded = False
        self._identity = None
        self._memo.clear()

    def decrypt(self, data: bytes, path: str) -> bytes:
        """Decrypt with the identity; IdentityError when there is none."""
        identity = self.identity
        if identity is None:
            raise no_identity(path)
        key = (path, data)
        if key not in self._memo:
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = decrypt(data, identity, path)
        return self._memo[key]

    def try_decrypt(self, data: bytes, path: str) -> bytes | None:
        """Decrypt, or None when there is no identity (errors of a bad file still raise)."""
        return None if self.identity is None else self.decrypt(data, path)

    # The one way to read a memory file, plain or encrypted (the file name says which).

    def plain(self, data: bytes, path: str) -> bytes:
        """A memory file's text: its bytes, decrypted when it is encrypted (IdentityError when
        there is no identity)."""
        return self.decrypt(data, path) if is_encrypted(path) else data

    def readable(self, data: bytes, path: str) -> bytes | None:
        """A memory file's text, or None when it is encrypted and there is no identity (errors
        of a bad file still raise)."""
        return self.try_decrypt(data, path) if is_encrypted(path) else data


def no_identity(path: str) -> IdentityError:
    """The error for an encrypted memory met without an identity."""
    return IdentityError(
        f"{path} is encrypted and there is no identity to read it: run 'mem key init', or set"
        " MEM_IDENTITY to your age or ssh key file"
    )
