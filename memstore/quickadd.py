"""`mem add TEXT` without the CLI's start-up, and the part of `mem add` both share.

A cold `mem add` spent about 60 ms importing typer and building the CLI before adding anything.
`launch` offers the command line here first: a plain `mem [--store S] add TEXT`, with at most
`--json`, `-t/--tag`, `--title`, `--type` and `--store` after it, is run without typer, through
the same steps as the CLI's `add` (`open_store`, `add_to`, `added_text`), with its output, notices,
warnings, errors and exit statuses. Anything else returns None and the CLI runs: another command
or option, `-` (stdin), `--help`, an option given twice or with a value that starts with `-`,
`--` or a second argument (which the CLI refuses with its usage line), `--traceback` or
`MEM_TRACEBACK`, a stream that is not UTF-8 (which the CLI wraps again).

Where the store has a search service (`service.py`, large stores on Linux), the add is asked of
it first: it has pygit2, Whoosh and the open index loaded, and runs the same steps. It adds only
for a client with its own settings and writer's settings (`writer_settings`: git's variables,
the user's name, the umask, the Python running mem); anything else is refused and the add runs
here. The request carries an id made here: when the service may have added the memory but did
not say so (killed before it answered, an unexpected error), the add here uses that id, and an
add that went through is not made twice (`authoring.add`).

Only the standard library is imported before the command line is known to be one it runs.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see memstore/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from memstore.duplicates import Duplicate
    from memstore.memory import Memory
    from memstore.report import Reporter
    from memstore.store import Store

# What click's echo removes from text written to anything but a terminal.
ANSI_STYLE = r"\033\[[;?0-9]*[a-zA-Z]"
# Options of `mem add` taken here, each with a value.
_VALUES = {"-t": "tags", "--tag": "tags", "--title": "title", "--type": "type", "--store": "store"}


class AddArgs:
    """A plain `mem add` command line."""

    def __init__(
        self,
        text: str,
        store: str | None = None,
        as_json: bool = False,
        tags: list[str] | None = None,
        title: str | None = None,
        type: str | None = None,
    ) -> None:
        self.text = text
        self.store = store
        self.as_json = as_json
        self.tags = tags or []
        self.title = title
        self.type = type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddArgs) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"AddArgs({vars(self)!r})"


def parse_argv(argv: list[str]) -> AddArgs | None:
    """The arguments of a plain `mem [--store S] [--json] add TEXT [options]`; None for anything
    else, which the CLI runs."""
    args = list(argv)
    store: str | None = None
    as_json = False
    while args and args[0] != "add":  # the options before the command
        arg = args.pop(0)
        if arg == "--json" and not as_json:
            as_json = True
        elif arg == "--store" and args and store is None and not args[0].startswith("-"):
            store = args.pop(0)
        elif arg.startswith("--store=") and store is None:
            store = arg.split("=", 1)[1]
        else:
            return None
    if not args:
        return None
    text: str | None = None
    values: dict[str, Any] = {"tags": []}
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        if name == "--json" and value is None and not as_json:
            as_json = True
        elif name in _VALUES:
            if value is None:
                if not rest:
                    return None
                value = rest.pop(0)
            key = _VALUES[name]
            if value.startswith("-"):
                return None  # the CLI takes it as the value: it says what it makes of it
            if key == "tags":
                values["tags"].append(value)
            elif key in values:
                return None  # given twice
            else:
                values[key] = value
        elif arg.startswith("-") or text is not None:
            return None  # another option, stdin, `--`, a second argument
        else:
            text = arg
    if text is None or not text.strip():
        return None  # the CLI says what is missing
    if "store" in values:  # after the command it wins, as in the CLI
        store = values.pop("store")
    if store == "":
        return None
    return AddArgs(text, store, as_json, **values)


def run(argv: list[str], added: Callable[[Store], None] | None = None) -> int | None:
    """Run a plain `mem add`: its exit status, or None to run the CLI. added is called with the
    store after an add made in this process (`launch` starts the store's service with it)."""
    if "--traceback" in argv or os.environ.get("MEM_TRACEBACK"):
        return None
    parsed = parse_argv(argv)
    if parsed is None or not (_utf8(sys.stdout) and _utf8(sys.stderr)):
        return None
    try:
        status, memory_id = ask_service(parsed)
        if status is not None:
            return status
        return add_here(parsed, memory_id, added)
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt:
        return fail("interrupted; nothing was half-written", 130)


def ask_service(parsed: AddArgs) -> tuple[int | None, str | None]:
    """Have the store's search service add the memory.

    (its exit status, None) when it answered, its output printed; (None, None) when there is no
    service or it refused; (None, id) when it may have added the memory without saying so: the
    add here then uses that id.
    """
    if not sys.platform.startswith("linux") or os.environ.get("MEM_WATCH") == "0":
        return None, None
    from memstore import ids, quickfind

    root = quickfind.store_root(parsed.store) or quickfind.default_root()
    path = quickfind.socket_path(root) if quickfind.is_store(root) else None
    if path is None:
        return None, None
    memory_id = ids.new_id()
    request = {
        **quickfind.addressed(root),
        "kind": "add",
        "writer": writer_settings(),
        "id": memory_id,
        "args": vars(parsed),
    }
    sent, answer = quickfind.exchange(path, request)
    if answer is None or answer.get("refused") == "error":
        return None, memory_id if sent else None
    if answer.get("ok") is not True:
        return None, None
    status, out, notices = answer.get("status"), answer.get("out"), answer.get("notices")
    if not isinstance(status, int) or not isinstance(notices, list):
        return None, memory_id  # not an answer this client can read: it may have added
    for line in notices:
        echo(str(line), err=True)
    if out is not None:
        echo(str(out))
    return status, None


def writer_settings() -> list[tuple[str, str]]:
    """What an add depends on besides a search's settings (`quickfind.settings`): git's
    variables, the user's name (the author when git's config has none), the umask, and the
    Python that runs mem (git's merge driver names it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    names = ("USER", "LOGNAME", "LNAME", "USERNAME")
    found = sorted(
        (key, value) for key, value in os.environ.items() if key.startswith("GIT_") or key in names
    )
    return [*found, ("umask", oct(umask)), ("python", sys.executable)]


def add_here(
    parsed: AddArgs, memory_id: str | None = None, added: Callable[[Store], None] | None = None
) -> int:
    """Add the memory in this process (with memory_id, at most once: see `ask_service`); then
    call added with the store."""
    from memstore.errors import MemstoreError

    try:
        store = open_store(parsed.store, TerminalReporter(), create=True)
        echo(add_parsed(store, parsed, memory_id))
    except MemstoreError as error:
        return fail(str(error), error.exit_status)
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as error:  # a bug, not a user error: one line, as the CLI gives it
        return fail(
            f"unexpected {type(error).__name__}: {error} (run with --traceback for details)"
        )
    if added is not None:
        added(store)
    return 0


def add_parsed(store: Store, parsed: AddArgs, memory_id: str | None = None) -> str:
    """A plain `mem add` in an open store, here or in its service: what it prints."""
    store.set_up_git(quick=True)  # as the CLI's every command
    memory, found = add_to(
        store,
        parsed.text,
        title=parsed.title or None,
        tags=parsed.tags,
        type=parsed.type,
        source=None,
        memory_id=memory_id,
    )
    return added_text(store, memory, found, parsed.as_json)


def open_store(explicit: str | None, reporter: Reporter, create: bool = False) -> Store:
    """The store a command names (`--store`, MEM_STORE, the folder, the default), set up for
    plain git; with create, the default store is made by its first use, with a notice."""
    from memstore import locate
    from memstore.errors import NotAStoreError
    from memstore.store import Store

    path, is_default = locate.choose_store(explicit)
    missing = is_default and not locate.is_store(path)
    if missing and not create:
        raise NotAStoreError(
            f"no memories yet: the default store ({path}) is created by the first 'mem add'"
        )
    store = Store.open(path, create=create and is_default, reporter=reporter)
    if missing:  # made silently, the user would not know where their memories went
        store.reporter.notice(f"created the default store at {store.root}")
    return store


def add_to(
    store: Store,
    body: str,
    *,
    title: str | None,
    tags: list[str],
    type: str | None,
    source: str | None,
    session: str | None = None,
    extra: dict[str, Any] | None = None,
    encrypt: bool | None = None,
    supersedes: str | None = None,
    allow_secrets: bool = False,
    memory_id: str | None = None,
) -> tuple[Memory, list[Duplicate]]:
    """`mem add` once its store is open: the memory added, and the ones it repeats (warned of).
    With memory_id, the memory is added at most once (see `Store.add`)."""
    from memstore.duplicates import warning

    store.check_writable()  # before anything is read
    found: list[Duplicate] = []  # looked for on the text as stored, within the write
    memory = store.add(
        body,
        title=title,
        tags=tags,
        type=type or "note",
        source=source or os.environ.get("MEM_SOURCE") or None,
        session=session,
        extra=extra,
        encrypt=encrypt,
        supersedes=supersedes,
        allow_secrets=allow_secrets,
        memory_id=memory_id,
        duplicates=found,
    )
    for duplicate in found:
        store.reporter.warning(warning(duplicate))
    return memory, found


def added_text(store: Store, memory: Memory, found: list[Duplicate], as_json: bool) -> str:
    """What `mem add` prints for the memory it added."""
    if as_json:
        from memstore import jsontext

        data = memory.to_dict(body=False)
        return jsontext.dumps({**data, "duplicates": [d.to_dict() for d in found]})
    return f"added {memory.id}  {memory.title}\n  {store.root / memory.path}"


class TerminalReporter:
    """Notices and warnings on stderr, each once, as the CLI's reporter prints them."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def _say(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            echo(line, err=True)

    def notice(self, message: str) -> None:
        self._say(f"mem: {message}")

    def warning(self, message: str) -> None:
        self._say(f"mem: warning: {message}")

    def progress(self, total: int, label: str) -> Any:
        """A bar on a terminal, the CLI's own (only a long task has one), else nothing."""
        import contextlib

        @contextlib.contextmanager
        def bar() -> Iterator[Callable[[int], None]]:
            if not sys.stderr.isatty():  # a log file gets the notice, not a bar redrawn
                yield lambda step: None
                return
            import typer

            with typer.progressbar(length=total, label=label, file=sys.stderr) as drawn:
                yield drawn.update

        return bar()


def echo(text: str, err: bool = False) -> None:
    """Write a line as click's echo does: styles removed but on a terminal, then flushed."""
    stream = sys.stderr if err else sys.stdout
    try:
        terminal = stream.isatty()
    except Exception:
        terminal = False
    if not terminal and "\033" in text:
        import re

        text = re.sub(ANSI_STYLE, "", text)
    stream.write(text + "\n")
    stream.flush()


def fail(message: str, status: int = 1) -> int:
    echo(f"mem: error: {message}", err=True)
    return status


def closed_pipe() -> int:
    """The reader went away: exit 0 quietly, stdout pointed at devnull (as the CLI does)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    return 0


def _utf8(stream: Any) -> bool:
    """Whether a stream writes UTF-8, as click leaves it (it wraps an ASCII one again)."""
    import codecs

    try:
        return codecs.lookup(stream.encoding).name == "utf-8"
    except (AttributeError, LookupError, TypeError):
        return False
