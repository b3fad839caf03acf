"""`mem find` without the CLI: ask the store's search service, when one runs, and print its answer.

A cold `mem find` spends most of its time importing typer, Whoosh and memstore and opening the
index. Large stores have a resident search service (`service.py`) that holds all of that; this
module is what a `mem` process runs first. It reads a plain `mem [--store S] find WORDS [--json]
[-n N]` from the command line, finds the store as `locate.choose_store` does, and asks the
service over its socket in the store's `.git/memstore/`. Anything else (another command, another
option, no service, a service of another memstore version or started with other settings, an
error, a service that dies mid-answer) returns None, and the caller runs the CLI, which searches
in process as before. Only the standard library is imported here, and only cheap parts of it:
`_socket` and `marshal`, not `socket`, `json` or `pathlib`.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # not typing's: see memstore/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# The first line of a request and of an answer: a service or client of another protocol is
# refused, and the client runs the CLI.
HEADER = b"memstore-search 1\n"
SOCKET_NAME = "search.sock"
# AF_UNIX paths are limited to 108 bytes: a store deeper than this has no service.
MAX_SOCKET_PATH = 100
ANSWER_TIMEOUT = 30.0
MAX_MESSAGE = 64 << 20
MARKER = ".memstore.toml"  # locate.MARKER
DEFAULT_NAME = "default"  # locate.DEFAULT_NAME


def code_stamp(package: str | None = None) -> str:
    """What tells one memstore install (or one edit of its source) from another.

    The name, size and modification time of each of the package's modules: a service whose
    code changed on disk after it started, or that another install started, refuses to answer.
    """
    folder = package or os.path.dirname(os.path.abspath(__file__))
    parts = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            stat = entry.stat()
            parts.append(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return f"{folder}|{'|'.join(parts)}"


def settings() -> list[tuple[str, str]]:
    """The environment a search depends on (identity, clock, watcher, data folders)."""
    return sorted(
        (key, value)
        for key, value in os.environ.items()
        if (key.startswith(("MEM_", "XDG_")) or key in ("HOME", "TZ")) and key != "MEM_STORE"
    )


def parse_argv(argv: list[str]) -> tuple[str | None, str, int, bool] | None:
    """(--store, query, limit, --json) of a plain `mem find`; None for anything else."""
    store: str | None = None
    args = list(argv)
    while args and args[0].startswith("--store"):
        if args[0] == "--store" and len(args) > 1:
            store, args = args[1], args[2:]
        elif args[0].startswith("--store="):
            store, args = args[0].split("=", 1)[1], args[1:]
        else:
            return None
    if not args or args[0] != "find":
        return None
    words: list[str] = []
    limit = 10
    as_json = False
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--json":
            as_json = True
        elif arg in ("-n", "--limit") and rest:
            value = rest.pop(0)
            if not value.isdigit():
                return None
            limit = int(value)
        elif arg.startswith("--limit=") and arg[8:].isdigit():
            limit = int(arg[8:])
        elif arg.startswith("-") or not arg.strip():
            return None  # another option, or what the CLI must refuse
        else:
            words.append(arg)
    if not words or store == "":
        return None
    return store, " ".join(words), limit, as_json


def is_store(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MARKER)) and os.path.exists(os.path.join(path, ".git"))


def store_root(explicit: str | None, start: str | None = None) -> str | None:
    """The store's resolved root, chosen as locate.choose_store does (from the folder start,
    else the current one); None for the default."""
    chosen = explicit or os.environ.get("MEM_STORE")
    if chosen:
        return os.path.realpath(os.path.expanduser(chosen))
    folder = os.path.realpath(start or os.getcwd())
    while True:
        if is_store(folder):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None  # the default store: the CLI says whether it exists
        folder = parent


def default_root() -> str:
    """The default store's resolved root, as `locate.default_store_path` gives it on Linux (the
    only platform with a service)."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.realpath(os.path.join(data, "memstore", DEFAULT_NAME))


def socket_path(root: str) -> str | None:
    """Where the store's service listens; None when it cannot have one."""
    git = os.path.join(root, ".git")
    if not os.path.isdir(git):  # a linked work tree or a .git file: no service
        return None
    path = os.path.join(git, "memstore", SOCKET_NAME)
    return path if len(path.encode()) <= MAX_SOCKET_PATH else None


def ask(
    path: str, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT
) -> dict[str, Any] | None:
    """Send a request to the service at path; its answer, or None when there is none."""
    return exchange(path, request, timeout)[1]


