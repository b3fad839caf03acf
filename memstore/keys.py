"""Keys: the user's age identity, and the recipients files that say who can read which memories.

The identity is an age x25519 key file, as `age-keygen` writes it, in the user's config folder
(`$XDG_CONFIG_HOME/memstore/identity.txt`, mode 0600), or any age identity file or unencrypted
ssh private key named by `MEM_IDENTITY`. It never leaves the machine.

Recipients live in the store, as in passage: a `.age-recipients` file (age and ssh public keys,
one per line, `#` comments and blank lines allowed) in a folder applies to the encrypted memories
below it, unless a nearer folder has its own. The store's root holds the usual one.

pyrage is imported inside the functions that need it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore import atomic
from memstore.errors import IdentityError, RecipientsError
from memstore.text import error_line

if TYPE_CHECKING:
    from memstore.memory import Memory

IDENTITY_ENV = "MEM_IDENTITY"
RECIPIENTS_FILE = ".age-recipients"
AGE_SECRET_PREFIX = "AGE-SECRET-KEY-1"
SSH_PRIVATE_MARKERS = (b"-----BEGIN OPENSSH PRIVATE KEY-----", b"-----BEGIN RSA PRIVATE KEY-----")
SSH_KEY_TYPES = ("ssh-ed25519 ", "ssh-rsa ")


@dataclass
class Identity:
    """An identity file, read: what decrypts, and the public keys that go with it."""

    path: Path
    secrets: list[Any] = field(repr=False)
    public: list[str]


def config_home() -> Path:
    """The user's config folder (XDG_CONFIG_HOME honoured)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg else Path.home() / ".config"


def default_identity_path() -> Path:
    """Where `mem key init` creates the identity."""
    return config_home() / "memstore" / "identity.txt"


def identity_path() -> Path:
    """The identity in use: MEM_IDENTITY, or the default one."""
    named = os.environ.get(IDENTITY_ENV)
    return Path(named).expanduser() if named else default_identity_path()


def load_identity(path: Path | None = None) -> Identity | None:
    """Read the identity; None when there is none (and MEM_IDENTITY names nothing missing)."""
    named = path is None and bool(os.environ.get(IDENTITY_ENV))
    path = path or identity_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        if named:
            raise IdentityError(
                f"{IDENTITY_ENV} names {path}, which does not exist: fix the path or unset it"
            ) from None
        return None
    except OSError as error:
        raise IdentityError(f"cannot read the identity {path}: {error.strerror or error}") from None
    check_permissions(path, info.st_mode)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise IdentityError(f"cannot read the identity {path}: {error.strerror or error}") from None
    return parse_identity(data, path)


def check_permissions(path: Path, mode: int) -> None:
    """Refuse an identity that other users could read or change."""
    if stat.S_IMODE(mode) & 0o077:
        raise IdentityError(
            f"the identity {path} is readable by others (mode {stat.S_IMODE(mode):o}):"
            f" run 'chmod 600 {path}'"
        )


def parse_identity(data: bytes, path: Path) -> Identity:
    """An age identity file (one AGE-SECRET-KEY per line, comments) or an ssh private key."""
    from pyrage import IdentityError as AgeIdentityError
    from pyrage import ssh, x25519

    if data.lstrip().startswith(SSH_PRIVATE_MARKERS):
        try:
            secret = ssh.Identity.from_buffer(data)
        except AgeIdentityError as error:
            raise IdentityError(
                f"{path} is an ssh key age cannot use ({error_line(error)}): use an ed25519 or"
                " rsa key without a passphrase, or an age key ('mem key init')"
            ) from None
        key = ssh_public_key(data)
        public_file = path.with_name(path.name + ".pub")
        if key is None and public_file.is_file():
            line = public_file.read_text(encoding="utf-8", errors="replace").strip()
            key = " ".join(line.split()[:2]) or None
        return Identity(path, [secret], [key] if key else [])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise IdentityError(f"{path} is not an age identity file (not text)") from None
    secrets: list[Any] = []
    public: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(AGE_SECRET_PREFIX):
            raise IdentityError(
                f"{path}:{number}: not an age secret key (AGE-SECRET-KEY-1…):"
                " fix or remove that line"
            )
        try:
            secret = x25519.Identity.from_str(line)
        except AgeIdentityError as error:
            raise IdentityError(
                f"{path}:{number}: not a valid age secret key ({error_line(error)})"
            ) from None
        secrets.append(secret)
        public.append(str(secret.to_public()))
    if not secrets:
        raise IdentityError(f"{path} holds no age secret key: run 'mem key init' to make one")
    return Identity(path, secrets, public)


