"""The MCP server (`mem mcp`): memstore's tools and recent memories for AI agents, over stdio.

Built on the official `mcp` Python SDK (the optional extra `memstore-git[mcp]`), imported only here
and only by `mem mcp`. Every tool calls one `Store` method, the same ones the CLI calls. Inputs
are checked against the tools' schemas (types, lengths, ranges) before a tool runs; a
`MemstoreError` comes back to the agent as a tool error with memstore's one-line message, and
no call, good or bad, stops the server. stdout carries the protocol: the store's reporter must
write elsewhere (the CLI's writes to stderr). The SDK runs tools in worker threads: one lock
keeps the store to one call at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

import memstore
from memstore.errors import MemstoreError

if TYPE_CHECKING:
    from memstore.memory import Memory
    from memstore.store import Store

SERVER_NAME = "memstore"
RECENT_URI = "memstore://recent"
RECENT_COUNT = 20
MAX_TEXT = 200_000  # characters; the store refuses files over 1 MB anyway
MAX_TAGS = 50

Text = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT, description="Markdown text of the memory.")
]
Ref = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        description="A memory's id, a unique id prefix, or its path.",
    ),
]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^#?[^\s,]+$")]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
Kind = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
AsOf = Annotated[
    str | None,
    Field(
        max_length=200,
        description="As the memories were then: a date (2026-06-01), an age ('3 weeks ago')"
        " or a git revision.",
    ),
]
T = TypeVar("T")

INSTRUCTIONS = """memstore keeps memories (decisions, facts, preferences, procedures) as Markdown
files in git. Search with `find` before adding, so as not to repeat a memory; when a memory is
out of date, `supersede` it rather than adding a contradicting one. Cite memories by id."""


def default_source() -> str:
    """Who wrote a memory added through MCP: MEM_SOURCE (set it to the agent's name), or mcp."""
    return " ".join(os.environ.get("MEM_SOURCE", "").split()) or "mcp"


def build_server(store: Store) -> MCPServer:
    """An MCP server whose tools work on store."""
    server: MCPServer = MCPServer(
        SERVER_NAME, version=memstore.version(), instructions=INSTRUCTIONS, log_level="WARNING"
    )
    lock = threading.Lock()

    def call(action: Callable[[], T]) -> T:
        with lock:
            try:
                return action()
            except MemstoreError as error:
                raise ToolError(str(error)) from None

    def changed(ref: str, memory: Memory | None) -> dict[str, Any]:
        """A change's result: the memory, and whether anything changed (None: nothing did)."""
        if memory is None:
            return {"changed": False, **call(lambda: store.get(ref)).to_dict(body=False)}
        return {"changed": True, **memory.to_dict(body=False)}

    @server.tool()
    def add(
        text: Text,
        title: Title | None = None,
        tags: Tags | None = None,
        type: Kind = "note",
        source: Annotated[str | None, Field(max_length=200)] = None,
        session: Annotated[str | None, Field(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Add a memory and commit it. Returns the new memory's id, title and path.

        Give `session` (your conversation or session id) to every memory of one conversation:
        they help each other be found. Search with `find` first: to replace a memory that is
        out of date, use `supersede`.
        """
        memory = call(
            lambda: store.add(
                text,
                title=title,
                tags=tags or [],
                type=type,
                source=source or default_source(),
                session=session,
            )
        )
        return memory.to_dict(body=False)

    @server.tool()
    def find(
        query: Annotated[str, Field(min_length=1, max_length=1000)],
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
        as_of: AsOf = None,
    ) -> dict[str, Any]:
        """Search memories, best matches first: words, "phrases", OR, NOT, tag:x, type:x,
        created:2026-11. Returns id, title, path, date, age, tags, score, a snippet and whether
        it is expired for each. With as_of, the memories as they were then."""
        hits = call(lambda: store.find(query, limit=limit, as_of=as_of))
        return {"query": query, "results": [hit.to_dict() for hit in hits]}

    @server.tool()
    def show(ref: Ref, as_of: AsOf = None) -> dict[str, Any]:
        """One memory with its text, by id, id prefix or path; `expired` when past its
        expires date. With as_of, as it was then."""
        from memstore.freshness import describe

        return describe(call(lambda: store.get(ref, as_of=as_of)).to_dict(), store.clock())

    @server.tool()
    def update(
        ref: Ref,
        text: Text | None = None,
        title: Title | None = None,
        tags: Tags | None = None,
        type: Kind | None = None,
    ) -> dict[str, Any]:
        """Change a memory's text, title, tags (the whole list) or type, and commit it.

        Returns the memory, with `changed` false when nothing differed.
        """
        if text is None and title is None and tags is None and type is None:
            raise ToolError("nothing to change: give text, title, tags or type")
        updated = call(lambda: store.update(ref, body=text, title=title, tags=tags, type=type))
        return changed(ref, updated)

    @server.tool()
    def link(
        ref: Ref,
        target: Annotated[
            str,
            Field(min_length=1, max_length=500, description="The memory to link to."),
        ],
    ) -> dict[str, Any]:
        """Link memory ref to memory target (adds target's id to ref's `links`)."""
        return changed(ref, call(lambda: store.link(ref, target)))

    @server.tool()
    def supersede(
        ref: Ref,
        text: Text,
        title: Title | None = None,
        tags: Tags | None = None,
        type: Kind = "note",
        session: Annotated[str | None, Field(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Replace an out-of-date memory: add a new one whose `supersedes` names ref.

        The old memory stays (history), marked as superseded. Returns the new memory.
        """
        memory = call(
            lambda: store.add(
                text,
                title=title,
                tags=tags or [],
                type=type,
                source=default_source(),
                session=session,
                supersedes=ref,
            )
        )
        return memory.to_dict(body=False)

    @server.tool()
    def context(
        query: Annotated[str, Field(max_length=1000)] = "",
        budget: Annotated[int, Field(ge=100, le=50_000)] = 2000,
    ) -> dict[str, Any]:
        """The memories most relevant to query (the newest without one) as one Markdown block
        of about budget tokens, each with id, title, date and path so that answers can cite it."""
        result = call(lambda: store.context(query, budget))
        return {
            "text": result.text,
            "tokens": result.tokens,
            "ids": [item.id for item in result.items],
        }

    @server.resource(
        RECENT_URI,
        name="recent",
        description=f"The {RECENT_COUNT} most recent memories, newest first.",
        mime_type="application/json",
    )
    def recent() -> str:
        import json

        try:
            with lock:
                listed = store.list(limit=RECENT_COUNT)
        except MemstoreError as error:
            raise ResourceError(str(error)) from None
        return json.dumps({"memories": [item.to_dict() for item in listed]}, ensure_ascii=False)

    return server


def serve(store: Store) -> None:
    """Run the server on stdin and stdout until the client closes them."""
    build_server(store).run("stdio")
