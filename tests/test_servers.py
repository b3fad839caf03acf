"""mem clone and mem sync through real servers on localhost: OpenSSH's sshd and git's smart HTTP
(tests/servers.py), with every credential path of docs/sync.md and their failures.

Each failure must be one line that says what to do, exit non-zero, and leave the local store as
it was (its commits kept, nothing half-merged); the retry then succeeds.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from memstore.errors import AuthenticationError, HostKeyError, SyncError
from memstore.store import Store
from tests.conftest import Clock, run_mem
from tests.servers import (
    HttpGitServer,
    Proxy,
    ServerUnavailable,
    SshServer,
    bare_repository,
    free_port,
)

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    try:
        server = SshServer(tmp_path_factory.mktemp("sshd"))
        server.start()
    except (ServerUnavailable, OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no ssh server here: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpGitServer]:
    try:
        server = HttpGitServer(tmp_path_factory.mktemp("http"), {"alice": TOKEN})
        server.start()
    except (ServerUnavailable, OSError) as error:
        pytest.skip(f"no http server here: {error}")
    yield server
    server.stop()


def new_repository(root: Path) -> Path:
    return bare_repository(root / f"{secrets.token_hex(4)}.git")


def one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0
    assert done.stderr.startswith("mem: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    return done.stderr


def intact(store: Store, titles: set[str]) -> None:
    """The store is as its user left it: a normal state, a clean work tree, its memories."""
    fresh = Store(store.root)
    assert fresh.repo.state() == pygit2.enums.RepositoryState.NONE
    assert fresh.repo.status() == {}
    assert titles <= {m.title for m in fresh.list()}


def round_trip(url: str, tmp_path: Path, clock: Clock) -> None:
    """clone, and sync in both directions."""
    first = Store.init(tmp_path / "a", remote=url, clock=clock)
    first.add("Written on the first machine", title="First")
    assert first.sync().sent >= 1
    done = run_mem("clone", url, str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    second = Store(tmp_path / "b", clock=clock)
    assert {m.title for m in second.list()} == {"First"}
    second.add("Written on the second machine", title="Second")
    second.sync()
    assert first.sync().received >= 1
    assert {m.title for m in first.list()} == {"First", "Second"}


# ssh


@pytest.fixture
def ssh_home(sshd: SshServer) -> Path:
    """~/.ssh with the server's host key in known_hosts, as after a first `ssh` to it."""
    ssh = Path.home() / ".ssh"
    ssh.mkdir(mode=0o700)
    trust(sshd)
    return ssh


def trust(sshd: SshServer, port: int | None = None) -> None:
    """Add the server's host key (as reached on port) to ~/.ssh/known_hosts."""
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    with known_hosts.open("a") as file:
        file.write(sshd.known_hosts_line(port))


def test_ssh_with_mem_ssh_key(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    round_trip(sshd.url(new_repository(tmp_path)), tmp_path, clock)


def test_ssh_with_a_key_that_has_a_passphrase(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    url = sshd.url(new_repository(tmp_path))
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.locked_key))
    refused = run_mem("clone", url, str(tmp_path / "x"))  # no passphrase given
    one_error_line(refused, "MEM_SSH_PASSPHRASE", "mem clone")
    assert not (tmp_path / "x").exists()
    monkeypatch.setenv("MEM_SSH_PASSPHRASE", "open sesame")
    round_trip(url, tmp_path, clock)


def test_ssh_with_the_key_in_home(
    sshd: SshServer, tmp_path: Path, clock: Clock, ssh_home: Path
) -> None:
    for suffix in ("", ".pub"):
        (ssh_home / f"id_ed25519{suffix}").write_bytes(
            Path(f"{sshd.user_key}{suffix}").read_bytes()
        )
    (ssh_home / "id_ed25519").chmod(0o600)
    round_trip(sshd.url(new_repository(tmp_path)), tmp_path, clock)