def ssh_public_key(private: bytes) -> str | None:
    """The public key (`ssh-ed25519 AAAA…`) an OpenSSH private key file carries in the clear."""
    import base64
    import binascii
    import struct

    lines = private.decode("ascii", "replace").strip().splitlines()
    try:
        body = base64.b64decode("".join(line for line in lines if not line.startswith("-----")))
    except (binascii.Error, ValueError):
        return None
    magic = b"openssh-key-v1\0"
    if not body.startswith(magic):
        return None  # an older PEM key: its .pub file gives the public key
    position = len(magic)

    def field() -> bytes:
        nonlocal position
        (size,) = struct.unpack(">I", body[position : position + 4])
        position += 4 + size
        return body[position - size : position]

    try:
        for _ in range(3):  # cipher, key derivation function and its options
            field()
        position += 4  # the number of keys
        blob = field()
        kind = blob[4 : 4 + struct.unpack(">I", blob[:4])[0]].decode("ascii")
    except (struct.error, UnicodeDecodeError):
        return None
    return f"{kind} {base64.b64encode(blob).decode('ascii')}"


def create_identity(path: Path, now: datetime) -> Identity:
    """Write a new x25519 identity (mode 0600, folder 0700); never over an existing file."""
    from pyrage import x25519

    secret = x25519.Identity.generate()
    public = str(secret.to_public())
    text = (
        f"# created: {now.isoformat(timespec='seconds')}\n# public key: {public}\n{secret}\n"
    ).encode()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"{path} exists already: it was not changed") from None
    with os.fdopen(handle, "wb") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    return Identity(path, [secret], [public])


# Recipients


def parse_recipient(text: str) -> Any:
    """A pyrage recipient from an age or ssh public key; ValueError if it is neither."""
    from pyrage import RecipientError, ssh, x25519

    key = text.strip()
    try:
        if key.startswith("age1"):
            return x25519.Recipient.from_str(key)
        if key.startswith(SSH_KEY_TYPES):
            return ssh.Recipient.from_str(key)
    except RecipientError as error:
        raise ValueError(error_line(error)) from None
    raise ValueError("not an age (age1…) or ssh (ssh-ed25519, ssh-rsa) public key")


def read_recipients(path: Path, shown: str | None = None) -> list[str]:
    """The public keys in a recipients file, each checked; RecipientsError on a bad line."""
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecipientsError(f"cannot read {shown}: {error}") from None
    return parse_recipients(text, shown)


def parse_recipients(text: str, shown: str) -> list[str]:
    """The keys of a recipients file's text."""
    keys: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parse_recipient(line)
        except ValueError as error:
            raise RecipientsError(
                f"{shown}:{number}: {error}: fix or remove that line in the recipients file"
            ) from None
        keys.append(line)
    return keys


def recipients_file_for(root: Path, memory_path: str) -> Path | None:
    """The recipients file that applies to a memory: its folder's, or the nearest ancestor's."""
    folder = (root / memory_path).parent
    while True:
        candidate = folder / RECIPIENTS_FILE
        if candidate.is_file():
            return candidate
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent


def recipients_for(root: Path, memory_path: str) -> list[str]:
    """The public keys a memory is encrypted to; RecipientsError when there are none."""
    found = recipients_file_for(root, memory_path)
    if found is None:
        raise RecipientsError(
            f"no recipients for {memory_path}: run 'mem key init' (it adds your key) or"
            " 'mem recipients add KEY'"
        )
    keys = read_recipients(found, found.relative_to(root).as_posix())
    if not keys:
        raise RecipientsError(
            f"{found.relative_to(root).as_posix()} lists no keys: add one with"
            " 'mem recipients add KEY'"
        )
    return keys


