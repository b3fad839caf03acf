"""The `mem` command: a thin layer over `memstore.Store`.

Start-up policy: this module imports only typer at the top. The store, and through it pygit2,
whoosh and yaml, is imported inside the commands that need it, so `mem --help` stays fast.
Every library error reaches `main()`, the one place that prints `mem: error: …` and exits.
"""

# No `from __future__ import annotations` here: typer reads every command's annotations at each
# start, and as strings each one is compiled and evaluated again (about 30 ms a run). Names
# imported only for type checking are written in quotes.

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from memstore.report import Reporter
    from memstore.results import Filters
    from memstore.store import Store

FIND_HELP = """Search memories, best matches first.

Query language:

  cors nginx            memories with both words (AND, up to 3 words)

  how did we fix cors?  a question (4+ plain words, or ending in ?):
                        question words dropped, the rest joined by OR;
                        "two weeks ago", "in March" favour memories then

  "vary header"         a phrase

  cors OR csp           either word; also AND, NOT, and ( ) for grouping
                        (operators in capitals; words and field names in lower case)

  tag:web  type:decision  source:alice    a field

  created:2026  created:[2026-01-01 to 2026-03-31]  created:>2026-06   dates

  C++  foo-bar  src/app.py  ERR_CONNECTION_REFUSED  fooBar   code words just work
  (`foobar` and `bar` both find `fooBar`)

Search words are matched after light English stemming (errors finds error).
"""

app = typer.Typer(
    name="mem",
    help="memstore: memories for people and AI agents, as Markdown files in git.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (docs/cli.md)
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

STORE_HELP = (
    "Store folder (default: MEM_STORE, the store around the current folder, or the user data"
    " folder). Accepted before or after the command."
)


def _json_anywhere(value: bool) -> bool:
    """`--json` given before the command (`mem --json find x`) counts as given after it."""
    return value or _state.json


def _store_anywhere(value: str | None) -> str | None:
    """`--store` after the command names the store as it does before the command."""
    if value is not None:
        _state.store_path = value
    return value


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON for scripts and agents.", callback=_json_anywhere),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", metavar="PATH", help=STORE_HELP, callback=_store_anywhere, expose_value=False
    ),
]
AllowSecretsOption = Annotated[
    bool,
    typer.Option(
        "--allow-secrets",
        help="Keep API keys, tokens, passwords and private keys as written (default: replace"
        " each with [redacted:<kind>] and warn).",
    ),
]
TagFilter = Annotated[
    list[str] | None, typer.Option("--tag", "-t", help="Only memories with this tag (repeatable).")
]
TypeFilter = Annotated[str | None, typer.Option("--type", help="Only memories of this type.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Created on or after: 2026-11-01, 2026-11-01T09:00, 7d, 2w, 3m."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Created on or before (same forms as --since).")
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="DATE|REV",
        help="As the memories were then: a date (2026-06-01), an age ('3 weeks ago', 7d) or a"
        " git revision (HEAD~3, a commit, a tag).",
    ),
]


class DiffFormat(StrEnum):
    """The layouts of `mem diff`."""

    text = "text"
    md = "md"
    json = "json"


class Tool(StrEnum):
    """The agents whose session logs `mem import --from` reads."""

    claude_code = "claude-code"
    codex = "codex"


class Keep(StrEnum):
    """Which side of each conflict block `mem resolve --keep` keeps."""

    one = "1"
    two = "2"
    both = "both"


class _State:
    store_path: str | None = None
    traceback: bool = False
    json: bool = False  # --json before the command


_state = _State()