def exchange(
    path: str, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT
) -> tuple[bool, dict[str, Any] | None]:
    """Send a request to the service at path: whether it was sent (a service may have acted on
    it), and the answer, or None when there is none."""
    import _socket

    sent = False
    try:
        connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return sent, None
    try:
        connection.settimeout(timeout)
        connection.connect(path)
        sent = True  # from here on, the service may read the request, whole or not
        connection.sendall(HEADER + marshal.dumps(request))
        connection.shutdown(_socket.SHUT_WR)
        chunks = []
        size = 0
        while chunk := connection.recv(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_MESSAGE:
                return sent, None
    except OSError:  # no service, a socket left behind, a service killed mid-answer, a timeout
        return sent, None
    finally:
        connection.close()
    data = b"".join(chunks)
    if not data.startswith(HEADER):
        return sent, None
    try:
        answer = marshal.loads(data[len(HEADER) :])
    except (EOFError, ValueError, TypeError):
        return sent, None
    return sent, answer if isinstance(answer, dict) else None


def addressed(root: str) -> dict[str, Any]:
    """What every request carries, for the service to refuse it when it is not this install's,
    with these settings, for this store."""
    return {"code": code_stamp(), "settings": settings(), "root": root}


def request_for(root: str, query: str, limit: int, marks: tuple[str, str]) -> dict[str, Any]:
    return {
        **addressed(root),
        "query": query,
        "limit": limit,
        "marks": list(marks),
    }


def run(argv: list[str]) -> int | None:
    """Answer a plain `mem find` through the service: the exit status, or None to run the CLI."""
    if not sys.platform.startswith("linux") or os.environ.get("MEM_WATCH") == "0":
        return None
    parsed = parse_argv(argv)
    if parsed is None:
        return None
    explicit, query, limit, as_json = parsed
    root = store_root(explicit)
    if root is None or not is_store(root):
        return None
    path = socket_path(root)
    if path is None:
        return None
    styled = not as_json and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    marks = ("**", "**") if as_json else ("\x1b[1m", "\x1b[0m") if styled else ("", "")
    asked = limit + 1 if limit else 0  # one more, to tell whether there are more
    answer = ask(path, request_for(root, query, asked, marks))
    if answer is None or answer.get("ok") is not True:
        return None
    try:
        show(answer, query, limit, as_json, styled)
    except BrokenPipeError:  # `mem find x | head -1`: as the CLI does, exit 0 quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        return 0
    return 0


def hit_lines(number: int, hit: dict[str, Any], bold: Callable[[str], str]) -> list[str]:
    """One search hit as `mem find` prints it (the hit as `SearchHit.to_dict` gives it)."""
    tags = " ".join(f"#{t}" for t in hit["tags"])
    age = f" ({hit['age']})" if hit.get("age") else ""
    lines = [
        f"{number}. {bold(hit['title'])}",
        f"   {hit['id']} · {hit['created'][:10]}{age} · {hit['type']}"
        + (f" · {tags}" if tags else ""),
        f"   {hit['path']}",
    ]
    if hit["superseded_by"]:
        lines.append(f"   superseded by {', '.join(hit['superseded_by'])}")
    if hit.get("expired"):
        lines.append(f"   expired {str(hit.get('expires', ''))[:10]}")
    if hit["snippet"]:
        lines.append(f"   {hit['snippet']}")
    return lines


def show(answer: dict[str, Any], query: str, limit: int, as_json: bool, styled: bool) -> None:
    """Print what the CLI's find prints for these hits, and the notices on stderr."""
    for line in answer.get("notices", []):
        sys.stderr.write(f"{line}\n")
    hits: list[dict[str, Any]] = answer["hits"]
    more = bool(limit) and len(hits) > limit
    hits = hits[: limit or None]
    out = sys.stdout
    if as_json:
        import json

        data = {"query": query, "results": hits, "more": more}
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        out.flush()
        return
    if not hits:
        sys.stderr.write("no memories found\n")
        return

    def bold(text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if styled else text

    lines = []
    for number, hit in enumerate(hits, start=1):
        lines += hit_lines(number, hit, bold)
    out.write("\n".join(lines) + "\n")
    out.flush()
    if more:
        sys.stderr.write(
            f"mem: showing the best {limit} results; there are more: use -n to see more"
            " (-n 0: all)\n"
        )
