"""The MCP server (`mem mcp`): memstore's tools and recent memories for AI agents, over stdio.

Built on the official `mcp` Python SDK (the optional extra `memstore-git[mcp]`), imported only here
and only by `mem mcp`. Every tool calls the `Store` methods the CLI calls, and gives what the
CLI's `--json` gives. Inputs are checked against the tools' schemas (types, lengths, ranges),
unknown arguments are refused, and a save whose values carry tool-call markup leaked from the
model is refused (`toolmarkup`); every refusal, and every `MemstoreError`, comes back to the agent
as a tool error whose text is one line, and no call, good or bad, stops the server. stdout carries
the protocol: the store's reporter must write elsewhere (the CLI's writes to stderr). The SDK runs
tools in worker threads: one lock keeps the store to one call at a time.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

import memstore
from memstore import toolmarkup
from memstore.errors import MemstoreError
from memstore.memory import KNOWN_TYPES

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from pydantic_core import ErrorDetails

    from memstore.duplicates import Duplicate
    from memstore.memory import Memory
    from memstore.store import Store

SERVER_NAME = "memstore"
RECENT_URI = "memstore://recent"
RECENT_COUNT = 20
MAX_TEXT = 200_000  # characters; the store refuses files over 1 MB anyway
MAX_TAGS = 50
T = TypeVar("T")

Text = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        description=(
            "The memory's text, in Markdown: one fact, decision, preference or procedure,"
            " written so that it makes sense on its own later."
        ),
    ),
]
NewText = Annotated[
    str | None,
    Field(max_length=MAX_TEXT, description="The memory's new text, in Markdown."),
]
Ref = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="A memory's id (from find, recent or add), a unique id prefix, or its path.",
    ),
]
Title = Annotated[
    str | None,
    Field(
        max_length=200,
        description="A short title (default: the text's first line).",
    ),
]
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^#?[^\s,]+$")]
Tags = Annotated[
    list[Tag] | None,
    Field(
        max_length=MAX_TAGS,
        description="Tags to find the memory by, each one word without spaces or commas.",
    ),
]
TYPE_HELP = (
    f"What kind of memory: one of {', '.join(KNOWN_TYPES)}, or a word of your own"
    " (letters, digits, _ and -, starting with a letter)."
)
TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
Kind = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=TYPE_PATTERN,
        description=TYPE_HELP + " Default: note.",
        examples=list(KNOWN_TYPES),
    ),
]
NewKind = Annotated[
    str | None,
    Field(
        max_length=50,
        pattern=r"^([A-Za-z][A-Za-z0-9_-]*)?$",
        description=TYPE_HELP,
        examples=list(KNOWN_TYPES),
    ),
]
Session = Annotated[
    str | None,
    Field(
        max_length=200,
        description=(
            "Your conversation or session id: give the same one to every memory of one"
            " conversation, so that they help each other be found (default: MEM_SESSION)."
        ),
    ),
]
Source = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Who wrote the memory, e.g. your agent's name (default: MEM_SOURCE, or mcp).",
    ),
]
# What a pattern means, for the one-line error when a value does not match it.
PATTERN_HELP = {
    "tags": "a tag is one word, without spaces or commas",
    "type": "a type is a word of letters, digits, _ and -, starting with a letter",
}
AsOf = Annotated[
    str | None,
    Field(
        max_length=200,
        description="As the memories were then: a date (2026-06-01), an age ('3 weeks ago')"
        " or a git revision.",
    ),
]

INSTRUCTIONS = (
    "memstore keeps memories (decisions, facts, preferences, procedures) as Markdown files in"
    " git. Search with `find` before adding, so as not to repeat a memory; when a memory is out of"
    " date, `supersede` it rather than adding a contradicting one, and when `show` says a memory"
    " is superseded, read the newer one. `recent` tells what happened lately. Cite memories by id."
)
DUPLICATE_ADVICE = (
    "This memory repeats the memories in `duplicates` and was added anyway. To revise a memory"
    " rather than repeat it, call `update` with its id as `ref` (changes it in place) or"
    " `supersede` with its id as `ref` (a new memory that replaces it); `find` before `add`."
)

SECRETS_ADVICE = (
    "Secrets in what you saved were replaced with [redacted:KIND] before anything was written"
    " (counted by kind in `redacted`): keep secrets out of memories, and say where one is kept"
    " instead (a vault entry, an environment variable's name)."
)

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def writes(*, destructive: bool, idempotent: bool) -> ToolAnnotations:
    """The hints of a tool that changes the store (and nothing outside it)."""
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


def default_source() -> str:
    """Who wrote a memory added through MCP: MEM_SOURCE (set it to the agent's name), or mcp."""
    return " ".join(os.environ.get("MEM_SOURCE", "").split()) or "mcp"


def invalid_arguments(tool: str, error: ValidationError) -> str:
    """Pydantic's report on a tool's arguments as one line: what is wrong, and what to do."""
    problems = list(dict.fromkeys(_problem(detail) for detail in error.errors()))
    return f"{'; '.join(problems)}: call {tool} again with valid arguments"


def _problem(detail: ErrorDetails) -> str:
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in detail["loc"])
    field = field.lstrip(".") or "the arguments"
    top = str(detail["loc"][0]) if detail["loc"] else ""
    kind, ctx = detail["type"], detail.get("ctx") or {}
    got = f" (got {_quote(detail.get('input'))})"
    if kind == "missing":
        return f"{field} is required"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return f"{field} is empty"
    if kind in ("string_too_short", "string_too_long"):
        bound = "at least" if kind == "string_too_short" else "at most"
        limit = ctx.get("min_length", ctx.get("max_length"))
        return f"{field} must have {bound} {limit} characters"
    if kind == "too_long":
        return f"{field} has more than {ctx.get('max_length')} items"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = "at least" if kind == "greater_than_equal" else "at most"
        return f"{field} must be {bound} {ctx.get('ge', ctx.get('le'))}{got}"
    if kind == "string_pattern_mismatch" and top in PATTERN_HELP:
        return f"{field}: {PATTERN_HELP[top]}{got}"
    message = str(detail["msg"])
    return f"{field}: {message[:1].lower()}{message[1:]}{got}"


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