class CliReporter:
    """Prints notices and warnings on stderr, each once, and draws progress bars there."""

    def __init__(self) -> None:
        # A command reads the index more than once, and each read reports the files it skips.
        self._said: set[str] = set()

    def _say(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            typer.echo(line, err=True)

    def notice(self, message: str) -> None:
        self._say(f"mem: {message}")

    def warning(self, message: str) -> None:
        self._say(f"mem: warning: {message}")

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        if not sys.stderr.isatty():  # a log file gets the notice, not a bar redrawn in place
            yield lambda step: None
            return
        with typer.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update


def _store(
    create: bool = False, reporter: "Reporter | None" = None, git_setup: bool = True
) -> "Store":
    from memstore.quickadd import open_store

    store = open_store(_state.store_path, reporter or CliReporter(), create=create)
    if git_setup:
        store.set_up_git(quick=True)
    return store


def _print_json(data: Any) -> None:
    from memstore import jsontext  # json.dumps(data, ensure_ascii=False, indent=2), faster

    typer.echo(jsontext.dumps(data))


def _filters(
    tag: list[str] | None, type_: str | None, since: str | None, until: str | None
) -> "Filters":
    from memstore.results import Filters
    from memstore.when import parse_when

    return Filters(
        tags=list(tag or []),
        type=type_,
        since=parse_when(since, end=False) if since else None,
        until=parse_when(until, end=True) if until else None,
    )


def _usage_error(ctx: typer.Context, message: str) -> Exception:
    """A usage error (exit status 2, shown with the usage line) of the click typer runs on."""
    # typer 0.15 runs on click, later versions on a copy of it: take the class from typer.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    return usage_error(message, ctx)


def _styled() -> bool:
    """Bold only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _bold(text: str) -> str:
    return typer.style(text, bold=True) if _styled() else text


def _marks(as_json: bool) -> tuple[str, str]:
    """How snippets mark the matched words: bold on a terminal, `**` in JSON, else nothing."""
    if as_json:
        return ("**", "**")
    return ("\x1b[1m", "\x1b[0m") if _styled() else ("", "")


def _day(created: str) -> str:
    return created[:10]


def _show_version(value: bool) -> None:
    if value:
        import memstore

        typer.echo(f"mem ({memstore.DISTRIBUTION}) {memstore.version()}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="PATH",
            help=STORE_HELP,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print JSON, for the commands that can (also accepted after them)."
        ),
    ] = False,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show Python tracebacks of errors.", hidden=True)
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Show the version and exit.",
            callback=_show_version,
            is_eager=True,
            expose_value=False,
        ),
    ] = False,
) -> None:
    """memstore: memories for people and AI agents, as Markdown files in git."""
    _state.store_path = store
    _state.traceback = traceback
    _state.json = as_json
    name = ctx.invoked_subcommand or ""
    command = ctx.command.get_command(ctx, name)  # type: ignore[attr-defined]
    leaf = command is not None and not hasattr(command, "list_commands")
    if as_json and leaf and not any("--json" in getattr(p, "opts", ()) for p in command.params):
        raise _usage_error(ctx, f"mem {name} has no --json")


@app.command()
def init(
    path: Annotated[
        Path | None, typer.Argument(help="Folder for the store (default: the default store).")
    ] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="URL of the remote to sync with (origin).")
    ] = None,
    store_: StoreOption = None,
) -> None:
    """Create a store (a git repository with a memories/ folder)."""
    from memstore import locate
    from memstore.store import Store

    target = path or (Path(_state.store_path) if _state.store_path else None)
    target = target or Path(os.environ.get("MEM_STORE") or locate.default_store_path())
    existed = locate.is_store(target)
    store = Store.init(target, remote=remote)
    word = "already a store" if existed else "created store"
    typer.echo(f"{word}: {store.root}", err=True)


@app.command()
def add(
    text: Annotated[
        str | None, typer.Argument(help="The memory's text, or - to read it from stdin.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Read the text from a file; a note's own YAML front-matter gives the title,"
            " tags, type, source and other fields.",
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Title (default: the text's first line).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A tag (repeatable).")
    ] = None,
    type_: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="note (default), decision, fact, preference, procedure, event, or your own.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Who or what wrote it (default: MEM_SOURCE or the author)."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help="The conversation or work session it comes from (default: MEM_SESSION);"
            " memories of one session help each other be found.",
        ),
    ] = None,
    encrypt: Annotated[
        bool | None,
        typer.Option(
            "--encrypt/--no-encrypt",
            help="Encrypt it with age to the store's recipients (default: the store's policy).",
        ),
    ] = None,
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            metavar="ID",
            help="Revise this memory in place: its text, and --title/--tag/--type if given.",
        ),
    ] = None,
    supersedes: Annotated[
        str | None,
        typer.Option(
            "--supersedes", metavar="ID", help="The new memory replaces this one (ranked above it)."
        ),
    ] = None,
    allow_secrets: AllowSecretsOption = False,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Add a memory and commit it; warn if it repeats one (the memory is added anyway).

    Secrets (API keys, tokens, passwords in URLs, private keys, .env lines) are replaced with
    [redacted:<kind>] and reported, unless --allow-secrets is given.
    """
    from memstore.errors import InvalidInputError, UsageError

    if file is not None and text is not None:
        raise UsageError("give the text or --file, not both")
    if update is not None and supersedes is not None:
        raise UsageError("give --update or --supersedes, not both")
    note = None
    if file is not None:
        from memstore.notes import read_note

        try:
            note = read_note(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInputError(f"cannot read {file}: {error}") from None
        body = note.body
    elif text == "-":
        body = sys.stdin.read()
    elif text is not None:
        body = text
    else:
        raise UsageError("nothing to add: give the text, - for stdin, or --file FILE")
    if update is not None:
        title = title or (note.title if note else None)
        _update(update, body, title, tag, type_, as_json, allow_secrets)
        return
    from memstore import quickadd  # the steps a plain `mem add` takes without the CLI

    store = _store(create=True)
    # Options win over what a note's own front-matter says.
    memory, found = quickadd.add_to(
        store,
        body,
        title=title or (note.title if note else None),
        tags=tag or (note.tags if note else []),
        type=type_ or (note.type if note else None),
        source=source or os.environ.get("MEM_SOURCE") or (note.source if note else None),
        session=session,
        extra=note.extra if note else None,
        encrypt=encrypt,
        supersedes=supersedes,
        allow_secrets=allow_secrets,
    )
    typer.echo(quickadd.added_text(store, memory, found, as_json))


def _update(
    ref: str,
    body: str,
    title: str | None,
    tags: list[str] | None,
    type_: str | None,
    as_json: bool,
    allow_secrets: bool,
) -> None:
    """`mem add --update`: revise a memory in place through Store.update."""
    store = _store()
    updated = store.update(
        ref, body=body, title=title, tags=tags or None, type=type_, allow_secrets=allow_secrets
    )
    if as_json:
        _print_json({"changed": updated is not None, "memory": updated and updated.to_dict()})
    elif updated is None:
        typer.echo("no changes", err=True)
    else:
        typer.echo(f"updated {updated.id}  {updated.title}")
        typer.echo(f"  {store.root / updated.path}")


@app.command(help=FIND_HELP)
def find(
    ctx: typer.Context,
    query: Annotated[list[str] | None, typer.Argument(help="Search words and operators.")] = None,
    tag: TagFilter = None,
    type_: TypeFilter = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="How many results (0: all).")
    ] = 10,
    conflicts: Annotated[
        bool, typer.Option("--conflicts", help="Only memories with an unresolved sync conflict.")
    ] = False,
    related: Annotated[
        str | None,
        typer.Option(
            "--related",
            metavar="ID",
            help="Memories related to this one: supersedes and links both ways, then similar.",
        ),
    ] = None,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    if related is not None:
        narrowed = bool(query or tag or type_ or since or until or conflicts or as_of)
        _find_related(related, narrowed, limit, as_json)
        return
    if not query and not conflicts:
        raise _usage_error(ctx, "Missing argument 'query'.")
    text = " ".join(query or [])
    store = _store()
    marks = _marks(as_json)
    filters = _filters(tag, type_, since, until)
    if conflicts:
        if as_of is not None:
            from memstore.errors import UsageError

            raise UsageError("give --conflicts or --as-of, not both")
        hits = store.find_conflicts(text, filters=filters, limit=_one_more(limit), marks=marks)
    else:
        hits = store.find(text, filters=filters, limit=_one_more(limit), marks=marks, as_of=as_of)
        from memstore import service  # a large store's next search is then answered by it

        service.start_if_wanted(store.root, store.git_dir / "memstore")
    more = bool(limit) and len(hits) > limit
    hits = hits[: limit or None]
    if as_json:
        _print_json({"query": text, "results": [hit.to_dict() for hit in hits], "more": more})
        return
    if not hits:
        typer.echo("no memories found", err=True)
        return
    from memstore.quickfind import hit_lines

    for number, hit in enumerate(hits, start=1):
        for line in hit_lines(number, hit.to_dict(), _bold):
            typer.echo(line)
    if more:
        _say_more(f"the best {limit} results")


def _one_more(limit: int) -> int:
    """Ask for one result past the limit, to tell whether there are more (0: all)."""
    return limit + 1 if limit else 0


def _say_more(shown: str) -> None:
    # Not "of N": counting every match costs a full search, and a question matches any memory
    # that has one of its words.
    typer.echo(f"mem: showing {shown}; there are more: use -n to see more (-n 0: all)", err=True)


def _find_related(ref: str, narrowed: bool, limit: int, as_json: bool) -> None:
    """`mem find --related ID`: linked memories first, then similar ones."""
    from memstore.errors import UsageError

    if narrowed:
        raise UsageError("--related takes no search words, filters or --conflicts")
    hits = _store().related(ref, limit=limit)
    if as_json:
        _print_json({"related": ref, "results": [hit.to_dict() for hit in hits]})
        return
    if not hits:
        typer.echo("no related memories found", err=True)
    for number, hit in enumerate(hits, start=1):
        typer.echo(f"{number}. {_bold(hit.title)}  ({hit.relation})")
        typer.echo(f"   {hit.id} · {_day(hit.created)} · {hit.type}")
        typer.echo(f"   {hit.path}")
        if hit.snippet:
            typer.echo(f"   {hit.snippet}")


@app.command("list")
def list_(
    tag: TagFilter = None,
    type_: TypeFilter = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="How many (0: all).")] = 50,
    expired: Annotated[
        bool, typer.Option("--expired", help="Only memories past their expires date.")
    ] = False,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """List memories, newest first."""
    store = _store()
    listed = store.list(
        filters=_filters(tag, type_, since, until),
        limit=_one_more(limit),
        expired=expired,
        as_of=as_of,
    )
    more = bool(limit) and len(listed) > limit
    listed = listed[: limit or None]
    if as_json:
        _print_json({"memories": [item.to_dict() for item in listed], "more": more})
        return
    for item in listed:
        tags = " ".join(f"#{t}" for t in item.tags)
        line = f"{_day(item.created)}  {item.id}  {item.title}" + (f"  {tags}" if tags else "")
        typer.echo(line + (f"  (expired {_day(item.expires)})" if item.expired else ""))
    if more:
        _say_more(f"the newest {limit} memories")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="An id, a unique id prefix, or a path.")],
    raw: Annotated[bool, typer.Option("--raw", help="Print the file exactly as it is.")] = False,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Show one memory (as it was then, with --as-of)."""
    store = _store()
    if raw and not as_json:
        memory = store.get(ref, as_of=as_of)
        typer.echo((memory.raw or b"").decode("utf-8"), nl=False)  # an encrypted file decrypted
        return
    shown = store.view(ref, as_of=as_of)
    facts = shown.to_dict()
    if as_json:
        _print_json(facts)
        return
    memory, successors, backlinks = shown.memory, shown.superseded_by, shown.backlinks
    tags = " ".join(f"#{t}" for t in memory.tags)
    typer.echo(_bold(memory.title))
    typer.echo(
        f"{memory.id} · {memory.created_text} · {memory.type}" + (f" · {tags}" if tags else "")
    )
    if facts["age"]:
        typer.echo(f"age: {facts['age']}")
    if facts["expired"]:
        typer.echo(f"expired {facts['expires']}")
    if memory.source:
        typer.echo(f"source: {memory.source}")
    if memory.session:
        typer.echo(f"session: {memory.session}")
    for successor in successors:
        typer.echo(f"superseded by {successor.id}  {successor.title}")
    typer.echo(f"{memory.path}\n")
    typer.echo(memory.body, nl=False)
    if backlinks:
        typer.echo("\nLinked from:")
        for item in backlinks:
            typer.echo(f"  {item.id}  {item.title}")


@app.command()
def link(
    ref: Annotated[str, typer.Argument(help="The memory that links: an id, id prefix or path.")],
    target: Annotated[
        str, typer.Argument(help="The memory it links to: an id, id prefix, path or title.")
    ],
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Link a memory to another: add the target's id to its links (one commit)."""
    updated = _store().link(ref, target)
    if as_json:
        memory = updated and updated.to_dict(body=False)
        _print_json({"changed": updated is not None, "memory": memory})
    elif updated is None:
        typer.echo("already linked", err=True)
    else:
        typer.echo(f"linked {updated.id} to {updated.links[-1]}")


