"""Real git servers on localhost for the sync tests and benchmarks: OpenSSH's sshd with a
throwaway host key and user keys, git's smart HTTP (`git http-backend` behind a small HTTP server
with basic authentication), and a TCP proxy that counts bytes and can drop a connection.

Each starts on a free port and raises ServerUnavailable when it cannot start here (no sshd, no
git-http-backend); callers skip on it. Nothing here is a mock: git and sshd do the work.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/opt/homebrew/sbin/sshd")


class ServerUnavailable(Exception):
    """The server cannot run on this machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def git_program(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def bare_repository(path: Path) -> Path:
    """A bare repository whose branch is main, that accepts pushes over http too."""
    git_program("init", "-q", "--bare", "--initial-branch=main", str(path))
    git_program("config", "http.receivepack", "true", cwd=path)
    return path


def keygen(path: Path, passphrase: str = "") -> Path:
    """A new ed25519 key pair at path (and path.pub)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


class SshServer:
    """OpenSSH's sshd as the current user, on a free port, with its own config in folder."""

    def __init__(self, folder: Path) -> None:
        sshd = next((p for p in SSHD_PATHS if Path(p).is_file()), shutil.which("sshd"))
        if sshd is None or shutil.which("ssh-keygen") is None or shutil.which("git") is None:
            raise ServerUnavailable("sshd, ssh-keygen or git is not installed")
        self.sshd = sshd
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.host_key = keygen(folder / "host_key")
        self.user_key = keygen(folder / "user_key")
        self.locked_key = keygen(folder / "locked_key", passphrase="open sesame")
        self.other_key = keygen(folder / "other_key")  # never authorized
        authorized = folder / "authorized_keys"
        authorized.write_text(
            "".join(Path(f"{k}.pub").read_text() for k in (self.user_key, self.locked_key))
        )
        authorized.chmod(0o600)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None) -> None:
        self.port = port or self.port or free_port()
        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    f"SetEnv PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:  # root's sshd wants its privilege separation folder
            with contextlib.suppress(OSError):
                Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with (self.folder / "sshd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=log
            )
        if not wait_for_port(self.port):
            self.stop()
            raise ServerUnavailable(f"sshd did not start: {self.log()[-500:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None

    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")

    def url(self, repository: Path, port: int | None = None) -> str:
        return f"ssh://{self.user}@127.0.0.1:{port or self.port}{repository}"

    def known_hosts_line(self, port: int | None = None) -> str:
        key = Path(f"{self.host_key}.pub").read_text().split()
        return f"[127.0.0.1]:{port or self.port} {key[0]} {key[1]}\n"


class HttpGitServer:
    """git's smart HTTP: `git http-backend` run as CGI behind basic authentication.

    Serves the bare repositories in root at http://127.0.0.1:PORT/NAME. Counts the bytes of
    request and response bodies, for the benchmarks.
    """

    BACKEND = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        backend = next((p for p in self.BACKEND if Path(p).is_file()), None)
        if backend is None:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                exec_path = subprocess.run(
                    ["git", "--exec-path"], capture_output=True, text=True, check=True
                ).stdout.strip()
                candidate = Path(exec_path) / "git-http-backend"
                backend = str(candidate) if candidate.is_file() else None
        if backend is None:
            raise ServerUnavailable("git-http-backend is not installed")
        self.backend = backend
        self.root = root
        self.users = users
        self.received = 0  # request body bytes (what clients push)
        self.sent = 0  # response body bytes (what clients fetch)
        self.requests = 0
        self.port = 0
        # Called once, before the next push's first request is served (another replica
        # pushing in between a sync's fetch and its push).
        self.before_push: Callable[[], None] | None = None
        self.before_push_at = "refs"  # or "pack": after the refs were read, before the pack
        self._server: ThreadingHTTPServer | None = None

    def start(self, port: int | None = None) -> None:
        self.port = port or self.port or free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, name: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}/{name}"


def _handler(server: HttpGitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            return name if server.users.get(name) == password else None

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(parts)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._body() if self.command == "POST" else b""
            server.received += len(body)
            server.requests += 1
            user = self._user()
            if user is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            pushing = "git-receive-pack" in (query if server.before_push_at == "refs" else path)
            if pushing and server.before_push is not None:
                hook, server.before_push = server.before_push, None
                hook()
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user,
                "REMOTE_ADDR": "127.0.0.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "HOME": str(server.root),
            }
            for header, name in (
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ("Git-Protocol", "GIT_PROTOCOL"),
            ):
                if self.headers.get(header):
                    env[name] = self.headers[header]
            done = subprocess.run([server.backend], input=body, capture_output=True, env=env)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = done.stdout.partition(b"\n\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            server.sent += len(payload)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


class Proxy:
    """A TCP proxy to 127.0.0.1:target that counts bytes each way and can cut a connection
    once a client has sent more than cut_after bytes (a connection dropped mid-push)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.up = 0  # client to server
        self.down = 0  # server to client
        self.cut_after: int | None = None
        self.cuts = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            state = {"up": 0}
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, up, state), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, up: bool, state: dict[str, int]) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                with self._lock:
                    if up:
                        self.up += len(data)
                        state["up"] += len(data)
                        if self.cut_after is not None and state["up"] > self.cut_after:
                            self.cuts += 1
                            break
                    else:
                        self.down += len(data)
                b.sendall(data)
        except OSError:
            pass
        for sock in (a, b):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
