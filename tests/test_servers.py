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

from memstore.errors import AuthenticationError, SyncError
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
def ssh_home() -> Path:
    ssh = Path.home() / ".ssh"
    ssh.mkdir(mode=0o700)
    return ssh


def test_ssh_with_mem_ssh_key(
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    round_trip(sshd.url(new_repository(tmp_path)), tmp_path, clock)


def test_ssh_with_a_key_that_has_a_passphrase(
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
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
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
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
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
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
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
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
    sshd: SshServer, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM_SSH_KEY", str(sshd.user_key))
    repository = new_repository(tmp_path)
    proxy = Proxy(sshd.port)
    try:
        dropped_push(sshd.url(repository, port=proxy.port), repository, proxy, tmp_path, clock)
    finally:
        proxy.close()


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