def _run_editor(path: Path) -> None:
    from memstore.errors import EditorError

    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        import shlex
        import subprocess

        status = subprocess.call([*shlex.split(command), str(path)])
    except OSError as error:
        raise EditorError(f"cannot run the editor {command!r}: {error}; set $EDITOR") from None
    if status != 0:
        raise EditorError(
            f"the editor {command!r} exited with status {status}; nothing was changed"
        )


@app.command()
def edit(
    ref: Annotated[str, typer.Argument(help="An id, a unique id prefix, or a path.")],
    allow_secrets: AllowSecretsOption = False,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Edit a memory in $VISUAL or $EDITOR; commit it if it changed (secrets redacted)."""
    store = _store()
    updated = store.edit(ref, _run_editor, allow_secrets=allow_secrets)
    if as_json:
        _print_json({"changed": updated is not None, "memory": updated and updated.to_dict()})
    elif updated is None:
        typer.echo("no changes", err=True)
    else:
        typer.echo(f"edited {updated.id}  {updated.title}")


@app.command()
def rm(
    ref: Annotated[str, typer.Argument(help="An id, a unique id prefix, or a path.")],
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Remove a memory (its history stays in git)."""
    store = _store()
    memory = store.remove(ref)
    if as_json:
        _print_json(memory.to_dict(body=False))
    else:
        typer.echo(f"removed {memory.id}  {memory.title}")


@app.command()
def log(
    ref: Annotated[
        str | None, typer.Argument(help="A memory, present or removed (default: the whole store).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="How many commits (0: all).")
    ] = 0,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="List the removed memories instead.")
    ] = False,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Show history from git: the store's, a memory's whole life, or the removed memories."""
    store = _store()
    if deleted:
        _log_deleted(store, ref, limit, as_json)
        return
    if ref:
        _log_life(store, ref, limit, as_json)
        return
    entries = store.log(ref, limit)
    if as_json:
        _print_json(
            {
                "commits": [
                    {
                        "commit": e.commit,
                        "author": e.author,
                        "email": e.email,
                        "date": e.date.isoformat(),
                        "message": e.message,
                    }
                    for e in entries
                ]
            }
        )
        return
    for entry in entries:
        subject = entry.message.splitlines()[0] if entry.message else ""
        typer.echo(f"{entry.commit[:10]}  {entry.date:%Y-%m-%d %H:%M}  {entry.author}  {subject}")


def _log_life(store: "Store", ref: str, limit: int, as_json: bool) -> None:
    """`mem log ID`: each commit that added, edited, moved or removed the memory."""
    events = store.life(ref, limit)
    if as_json:
        _print_json({"commits": [event.to_dict() for event in events]})
        return
    for event in events:
        entry = event.entry
        subject = entry.message.splitlines()[0] if entry.message else ""
        typer.echo(
            f"{entry.commit[:10]}  {entry.date:%Y-%m-%d %H:%M}  {entry.author}"
            f"  {event.change}: {subject}"
        )
        if event.old_path:
            typer.echo(f"{'':12}{event.old_path} -> {event.path}")


def _log_deleted(store: "Store", ref: str | None, limit: int, as_json: bool) -> None:
    """`mem log --deleted`: removed memories, newest removal first."""
    from memstore.errors import UsageError

    if ref:
        raise UsageError("give a memory or --deleted, not both")
    gone = store.removed()[: limit or None]
    if as_json:
        _print_json({"removed": [item.to_dict() for item in gone]})
        return
    if not gone:
        typer.echo("no removed memories", err=True)
    for item in gone:
        title = item.title or "(encrypted)"
        typer.echo(f"{item.date:%Y-%m-%d %H:%M}  {item.commit[:10]}  {item.id}  {title}")


@app.command()
def restore(
    ref: Annotated[str, typer.Argument(help="A removed memory's id or id prefix, or a memory.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE|REV",
            help="Bring back the version of then (default: the last before it was removed).",
        ),
    ] = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Bring back a removed memory, or an earlier version, as a new commit."""
    store = _store()
    memory = store.restore(ref, source=source)
    if as_json:
        _print_json({"changed": memory is not None, "memory": memory and memory.to_dict()})
    elif memory is None:
        typer.echo("no changes: it is that version already", err=True)
    else:
        typer.echo(f"restored {memory.id}  {memory.title}")
        typer.echo(f"  {store.root / memory.path}")


@app.command()
def diff(
    rev_range: Annotated[
        str | None,
        typer.Argument(
            help="A..B, A...B (from their merge base), or REV (REV..HEAD); default: the commits"
            " not yet pushed, or else the last commit."
        ),
    ] = None,
    format_: Annotated[
        DiffFormat,
        typer.Option("--format", help="text (default), md (a pull-request comment) or json."),
    ] = DiffFormat.text,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE|REV",
            help="What changed since then, up to now: a date (2026-06-01), an age (7d,"
            " '1 week ago') or a revision.",
        ),
    ] = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Summarise what changed, memory by memory, then the line diff of each body."""
    from memstore import review
    from memstore.errors import UsageError

    if since is not None and rev_range:
        raise UsageError("give a range or --since, not both")
    chosen = "json" if as_json else format_.value
    result = _store().diff(rev_range, since=since)
    if chosen == "json":
        _print_json(review.render_json(result))
    elif chosen == "md":
        typer.echo(review.render_markdown(result), nl=False)
    else:
        typer.echo(review.render_text(result), nl=False)


@app.command("ci-template")
def ci_template(
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Write it to .github/workflows/memory-review.yml in the store."
        ),
    ] = False,
    store_: StoreOption = None,
) -> None:
    """Print the GitHub Actions workflow that reviews memory changes in pull requests."""
    import memstore
    from memstore import review

    if not write:
        typer.echo(review.workflow_template(memstore.version()), nl=False)
        return
    path, written = review.install_workflow(_store().root, memstore.version())
    if written:
        typer.echo(f"wrote {path}: commit and push it to review pull requests", err=True)
    else:
        typer.echo(f"{path} is already the current template", err=True)


@app.command()
def check(
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Validate every memory file against the schema; exit 1 if there is any problem."""
    store = _store()
    problems = store.check()
    if as_json:
        _print_json(
            {"problems": [{"path": p.path, "line": p.line, "message": p.message} for p in problems]}
        )
    else:
        for problem in problems:
            typer.echo(str(problem))
        if not problems:
            typer.echo("no problems found", err=True)
    if problems:
        raise typer.Exit(1)


