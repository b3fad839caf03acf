"""ssh host keys: which remotes are ssh, what `~/.ssh/known_hosts` lists for a host, and the
one-line refusal when the server's key is not the one listed there.

libgit2 (through libssh2) compares the server's key with `~/.ssh/known_hosts` and tells the
certificate callback whether it matched; it does not say whether the host was missing or listed
with another key. This module reads known_hosts itself to tell those two apart (plain names,
patterns, `[host]:port` and hashed `|1|salt|hash` entries), so that the message says what to do.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from memstore.errors import HostKeyError

SSH_SCHEMES = ("ssh", "ssh+git", "git+ssh")
DEFAULT_PORT = 22
SHOWN_FILE = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class SshHost:
    """The server an ssh remote URL names."""

    user: str | None
    host: str
    port: int | None

    @property
    def names(self) -> list[str]:
        """The names known_hosts may list it under, the most precise first (libssh2 checks
        both `[host]:port` and the bare host for a port other than 22)."""
        if self.port is None or self.port == DEFAULT_PORT:
            return [self.host]
        return [f"[{self.host}]:{self.port}", self.host]

    @property
    def shown(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Listing:
    """A known_hosts line that names the host: where, and under which name."""

    line: int
    name: str
    key_type: str


def ssh_host(url: str) -> SshHost | None:
    """The host of an ssh remote (ssh://, or scp-like user@host:path); None for any other."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in SSH_SCHEMES or not parts.hostname:
            return None
        try:
            port = parts.port
        except ValueError:
            return None
        return SshHost(parts.username, parts.hostname, port)
    match = re.match(r"^(?:([^@/:\[]+)@)?(\[[^\]]+\]|[^/:\[\]]+):(?!//)", url)
    if match is None or url.startswith(("/", ".", "~")):
        return None
    host = match.group(2).strip("[]")
    return SshHost(match.group(1), host, None)


def known_hosts_file() -> Path:
    """The file libgit2 checks host keys against."""
    return Path.home() / ".ssh" / "known_hosts"


def listings(host: SshHost, path: Path | None = None) -> list[Listing]:
    """The lines of known_hosts that list host, whatever key they hold."""
    path = path or known_hosts_file()
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):  # @cert-authority, @revoked: not a key of this host
            continue
        if len(fields) < 3:
            continue
        for name in host.names:
            if _names_match(fields[0], name):
                found.append(Listing(number, name, fields[1]))
                break
    return found


def _names_match(field: str, name: str) -> bool:
    if field.startswith("|1|"):
        return _hashed_match(field, name)
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        if _pattern_match(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


def _hashed_match(field: str, name: str) -> bool:
    """OpenSSH's HashKnownHosts entry: |1|base64(salt)|base64(HMAC-SHA1(salt, name))."""
    parts = field.split("|")
    if len(parts) != 4:
        return False
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    mine = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
    return hmac.compare_digest(mine, digest)


def _pattern_match(pattern: str, name: str) -> bool:
    """ssh's host patterns: `*` and `?` are wildcards, everything else literal, any case."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def refusal(url: str, command: str = "mem sync") -> HostKeyError:
    """The error for an ssh server whose key known_hosts does not vouch for."""
    host = ssh_host(url)
    if host is None:  # not reached for ssh remotes; a safe wording all the same
        return HostKeyError(
            f"the server of {url} did not prove its identity: check its key, then run"
            f" '{command}' again{_kept(command)}"
        )
    login = f"{host.user}@{host.host}" if host.user else host.host
    ssh = f"ssh -p {host.port} {login}" if host.port else f"ssh {login}"
    keyscan = f"ssh-keyscan -p {host.port} {host.host}" if host.port else f"ssh-keyscan {host.host}"
    listed = listings(host)
    if not listed:
        return HostKeyError(
            f"the ssh host {host.shown} is not in {SHOWN_FILE}, so there is no telling that it"
            f" is the server you mean: connect once with '{ssh}' and accept its key if the"
            " fingerprint is the one its administrator gives (or check"
            f" '{keyscan} | ssh-keygen -lf -' and add it with"
            f" '{keyscan} >> {SHOWN_FILE}'), then run '{command}' again{_kept(command)}"
        )
    first = listed[0]
    return HostKeyError(
        f"WARNING: the ssh host key of {host.shown} has changed: it is not the"
        f" {first.key_type} key at {SHOWN_FILE}:{first.line}; someone may be intercepting the"
        " connection, so nothing was sent: ask the server's administrator for its key"
        f" fingerprint, and only if it matches, remove the old key with"
        f" 'ssh-keygen -R \"{first.name}\"' and connect once with '{ssh}' to add the new one,"
        f" then run '{command}' again{_kept(command)}"
    )


def _kept(command: str) -> str:
    return " (nothing was made)" if command == "mem clone" else " (your commits are kept)"
