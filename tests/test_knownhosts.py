"""Which remotes are ssh, and which known_hosts lines list their host (memstore.knownhosts);
the refusals themselves are tested against a real sshd in tests/test_servers.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from memstore.knownhosts import SshHost, listings, ssh_host

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIKkMvuXeewHrn840lLpw1/Igkto9PvvZQsiCusSvNTi1"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ssh://bob@example.org:2222/srv/notes.git", SshHost("bob", "example.org", 2222)),
        ("ssh://example.org/notes.git", SshHost(None, "example.org", None)),
        ("git+ssh://git@example.org/notes.git", SshHost("git", "example.org", None)),
        ("git@github.com:me/notes.git", SshHost("git", "github.com", None)),
        ("example.org:notes.git", SshHost(None, "example.org", None)),
        ("ssh://[::1]:2222/notes.git", SshHost(None, "::1", 2222)),
        ("https://example.org/notes.git", None),
        ("http://127.0.0.1:8080/notes.git", None),
        ("file:///srv/notes.git", None),
        ("/srv/notes.git", None),
        ("./notes:old.git", None),
        ("notes/a:b.git", None),
    ],
)
def test_ssh_host_of_a_remote_url(url: str, host: SshHost | None) -> None:
    assert ssh_host(url) == host


def test_listings_read_names_patterns_ports_and_markers(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"# example.org ssh-ed25519 {KEY}\n"
        "\n"
        f"other.org,example.org ssh-ed25519 {KEY}\n"  # 3: one of a list
        f"[example.org]:2222 ssh-rsa {KEY}\n"  # 4: another port
        f"*.example.org,!bad.example.org ecdsa-sha2-nistp256 {KEY}\n"  # 5: a pattern
        f"@cert-authority *.example.org ssh-ed25519 {KEY}\n"  # not a host key
        f"EXAMPLE.ORG ssh-ed25519\n"  # no key: not an entry
    )
    lines = lambda host: [(x.line, x.name) for x in listings(host, known_hosts)]  # noqa: E731
    assert lines(SshHost(None, "example.org", None)) == [(3, "example.org")]
    assert lines(SshHost(None, "example.org", 22)) == [(3, "example.org")]
    assert lines(SshHost(None, "example.org", 2222)) == [
        (3, "example.org"),
        (4, "[example.org]:2222"),
    ]
    assert lines(SshHost(None, "git.Example.org", None)) == [(5, "git.Example.org")]
    assert lines(SshHost(None, "bad.example.org", None)) == []
    assert lines(SshHost(None, "example.net", None)) == []
    assert listings(SshHost(None, "example.org", None), tmp_path / "missing") == []


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH's ssh-keygen is needed")
def test_listings_read_entries_hashed_by_ssh_keygen(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"example.org ssh-ed25519 {KEY}\n[127.0.0.1]:2222 ssh-ed25519 {KEY}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert "example.org" not in known_hosts.read_text()
    found = listings(SshHost(None, "127.0.0.1", 2222), known_hosts)
    assert [(x.line, x.name, x.key_type) for x in found] == [(2, "[127.0.0.1]:2222", "ssh-ed25519")]
    assert [x.line for x in listings(SshHost("git", "example.org", None), known_hosts)] == [1]
    assert listings(SshHost(None, "example.net", None), known_hosts) == []
    assert listings(SshHost(None, "127.0.0.1", 2223), known_hosts) == []