@app.command("import")
def import_(
    sources: Annotated[
        list[Path] | None,
        typer.Argument(
            help="A .jsonl file (one memory per line) or a folder of notes; with --from, session"
            " logs or folders of them (default: where the tool keeps them).",
            show_default=False,
        ),
    ] = None,
    from_: Annotated[
        Tool | None,
        typer.Option(
            "--from",
            help="Capture an agent's sessions from its logs: prompts and final answers, not"
            " tool output; only what is new since the last capture.",
        ),
    ] = None,
    hook: Annotated[
        bool,
        typer.Option(
            "--hook",
            help="Read Claude Code's SessionEnd hook JSON on stdin and capture that transcript;"
            " prints one line and always exits 0, so a session never ends in an error.",
        ),
    ] = False,
    allow_secrets: AllowSecretsOption = False,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Import memories in one commit; what is already there is skipped; exit 1 on bad lines.

    With --from claude-code or --from codex, capture agent sessions (docs/agents.md).
    """
    from memstore.errors import UsageError

    if hook:
        if from_ not in (None, Tool.claude_code) or sources:
            raise UsageError("--hook reads Claude Code's hook input: give no path and no --from")
        _capture_hook(allow_secrets)
        return
    if from_ is not None:
        _capture(from_.value, sources or [], allow_secrets, as_json)
        return
    if not sources or len(sources) > 1:
        raise UsageError("give one .jsonl file or folder to import (or --from TOOL for sessions)")
    result = _store(create=True).import_memories(sources[0], allow_secrets=allow_secrets)
    if as_json:
        _print_json(result.to_dict())
    else:
        for problem in result.problems:
            typer.echo(str(problem), err=True)
        bad = len(result.problems)
        typer.echo(
            f"imported {len(result.added)} new, {result.present} already present"
            + (f", {bad} bad {'line' if bad == 1 else 'lines'} left out" if bad else ""),
            err=True,
        )
    if result.problems:
        raise typer.Exit(1)


def _capture(tool: str, sources: list[Path], allow_secrets: bool, as_json: bool) -> None:
    """`mem import --from TOOL [PATH...]`: capture what is new in the logs, one commit."""
    from memstore.secrets import describe

    result = _store(create=True).import_sessions(tool, sources, allow_secrets=allow_secrets)
    if as_json:
        _print_json(result.to_dict())
        return
    for problem in result.malformed:
        typer.echo(str(problem), err=True)
    parts = [
        f"imported {len(result.added)} new from {result.files}"
        f" {tool} log{'' if result.files == 1 else 's'} ({result.lines} new lines)",
        f"{result.present} already present",
        f"{result.repeated} repeated",
    ]
    if result.malformed_lines:
        parts.append(f"{result.malformed_lines} malformed lines skipped")
    if result.cut:
        parts.append(f"{result.cut} cut to {_sessions_limit():,} characters")
    if result.redacted:
        parts.append(f"redacted {describe(result.redacted)}")
    typer.echo(", ".join(parts), err=True)


def _sessions_limit() -> int:
    from memstore.sessions import MAX_CHARS

    return MAX_CHARS


def _capture_hook(allow_secrets: bool) -> None:
    """`mem import --hook`: one line on stderr, exit 0 whatever happens to the transcript."""
    from memstore.report import CollectingReporter
    from memstore.sessions import parse_hook

    try:
        given = parse_hook(_read_hook_input())
        store = _store(create=True, reporter=CollectingReporter())
        result = store.import_sessions(
            "claude-code", [given.transcript], allow_secrets=allow_secrets
        )
    except Exception as error:  # the agent's session is over: say why, never fail it
        message = str(error) if str(error) else type(error).__name__
        typer.echo(f"mem: warning: session not captured: {message}", err=True)
        return
    session = given.session[:8] or given.transcript.stem[:8]
    line = f"mem: captured {len(result.added)} new memories from session {session}"
    if result.redacted:
        line += f" ({sum(result.redacted.values())} secrets redacted)"
    typer.echo(line, err=True)


def _read_hook_input(timeout: float = 5.0) -> str:
    """Read the hook's JSON from stdin without waiting for an end of file that may never come
    (Claude Code may leave the pipe open): stop at a whole JSON object or after timeout."""
    import select
    import time

    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdin.read()
    data = b""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
        try:
            json.loads(data)
            break
        except ValueError:
            continue
    return data.decode("utf-8", "replace")


@app.command()
def export(
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Write JSON Lines: one memory per line (required).",
            callback=_json_anywhere,
        ),
    ] = False,
    store_: StoreOption = None,
) -> None:
    """Write every memory to stdout, for backups and 'mem import'; exit 1 if any is left out."""
    from memstore.errors import UsageError

    if not as_json:
        raise UsageError("give --json: JSON Lines is the export format (mem export --json)")
    store = _store()
    result = store.export_memories()
    out = sys.stdout
    for record in result.records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    for problem in result.left_out:
        store.reporter.warning(f"{problem}: left out")
    typer.echo(f"exported {len(result.records)} memories", err=True)
    if result.left_out:
        raise typer.Exit(1)


@app.command()
def reindex(store_: StoreOption = None) -> None:
    """Rebuild the search index from the files."""
    store = _store()
    store.reindex()
    typer.echo("index rebuilt", err=True)


@app.command()
def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what is safe to repair.")] = False,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Find problems in the repository, the index and the files; exit 1 if any is left."""
    from memstore.doctor import has_problems

    store = _store(git_setup=False)  # doctor reports a missing setup, and --fix makes it
    findings = store.doctor(fix=fix)
    if as_json:
        _print_json(
            {
                "store": str(store.root),
                "ok": not has_problems(findings),
                "findings": [f.to_dict() for f in findings],
            }
        )
    else:
        typer.echo(f"store: {store.root}")
        for finding in findings:
            typer.echo(str(finding))
        left = sum(1 for f in findings if f.severity == "problem" and not f.fixed)
        fixed = sum(1 for f in findings if f.fixed)
        summary = f"{left} problem{'s' if left > 1 else ''} left" if left else "no problems found"
        typer.echo(summary + (f", {fixed} fixed" if fixed else ""), err=True)
        if left and not fix and any(f.fixable for f in findings):
            typer.echo("run 'mem doctor --fix' to repair what can be repaired safely", err=True)
    if has_problems(findings):
        raise typer.Exit(1)


@app.command()
def clone(
    url: Annotated[str, typer.Argument(help="The remote store: a path, file://, ssh or https.")],
    path: Annotated[Path, typer.Argument(help="A new or empty folder for the local store.")],
) -> None:
    """Make a local store from a remote one, ready for 'mem sync'."""
    from memstore.store import Store

    store = Store.clone(url, path, reporter=CliReporter())
    typer.echo(f"cloned {url} into {store.root}", err=True)


remote_app = typer.Typer(
    help="Show, add, change or remove the remotes a store syncs with.", no_args_is_help=True
)
app.add_typer(remote_app, name="remote")


@remote_app.command("add")
def remote_add(
    name: Annotated[str, typer.Argument(help="A name for the remote, such as origin.")],
    url: Annotated[str, typer.Argument(help="A path, file://, ssh or https URL.")],
    store_: StoreOption = None,
) -> None:
    """Add a remote to sync with."""
    _store().add_remote(name, url)
    typer.echo(f"added remote {name}", err=True)


@remote_app.command("rm")
def remote_rm(
    name: Annotated[str, typer.Argument(help="The remote to forget, such as origin.")],
    store_: StoreOption = None,
) -> None:
    """Remove a remote (the remote repository itself is not touched)."""
    _store().remove_remote(name)
    typer.echo(f"removed remote {name}", err=True)


@remote_app.command("set-url")
def remote_set_url(
    name: Annotated[str, typer.Argument(help="The remote to change, such as origin.")],
    url: Annotated[str, typer.Argument(help="Its new path, file://, ssh or https URL.")],
    store_: StoreOption = None,
) -> None:
    """Point a remote at another URL."""
    store = _store()
    store.set_remote_url(name, url)
    shown = dict(store.remotes()).get(name, url)
    typer.echo(f"remote {name} is now {shown}", err=True)


@remote_app.command("list")
def remote_list(
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """List the remotes."""
    remotes = _store().remotes()
    if as_json:
        _print_json({"remotes": [{"name": name, "url": url} for name, url in remotes]})
        return
    for name, url in remotes:
        typer.echo(f"{name}\t{url}")


@app.command()
def sync(
    remote: Annotated[
        str | None, typer.Option("--remote", help="The remote to sync with (default: origin).")
    ] = None,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Commit pending edits, fetch, merge memory by memory, and push."""
    store = _store()
    result = store.sync(remote)
    if as_json:
        _print_json(result.to_dict())
        return
    typer.echo(
        f"synced with {result.remote}: received {result.received}"
        f" commit{'' if result.received == 1 else 's'}, sent {result.sent}",
        err=True,
    )
    for path in result.conflicts:
        typer.echo(f"conflict: {path}")
    if result.conflicts:
        typer.echo("keep the text you want in each, then run 'mem resolve ID'", err=True)


@app.command()
def status(
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Show pending changes, commits ahead and behind, the last sync and open conflicts."""
    from memstore.sync import format_time

    report = _store().status()
    if as_json:
        _print_json(report.to_dict())
        return
    typer.echo(f"store: {report.store}")
    head = "HEAD detached (not on a branch)" if report.detached else f"branch {report.branch}"
    if report.remote:
        typer.echo(f"{head}, remote {report.remote} ({report.url})")
    else:
        typer.echo(f"{head}, no remote; add one with 'mem remote add origin URL'")
    if report.detached:
        typer.echo("  mem cannot commit here: check out a branch ('git switch main')")
    if report.operation:
        from memstore.gitrepo import operation_advice

        typer.echo(
            f"a git {report.operation} is in progress: {operation_advice(report.operation)};"
            " mem cannot commit until then"
        )
    if report.remote and not report.detached:
        if report.ahead is None:
            typer.echo(f"ahead/behind {report.remote}: unknown (never fetched); run 'mem sync'")
        else:
            when = f" at {format_time(report.fetched)}" if report.fetched else ""
            typer.echo(
                f"ahead {report.ahead}, behind {report.behind}"
                f" (as of the last fetch{when}; 'mem sync' brings it up to date)"
            )
    last = report.last_sync
    if last is None:
        typer.echo("last sync: never")
    else:
        when = format_time(last.get("time"))
        typer.echo(f"last sync: {when} {last.get('result')}: {last.get('message', '')}")
    typer.echo(f"pending changes: {len(report.pending)}")
    for path in report.pending:
        typer.echo(f"  {path}")
    typer.echo(f"conflicts: {len(report.conflicts)}")
    for path in report.conflicts:
        typer.echo(f"  {path}")


@app.command()
def resolve(
    ref: Annotated[str, typer.Argument(help="An id, a unique id prefix, or a path.")],
    keep: Annotated[
        Keep | None,
        typer.Option("--keep", help="Settle every conflict block: 1, 2 or both versions."),
    ] = None,
    store_: StoreOption = None,
) -> None:
    """Mark a memory's sync conflict resolved and commit it."""
    memory = _store().resolve_conflict(ref, keep.value if keep else None)
    if memory.fields.get("conflict") is True:  # git's markers taken over, a true conflict left
        typer.echo(
            f"merged git's conflict markers in {memory.id}  {memory.title}; what still"
            f" conflicts is in conflict blocks: keep what you want, then 'mem resolve {memory.id}'"
            " (or --keep 1, 2 or both)"
        )
        return
    typer.echo(f"resolved {memory.id}  {memory.title}")


@app.command("merge-driver")
def merge_driver(
    base: Annotated[Path, typer.Argument(help="%O: the common ancestor's file.")],
    ours: Annotated[Path, typer.Argument(help="%A: our file; the result is written here.")],
    theirs: Annotated[Path, typer.Argument(help="%B: their file.")],
    path: Annotated[str, typer.Argument(help="%P: the path in the repository.")] = "",
) -> None:
    """git merge driver for memory files (set up by 'mem init' and 'mem clone')."""
    from memstore.gitsetup import run_merge_driver

    if run_merge_driver(base, ours, theirs, path):
        typer.echo(f"mem: {path}: conflict kept in the file; run 'mem resolve' later", err=True)


key_app = typer.Typer(help="Your age identity for encrypted memories.", no_args_is_help=True)
app.add_typer(key_app, name="key")


@key_app.command("init")
def key_init(
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Create your age identity (or adopt MEM_IDENTITY) and add its key to a store without any."""
    from memstore import keys
    from memstore.errors import NotAStoreError

    try:
        store = _store()
    except NotAStoreError:
        store = None
    if store is not None:
        report = store.key_init()
    else:
        from datetime import datetime

        identity, created = keys.create_or_adopt(datetime.now().astimezone())
        report = keys.KeyReport(str(identity.path), identity.public, created)
    if as_json:
        _print_json(report.to_dict())
        return
    typer.echo(f"{'created' if report.created else 'using'} identity {report.path}", err=True)
    for key in report.public:
        typer.echo(key)
    if report.recipients_file:
        typer.echo(f"added your public key to {report.recipients_file}", err=True)


recipients_app = typer.Typer(
    help="Who can read encrypted memories: the .age-recipients files.", no_args_is_help=True
)
app.add_typer(recipients_app, name="recipients")
FolderOption = Annotated[
    str | None,
    typer.Option("--folder", help="The folder whose recipients file to change (default: root)."),
]


@recipients_app.command("list")
def recipients_list(
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """List the recipients files and their public keys."""
    found = _store().recipients()
    if as_json:
        _print_json({"files": [{"path": path, "keys": keys} for path, keys in found]})
        return
    for path, keys in found:
        typer.echo(f"{path}:")
        for key in keys:
            typer.echo(f"  {key}")


@recipients_app.command("add")
def recipients_add(
    key: Annotated[str, typer.Argument(help="An age (age1…) or ssh public key.")],
    folder: FolderOption = None,
    store_: StoreOption = None,
) -> None:
    """Add a public key to a recipients file and commit it."""
    if _store().add_recipient(key, folder):
        rekey = f"mem rekey {folder}" if folder else "mem rekey"
        typer.echo(f"added; run '{rekey}' to re-encrypt the memories it covers", err=True)
    else:
        typer.echo("that key is a recipient already", err=True)


@recipients_app.command("rm")
def recipients_rm(
    key: Annotated[str, typer.Argument(help="The public key to remove.")],
    folder: FolderOption = None,
    store_: StoreOption = None,
) -> None:
    """Remove a public key from a recipients file and commit it."""
    if _store().remove_recipient(key, folder):
        rekey = f"mem rekey {folder}" if folder else "mem rekey"
        typer.echo(f"removed; run '{rekey}' to re-encrypt the memories it covers", err=True)
    else:
        typer.echo("that key is not in the recipients file", err=True)


@app.command()
def rekey(
    folder: Annotated[
        str | None, typer.Argument(help="Only the memories below this folder (default: all).")
    ] = None,
    store_: StoreOption = None,
) -> None:
    """Re-encrypt encrypted memories to their current recipients, in one commit."""
    done = _store().rekey(folder)
    typer.echo(f"re-encrypted {len(done)} {'memory' if len(done) == 1 else 'memories'}", err=True)


@app.command(hidden=True)
def textconv(
    file: Annotated[Path, typer.Argument(help="An encrypted memory file (git gives a copy).")],
) -> None:
    """git's text conversion for encrypted memories: print the file decrypted."""
    from memstore.crypto import Keyring
    from memstore.errors import MemstoreError

    data = file.read_bytes()
    try:
        text = Keyring().decrypt(data, file.name) if data else b""
    except MemstoreError as error:  # git diff must go on for those without the key
        text = f"(encrypted memory: {error})\n".encode()
    sys.stdout.buffer.write(text)


@app.command()
def context(
    query: Annotated[
        list[str] | None,
        typer.Argument(help="What the memories should be about (default: the newest memories)."),
    ] = None,
    budget: Annotated[
        int, typer.Option("--budget", "-b", help="About how many tokens to fill (chars / 4).")
    ] = 2000,
    as_json: JsonOption = False,
    store_: StoreOption = None,
) -> None:
    """Print the most relevant memories, ready for a prompt, within a token budget."""
    text = " ".join(query or [])
    result = _store().context(text, budget)
    if as_json:
        _print_json(result.to_dict())
        return
    if not result.items:
        typer.echo("no memories found", err=True)
        return
    typer.echo(result.text, nl=False)


class SetupTool(StrEnum):
    """The tools `mem setup` knows."""

    claude_code = "claude-code"
    cursor = "cursor"
    codex = "codex"
    all = "all"


@app.command()
def setup(
    tool: Annotated[
        SetupTool, typer.Argument(help="The tool to register memstore with, or all of them.")
    ] = SetupTool.all,
    remove: Annotated[
        bool, typer.Option("--remove", help="Take out what mem setup added, and nothing else.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the changes as a diff; write nothing.")
    ] = False,
    store_: StoreOption = None,
) -> None:
    """Register memstore's MCP server (and Claude Code's hooks) in an AI tool's config."""
    from memstore import agentsetup, locate
    from memstore.errors import NotAStoreError

    path, is_default = locate.choose_store(_state.store_path)
    if not is_default and not locate.is_store(path):
        raise NotAStoreError(f"{path} is not a memstore store: run 'mem init {path}' first")
    tools = list(agentsetup.TOOLS) if tool is SetupTool.all else [tool.value]
    installation = agentsetup.Installation.current(path.resolve())
    changes = agentsetup.plan(tools, installation, remove=remove)
    if dry_run:
        typer.echo("".join(change.diff() for change in changes), nl=False)
        return
    if is_default and not remove and not locate.is_store(path):
        # The hooks name the store explicitly, so it must exist before the first session ends.
        _store(create=True)
    agentsetup.apply(changes)
    for change in changes:
        shown = agentsetup.shown(change.path)
        if not change.changed:
            typer.echo(f"unchanged: {shown}", err=True)
        elif change.before is None:
            typer.echo(f"created: {shown}", err=True)
        else:
            verb = "removed" if change.after is None else "updated"
            typer.echo(f"{verb}: {shown} (backup: {agentsetup.shown(change.backup)})", err=True)
    if not remove:
        typer.echo(f"store: {path.resolve()}", err=True)


@app.command()
def recall(
    budget: Annotated[
        int | None,
        typer.Option("--budget", "-b", help="About how many tokens to fill (default 500)."),
    ] = None,
    store_: StoreOption = None,
) -> None:
    """A hook: read the hook's JSON on stdin, print the memories the prompt is about."""
    from memstore import hook

    text = hook.run(sys.stdin.read(), _state.store_path, budget)
    if text:
        typer.echo(text, nl=False)


@app.command("mcp")
def mcp_(store_: StoreOption = None) -> None:
    """Run the MCP server for AI agents on stdin and stdout (needs memstore-git\\[mcp])."""
    from memstore.errors import MemstoreError

    try:
        from memstore import mcp_server
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("mcp", "pydantic"):
            raise
        raise MemstoreError(
            "the MCP server needs the mcp package: pip install 'memstore-git[mcp]'"
        ) from None
    mcp_server.serve(_store(create=True))


def _fail(message: str, status: int = 1) -> NoReturn:
    typer.echo(f"mem: error: {message}", err=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every error into one line and an exit status."""
    from memstore.errors import MemstoreError

    show_traceback = bool(os.environ.get("MEM_TRACEBACK")) or "--traceback" in (
        argv if argv is not None else sys.argv
    )
    try:
        status = app(args=argv, prog_name="mem", standalone_mode=False)
        if isinstance(status, int) and status:
            sys.exit(status)
    except MemstoreError as error:
        if show_traceback:
            raise
        _fail(str(error), error.exit_status)
    except BrokenPipeError:
        _closed_pipe()
    except SystemExit as done:
        # typer turns a closed pipe into exit status 1, leaving stdout wrapped to say so.
        if done.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            _closed_pipe()
        raise
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted; nothing was half-written", 130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # a bug, not a user error: still one line unless asked
        if show_traceback or _is_usage_error(error):
            if _is_usage_error(error):
                error.show()  # type: ignore[attr-defined]
                sys.exit(2)
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (run with --traceback for details)")


def _closed_pipe() -> NoReturn:
    """The reader went away (`mem find web | head -1`): not an error, so exit 0 quietly.

    As Python's docs advise, stdout is pointed at devnull so that the flush at exit cannot fail
    again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    sys.exit(0)


def _is_usage_error(error: Exception) -> bool:
    return hasattr(error, "show") and hasattr(error, "exit_code")