class Server(MCPServer):
    """The SDK's server, with memstore's checks and one-line errors around every tool call."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.arguments: dict[str, list[str]] = {}  # each tool's argument names

    def register(
        self, fn: Callable[..., Any], annotations: ToolAnnotations, title: str
    ) -> Callable[..., Any]:
        """Add fn as a tool, described by its docstring: paragraphs on one line each, without
        the source's indentation and line breaks."""
        self.arguments[fn.__name__] = list(inspect.signature(fn).parameters)
        paragraphs = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
        describe = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
        annotations = annotations.model_copy(update={"title": title})
        return self.tool(title=title, description=describe, annotations=annotations)(fn)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        """Run a tool; refusals come back as one line without the SDK's prefix."""
        known = self.arguments.get(name)
        unknown = sorted(set(arguments) - set(known or ()))
        if known is not None and unknown:
            listed = ", ".join(known)
            raise ToolError(
                f"{name} takes no argument {', '.join(map(repr, unknown))}: its arguments are"
                f" {listed}"
            )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as error:
            cause = error.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(invalid_arguments(name, cause)) from cause
            if isinstance(cause, ToolError):  # memstore's own message, under the SDK's prefix
                raise ToolError(str(cause)) from cause
            raise


def build_server(store: Store) -> Server:
    """An MCP server whose tools work on store."""
    server = Server(
        name=SERVER_NAME, version=memstore.version(), instructions=INSTRUCTIONS, log_level="WARNING"
    )
    lock = threading.Lock()

    def call(action: Callable[[], T]) -> T:
        with lock:
            try:
                return action()
            except MemstoreError as error:
                raise ToolError(str(error)) from None

    def refuse_markup(tool: str, **values: object) -> None:
        try:
            toolmarkup.check(tool, values, server.arguments[tool])
        except MemstoreError as error:
            raise ToolError(str(error)) from None

    def told(data: dict[str, Any], redacted: Counter[str], *advice: str) -> dict[str, Any]:
        """A save's result with the secrets redacted from it, and advice on what to do."""
        data["redacted"] = dict(sorted(redacted.items()))
        if redacted:
            advice = (*advice, SECRETS_ADVICE)
        if advice:
            data["advice"] = " ".join(advice)
        return data

    def changed(ref: str, memory: Memory | None) -> dict[str, Any]:
        """A change's result: the memory, and whether anything changed (None: nothing did)."""
        if memory is None:
            return {"changed": False, **store.get(ref).to_dict(body=False)}
        return {"changed": True, **memory.to_dict(body=False)}

    def updated(ref: str, **fields: Any) -> dict[str, Any]:
        """Change a memory; the result says whether anything changed and what was redacted."""
        redacted: Counter[str] = Counter()
        memory = store.update(ref, redacted=redacted, **fields)
        return told(changed(ref, memory), redacted)

    def added(text: str, supersedes: str | None = None, **fields: Any) -> dict[str, Any]:
        """Add a memory; the result names the memories it repeats and the secrets redacted,
        with what to do about them."""
        redacted: Counter[str] = Counter()
        # Checked within the write, on the text as stored, against every other memory but the
        # one it replaces.
        found: list[Duplicate] = []
        memory = store.add(
            text, supersedes=supersedes, redacted=redacted, duplicates=found, **fields
        )
        data = {**memory.to_dict(body=False), "duplicates": [d.to_dict() for d in found]}
        return told(data, redacted, *([DUPLICATE_ADVICE] if found else []))

    def add(
        text: Text,
        title: Title = None,
        tags: Tags = None,
        type: Kind = "note",
        source: Source = None,
        session: Session = None,
    ) -> dict[str, Any]:
        """Add a memory and commit it. Returns the new memory's id, title, path and fields.

        Search with `find` first. `duplicates` lists the memories it repeats (id, title, path,
        `kind` exact or similar): to revise one of those instead, use `update` or `supersede`.
        `redacted` counts the secrets (API keys, tokens, passwords) replaced before saving.
        Give `session` (your conversation or session id) to every memory of one conversation:
        they help each other be found.
        """
        refuse_markup("add", text=text, title=title, tags=tags, source=source, session=session)
        return call(
            lambda: added(
                text,
                title=title or None,
                tags=tags or [],
                type=type,
                source=source or default_source(),
                session=session or None,  # "" as not given: models fill every argument
            )
        )

    def find(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=1000,
                description=(
                    'What to look for: words, "phrases", OR, NOT, tag:x, type:x, created:2026-11,'
                    " session:x, or a plain question."
                ),
            ),
        ],
        limit: Annotated[
            int, Field(ge=1, le=100, description="How many results at most, 1 to 100.")
        ] = 10,
        as_of: AsOf = None,
    ) -> dict[str, Any]:
        """Search memories, best matches first (the query language of `mem find`).

        Returns id, title, path, date, age, tags, score, a snippet, `superseded_by` and whether
        it is `expired` for each result, and `more`: whether more results exist beyond `limit`.
        With as_of, the memories as they were then.
        """
        hits = call(lambda: store.find(query, limit=limit + 1, as_of=as_of))
        return {
            "query": query,
            "results": [hit.to_dict() for hit in hits[:limit]],
            "more": len(hits) > limit,
        }

    def show(ref: Ref, as_of: AsOf = None) -> dict[str, Any]:
        """One memory with its text, by id, id prefix or path: the object of `mem show --json`.

        `superseded_by` lists the newer memories that replace it (read those: this one is out of
        date), `backlinks` the memories that link to it, `links` those it links to; `expired`
        when past its expires date, and its `age`. With as_of, as it was then.
        """
        return call(lambda: store.view(ref, as_of=as_of).to_dict())

    def update(
        ref: Ref,
        text: NewText = None,
        title: Title = None,
        tags: Annotated[
            list[Tag] | None,
            Field(
                max_length=MAX_TAGS,
                description="The new tags: the whole list, which replaces the old one.",
            ),
        ] = None,
        type: NewKind = None,
    ) -> dict[str, Any]:
        """Change a memory in place and commit it: its text, title, tags or type.

        Returns the memory, with `changed` false when nothing differed, and `redacted` (the
        secrets replaced before saving, by kind). To replace a memory
        that is out of date with a new one, keeping the old one as history, use `supersede`.
        """
        # Empty values as not given (models often fill every argument); tags [] clears tags.
        text, title, type = text or None, title or None, type or None
        if text is None and title is None and tags is None and type is None:
            raise ToolError("nothing to change: give text, title, tags or type")
        refuse_markup("update", ref=ref, text=text, title=title, tags=tags)
        return call(lambda: updated(ref, body=text, title=title, tags=tags, type=type))

    def link(
        ref: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="The memory that links: an id, a unique id prefix, or its path.",
            ),
        ],
        target: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="The memory to link to: an id, an id prefix, a path or a title.",
            ),
        ],
    ) -> dict[str, Any]:
        """Link memory `ref` to memory `target` (adds target's id to ref's `links`).

        Returns the memory, with `changed` false when it was linked already.
        """
        return call(lambda: changed(ref, store.link(ref, target)))

    def supersede(
        ref: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="The memory that is out of date: an id, a unique id prefix, or a path.",
            ),
        ],
        text: Text,
        title: Title = None,
        tags: Tags = None,
        type: Kind = "note",
        session: Session = None,
    ) -> dict[str, Any]:
        """Replace an out-of-date memory: add a new one whose `supersedes` names `ref`.

        The old memory stays (history), marked as superseded. Returns the new memory, with
        `duplicates` and `redacted` as `add` gives them.
        """
        refuse_markup("supersede", ref=ref, text=text, title=title, tags=tags, session=session)
        return call(
            lambda: added(
                text,
                supersedes=ref,
                title=title or None,
                tags=tags or [],
                type=type,
                source=default_source(),
                session=session or None,
            )
        )

    def context(
        query: Annotated[
            str,
            Field(
                max_length=1000,
                description="What the task is about (default: empty, the newest memories).",
            ),
        ] = "",
        budget: Annotated[
            int,
            Field(ge=100, le=50_000, description="About how many tokens, 100 to 50,000."),
        ] = 2000,
    ) -> dict[str, Any]:
        """The memories most relevant to `query` as one Markdown block of about `budget` tokens.

        Each memory comes with its id, title, date and path, so that answers can cite it.
        """
        result = call(lambda: store.context(query, budget))
        return {
            "text": result.text,
            "tokens": result.tokens,
            "ids": [item.id for item in result.items],
        }

    def listing(
        limit: int, project: str | None = None, session: str | None = None, since: str | None = None
    ) -> dict[str, Any]:
        from memstore.results import Filters
        from memstore.when import parse_when

        start = parse_when(since, end=False, now=store.clock()) if since else None
        # Empty values as not given: models often fill every argument.
        filters = Filters(tags=[project] if project else [], session=session or None, since=start)
        listed = store.list(filters=filters, limit=limit + 1)
        return {
            "memories": [item.to_dict() for item in listed[:limit]],
            "more": len(listed) > limit,
        }

    def recent(
        limit: Annotated[
            int, Field(ge=1, le=100, description="How many memories at most, 1 to 100.")
        ] = RECENT_COUNT,
        project: Annotated[
            str | None,
            Field(
                max_length=100,
                pattern=r"^[^\s,]*$",
                description="Only memories of this project: those tagged with its name.",
            ),
        ] = None,
        session: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Only memories recorded in this session (the exact session id).",
            ),
        ] = None,
        since: Annotated[
            str | None,
            Field(
                max_length=40,
                description="Only memories created since then: 2026-11-01, or an age like 7d.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """What happened lately: the newest memories first, as the `memstore://recent` resource.

        Optionally only one project's (its tag), one session's, or those since a date. Returns
        id, title, path, type, tags and created for each, and `more`: whether there are more.
        """
        return call(lambda: listing(limit, project, session, since))

    server.register(add, writes(destructive=False, idempotent=False), "Add a memory")
    server.register(find, READ, "Search memories")
    server.register(show, READ, "Show a memory")
    server.register(update, writes(destructive=True, idempotent=True), "Change a memory")
    server.register(link, writes(destructive=False, idempotent=True), "Link two memories")
    server.register(
        supersede, writes(destructive=False, idempotent=False), "Replace an out-of-date memory"
    )
    server.register(context, READ, "Memories for a prompt")
    server.register(recent, READ, "Recent memories")

    @server.resource(
        RECENT_URI,
        name="recent",
        description=f"The {RECENT_COUNT} most recent memories, newest first (the `recent` tool).",
        mime_type="application/json",
    )
    def recent_resource() -> str:
        import json

        try:
            with lock:
                data = listing(RECENT_COUNT)
        except MemstoreError as error:
            raise ResourceError(str(error)) from None
        return json.dumps(data, ensure_ascii=False)

    return server


def serve(store: Store) -> None:
    """Run the server on stdin and stdout until the client closes them."""
    build_server(store).run("stdio")