def recipients_files(root: Path) -> list[Path]:
    """Every recipients file of a store: the root's and those below memories/."""
    from memstore.memory import MEMORY_DIR

    found = [root / RECIPIENTS_FILE] if (root / RECIPIENTS_FILE).is_file() else []
    base = root / MEMORY_DIR
    if base.is_dir():
        found += sorted(p for p in base.rglob(RECIPIENTS_FILE) if p.is_file())
    return found


def with_recipient(text: str, key: str) -> str | None:
    """A recipients file's text with key added; None when it is there already."""
    key = " ".join(key.split())
    if key in [line.strip() for line in text.splitlines()]:
        return None
    prefix = text if not text or text.endswith("\n") else text + "\n"
    return prefix + key + "\n"


def without_recipient(text: str, key: str) -> str | None:
    """A recipients file's text with key removed; None when it is not there."""
    key = " ".join(key.split())
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if " ".join(line.split()) != key]
    return None if len(kept) == len(lines) else "".join(kept)


def write_recipients(path: Path, text: str) -> None:
    """Write a recipients file atomically."""
    atomic.write_atomic(path, text.encode("utf-8"))


# What `mem key init` reports, the encryption policy, the store's recipients and encrypted files


@dataclass
class KeyReport:
    """What `mem key init` did."""

    path: str
    public: list[str]
    created: bool
    recipients_file: str | None = None  # the store file it added the key to, if it did

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Policy:
    """Which new memories `mem add` encrypts without being asked (`[encrypt]` in .memstore.toml)."""

    all: bool = False
    types: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # store-relative: memories/2027, …

    def covers(self, memory: Memory) -> bool:
        """Tell whether the policy wants this memory encrypted."""
        return (
            self.all
            or memory.type in self.types
            or bool(set(memory.tags) & {t.lower() for t in self.tags})
            or any(memory.path.startswith(f.strip("/") + "/") for f in self.folders)
        )


def read_policy(root: Path) -> Policy:
    """The `[encrypt]` table of the store's .memstore.toml (all, types, tags, folders)."""
    import tomllib

    from memstore.errors import InvalidInputError
    from memstore.locate import MARKER

    try:
        table = tomllib.loads((root / MARKER).read_text(encoding="utf-8")).get("encrypt", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidInputError(f"{root / MARKER} cannot be read ({error}): fix it") from None
    if not isinstance(table, dict):
        raise InvalidInputError(
            f"{root / MARKER}: [encrypt] must be a table: see docs/encryption.md"
        )
    policy = Policy(
        all=table.get("all", False) is True,
        types=[str(t) for t in table.get("types", []) if isinstance(t, str)],
        tags=[str(t) for t in table.get("tags", []) if isinstance(t, str)],
        folders=[str(f) for f in table.get("folders", []) if isinstance(f, str)],
    )
    return policy


def create_or_adopt(now: datetime) -> tuple[Identity, bool]:
    """The identity MEM_IDENTITY names or the default one, created if there is none yet."""
    identity = load_identity()
    if identity is not None:
        return identity, False
    return create_identity(identity_path(), now), True


def list_recipients(root: Path) -> list[tuple[str, list[str]]]:
    """Every recipients file, store-relative, with its keys (RecipientsError on a bad line)."""
    found = []
    for path in recipients_files(root):
        shown = path.relative_to(root).as_posix()
        found.append((shown, read_recipients(path, shown)))
    return found


def encrypted_files(root: Path, folder: str | None = None) -> list[str]:
    """Store-relative paths of the encrypted memories (below folder, if given)."""
    from memstore.memory import ENCRYPTED_SUFFIX, MEMORY_DIR

    base = root / (folder or MEMORY_DIR)
    found = []
    for path in sorted(base.rglob("*" + ENCRYPTED_SUFFIX)) if base.is_dir() else []:
        rel = path.relative_to(root).as_posix()
        hidden = any(part.startswith(".") for part in rel.split("/"))
        if rel.startswith(MEMORY_DIR + "/") and not hidden and path.is_file():
            found.append(rel)
    return found