def test_ssh_with_the_agent(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket.exists():
                break
            subprocess.run(["sleep", "0.05"])
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket)}
        subprocess.run(["ssh-add", str(sshd.user_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
        round_trip(sshd.url(new_repository(tmp_path)), tmp_path, clock)
    finally:
        agent.terminate()
        agent.wait()


def test_ssh_with_a_wrong_key_fails_in_one_line_and_keeps_the_store(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    url = sshd.url(new_repository(tmp_path))
    store = Store.init(tmp_path / "a", remote=url, clock=clock)
    store.add("Kept through a refused sync", title="Kept")
    head = store.repo.head.target
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.other_key))
    one_error_line(run_mem("--store", str(store.root), "sync"), "ssh-agent", "MEM_SSH_KEY")
    one_error_line(run_mem("clone", url, str(tmp_path / "x")), "mem clone")
    assert not (tmp_path / "x").exists()
    intact(store, {"Kept"})
    assert Store(store.root).repo.head.target == head
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    assert Store(store.root).sync().sent >= 1


def test_ssh_server_down_and_missing_repository(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    repository = new_repository(tmp_path)
    down = sshd.url(repository, port=free_port())  # nobody listens there
    store = Store.init(tmp_path / "a", remote=down, clock=clock)
    store.add("Kept while the server is down", title="Kept")
    one_error_line(run_mem("--store", str(store.root), "sync"), "cannot reach origin", "mem sync")
    one_error_line(run_mem("clone", down, str(tmp_path / "x")), "nothing was made")
    missing = sshd.url(tmp_path / "no-such.git")
    one_error_line(run_mem("clone", missing, str(tmp_path / "x")), "nothing was made")
    mem_set = run_mem("--store", str(store.root), "remote", "set-url", "origin", missing)
    assert mem_set.returncode == 0
    one_error_line(run_mem("--store", str(store.root), "sync"), "mem sync")
    intact(store, {"Kept"})
    store.set_remote_url("origin", sshd.url(repository))
    assert Store(store.root).sync().sent >= 1


def test_ssh_connection_dropped_mid_push(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    ssh_home: Path,
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    repository = new_repository(tmp_path)
    proxy = Proxy(sshd.port)
    trust(sshd, port=proxy.port)  # the host as reached through the proxy
    try:
        dropped_push(sshd.url(repository, port=proxy.port), repository, proxy, tmp_path, clock)
    finally:
        proxy.close()


def test_ssh_unknown_host_is_refused_in_one_line_and_keeps_the_store(
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No known_hosts entry for the server: clone and sync refuse to talk to it, and say how
    to check and add its key; once added, both work."""
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    repository = new_repository(tmp_path)
    url = sshd.url(repository)
    store = Store.init(tmp_path / "a", remote=url, clock=clock)
    store.add("Kept through a refused sync", title="Kept")
    head = store.repo.head.target
    scan = f"ssh-keyscan -p {sshd.port} 127.0.0.1"
    line = one_error_line(run_mem("--store", str(store.root), "sync"), "mem sync")
    assert line == (
        f"mem: error: the ssh host [127.0.0.1]:{sshd.port} is not in ~/.ssh/known_hosts, so"
        " there is no telling that it is the server you mean: connect once with"
        f" 'ssh -p {sshd.port} {sshd.user}@127.0.0.1' and accept its key if the fingerprint is"
        f" the one its administrator gives (or check '{scan} | ssh-keygen -lf -' and add it with"
        f" '{scan} >> ~/.ssh/known_hosts'), then run 'mem sync' again (your commits are kept)\n"
    )
    with pytest.raises(HostKeyError):
        Store(store.root).sync()
    one_error_line(run_mem("clone", url, str(tmp_path / "x")), "known_hosts", "nothing was made")
    assert not (tmp_path / "x").exists()
    intact(store, {"Kept"})
    assert Store(store.root).repo.head.target == head
    assert pygit2.Repository(str(repository)).references.get("refs/heads/main") is None
    trust(sshd)
    done = run_mem("--store", str(store.root), "sync")
    assert done.returncode == 0, done.stderr
    assert pygit2.Repository(str(repository)).references["refs/heads/main"].target == head
    assert run_mem("clone", url, str(tmp_path / "x")).returncode == 0
    assert {m.title for m in Store(tmp_path / "x").list()} == {"Kept"}


@pytest.mark.parametrize("hashed", [False, True])
def test_ssh_changed_host_key_is_refused_with_a_warning(
    sshd: SshServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    hashed: bool,
) -> None:
    """known_hosts lists the server with another key (plainly, or hashed by ssh-keygen -H):
    the refusal warns of a changed key and names the line."""
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    repository = new_repository(tmp_path)
    url = sshd.url(repository)
    store = Store.init(tmp_path / "a", remote=url, clock=clock)
    store.add("Kept through a refused sync", title="Kept")
    head = store.repo.head.target
    other = Path(f"{sshd.other_key}.pub").read_text().split()
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700)
    known_hosts.write_text(
        "# a comment, then another server\n"
        + sshd.known_hosts_line().replace(f"[127.0.0.1]:{sshd.port}", "example.org")
        + f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n"
    )
    if hashed:
        hash_known_hosts(known_hosts)
    line = one_error_line(run_mem("--store", str(store.root), "sync"), "mem sync")
    assert line.startswith(
        f"mem: error: WARNING: the ssh host key of [127.0.0.1]:{sshd.port} has changed: it is"
        " not the ssh-ed25519 key at ~/.ssh/known_hosts:3; someone may be intercepting the"
        " connection, so nothing was sent: "
    ), line
    assert f"'ssh-keygen -R \"[127.0.0.1]:{sshd.port}\"'" in line
    clone = one_error_line(run_mem("clone", url, str(tmp_path / "x")), "nothing was made")
    assert "has changed" in clone and "known_hosts:3" in clone
    assert not (tmp_path / "x").exists()
    intact(store, {"Kept"})
    assert Store(store.root).repo.head.target == head
    assert pygit2.Repository(str(repository)).references.get("refs/heads/main") is None


def test_ssh_hashed_known_hosts_entry_is_accepted(
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    trust(sshd)
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    hash_known_hosts(known_hosts)
    assert "127.0.0.1" not in known_hosts.read_text()
    round_trip(sshd.url(new_repository(tmp_path)), tmp_path, clock)


def hash_known_hosts(path: Path) -> None:
    """Hash the host names of a known_hosts file as OpenSSH's HashKnownHosts does."""
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    entries = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert entries and all(line.startswith("|1|") for line in entries)


def dropped_push(url: str, repository: Path, proxy: Proxy, tmp_path: Path, clock: Clock) -> None:
    """A push of a large commit cut off half-way: one line, nothing lost, the retry succeeds."""
    store = Store.init(tmp_path / "a", remote=url, clock=clock)
    titles = set()
    for number in range(6):  # ~600 KB that does not compress
        titles.add(f"Large {number}")
        store.add(secrets.token_hex(50_000), title=f"Large {number}", check_duplicates=False)
    proxy.cut_after = 100_000
    failed = run_mem("--store", str(store.root), "sync")
    one_error_line(failed, "mem sync")
    assert proxy.cuts >= 1
    intact(store, titles)
    remote = pygit2.Repository(str(repository))
    assert remote.references.get("refs/heads/main") is None  # nothing half-pushed
    proxy.cut_after = None
    assert Store(store.root).sync().sent >= 1
    remote = pygit2.Repository(str(repository))
    assert remote.references["refs/heads/main"].target == Store(store.root).repo.head.target


# https (git's smart HTTP, without TLS: the credentials are the same)


def test_http_with_mem_git_token(
    http: HttpGitServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    round_trip(http.url(new_repository(http.root).name), tmp_path, clock)


def test_http_with_git_credentials_file(http: HttpGitServer, tmp_path: Path, clock: Clock) -> None:
    (Path.home() / ".git-credentials").write_text(f"http://alice:{TOKEN}@127.0.0.1:{http.port}\n")
    round_trip(http.url(new_repository(http.root).name), tmp_path, clock)


def test_http_with_a_wrong_token_fails_in_one_line_and_keeps_the_store(
    http: HttpGitServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http.url(new_repository(http.root).name)
    store = Store.init(tmp_path / "a", remote=url, clock=clock)
    store.add("Kept through a refused sync", title="Kept")
    monkeypatch.setenv("MEM_GIT_TOKEN", "wrong")
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    one_error_line(run_mem("--store", str(store.root), "sync"), "MEM_GIT_TOKEN", "mem sync")
    one_error_line(run_mem("clone", url, str(tmp_path / "x")), "mem clone")
    assert not (tmp_path / "x").exists()
    monkeypatch.delenv("MEM_GIT_TOKEN")  # no credential at all
    one_error_line(run_mem("--store", str(store.root), "sync"), "MEM_GIT_TOKEN")
    with pytest.raises(AuthenticationError):
        Store(store.root).sync()
    intact(store, {"Kept"})
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    assert Store(store.root).sync().sent >= 1


def test_http_server_down_and_missing_repository(
    http: HttpGitServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    name = new_repository(http.root).name
    down = http.url(name, port=free_port())
    store = Store.init(tmp_path / "a", remote=down, clock=clock)
    store.add("Kept while the server is down", title="Kept")
    one_error_line(run_mem("--store", str(store.root), "sync"), "cannot reach origin", "mem sync")
    one_error_line(run_mem("clone", down, str(tmp_path / "x")), "nothing was made")
    missing = http.url("no-such.git")
    one_error_line(run_mem("clone", missing, str(tmp_path / "x")), "nothing was made")
    store.set_remote_url("origin", missing)
    with pytest.raises(SyncError):
        Store(store.root).sync()
    one_error_line(run_mem("--store", str(store.root), "sync"), "mem sync")
    intact(store, {"Kept"})
    store.set_remote_url("origin", http.url(name))
    assert Store(store.root).sync().sent >= 1


def test_http_connection_dropped_mid_push(
    http: HttpGitServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    repository = new_repository(http.root)
    proxy = Proxy(http.port)
    try:
        dropped_push(http.url(repository.name, port=proxy.port), repository, proxy, tmp_path, clock)
    finally:
        proxy.close()


@pytest.mark.parametrize("moved_at", ["refs", "pack"])
def test_a_push_rejected_because_the_server_moved_is_retried(
    http: HttpGitServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    moved_at: str,
) -> None:
    """The branch moves after the fetch (libgit2 sees it in the refs and refuses the push), or
    after the push read the refs (git receive-pack's "failed to update ref"): both retried."""
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    url = http.url(new_repository(http.root).name)
    first = Store.init(tmp_path / "a", remote=url, clock=clock)
    first.add("Shared from the start", title="Start")
    first.sync()
    second = Store.clone(url, tmp_path / "b", clock=clock)
    third = Store.clone(url, tmp_path / "c", clock=clock)
    first.add("Added by the first", title="First")
    second.add("Added by the second", title="Second")

    def push_in_between() -> None:  # after the first's fetch, before its push
        second.sync()

    http.before_push, http.before_push_at = push_in_between, moved_at
    result = first.sync()
    assert result.attempts == 2 and result.received == 1 and result.sent == 2
    third.sync()
    assert {m.title for m in third.list()} == {"Start", "First", "Second"}
    assert second.sync().received == 2
    assert second.repo.head.target == first.repo.head.target == third.repo.head.target


def test_a_push_rejected_again_and_again_is_retried_until_it_goes_through(
    http: HttpGitServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica wins the branch before each of six pushes in a row (a busy server): the
    sync pauses, fetches, merges and pushes again until its commit is in (it gave up after five
    tries before)."""
    monkeypatch.setenv("MEM_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("MEM_GIT_USERNAME", "alice")
    url = http.url(new_repository(http.root).name)
    first = Store.init(tmp_path / "a", remote=url, clock=clock)
    first.add("Shared from the start", title="Start")
    first.sync()
    second = Store.clone(url, tmp_path / "b", clock=clock)
    first.add("Added by the first", title="First")
    moves: list[str] = []

    def push_in_between() -> None:  # after the first's fetch, before its push; six times
        moves.append(f"Second {len(moves) + 1}")
        second.add(f"Added by the second, {moves[-1]}", title=moves[-1])
        second.sync()
        if len(moves) < 6:
            http.before_push = push_in_between

    http.before_push = push_in_between
    result = first.sync()
    assert len(moves) == 6
    assert result.attempts == 7 and result.received == 6 and result.sent >= 1
    assert second.sync().received >= 1
    assert {m.title for m in second.list()} == {"Start", "First", *moves}
    assert second.repo.head.target == first.repo.head.target
    remote = pygit2.Repository(str(http.root / url.rsplit("/", 1)[-1]))
    assert remote.references["refs/heads/main"].target == first.repo.head.target
