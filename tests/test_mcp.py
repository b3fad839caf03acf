"""mem mcp end to end: the SDK's stdio client runs `python -m memstore mcp` on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from memstore.store import Store
from tests.conftest import run_mem

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"add", "find", "show", "update", "link", "supersede", "context"}


def with_server(store: Store, session: Callable[[Client], Awaitable[None]]) -> None:
    """Run session against a `mem mcp` subprocess serving store."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memstore", "--store", str(store.root), "mcp"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "MEM_SOURCE": "test-agent"},
        cwd=str(ROOT),
    )

    async def main() -> None:
        async with Client(params, read_timeout_seconds=60) as client:
            await session(client)

    anyio.run(main)


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(json.loads(result.content[0].text))


def error_text(result: Any) -> str:
    assert result.is_error, result.content
    return str(result.content[0].text)


def test_tools_add_find_show_update_and_the_recent_resource(store: Store) -> None:
    async def session(client: Client) -> None:
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} == TOOLS
        for tool in tools.tools:
            assert tool.description and tool.input_schema["type"] == "object"
        added = data(
            await client.call_tool(
                "add",
                {"text": "CORS errors on /api came from the missing Vary header", "tags": ["web"]},
            )
        )
        memory = store.get(added["id"])
        assert memory.title == "CORS errors on /api came from the missing Vary header"
        assert memory.tags == ["web"] and memory.source == "test-agent"
        found = data(await client.call_tool("find", {"query": "vary header", "limit": 5}))
        assert [hit["id"] for hit in found["results"]] == [added["id"]]
        shown = data(await client.call_tool("show", {"ref": added["id"][:10]}))
        assert shown["body"] == "CORS errors on /api came from the missing Vary header\n"
        changed = data(
            await client.call_tool("update", {"ref": added["id"], "title": "CORS and Vary"})
        )
        assert changed["changed"] is True and store.get(added["id"]).title == "CORS and Vary"
        same = data(
            await client.call_tool("update", {"ref": added["id"], "title": "CORS and Vary"})
        )
        assert same["changed"] is False
        block = data(await client.call_tool("context", {"query": "vary", "budget": 500}))
        assert block["ids"] == [added["id"]]
        assert block["text"] == store.context("vary", budget=500).text
        assert "budget" in error_text(await client.call_tool("context", {"budget": 5}))
        resources = await client.list_resources()
        assert "memstore://recent" in {str(r.uri) for r in resources.resources}
        newer = data(
            await client.call_tool(
                "add", {"text": "A newer memory", "type": "fact", "session": "chat-1"}
            )
        )
        assert newer["session"] == "chat-1" and store.get(newer["id"]).session == "chat-1"
        recent = await client.read_resource("memstore://recent")
        listed = json.loads(recent.contents[0].text)["memories"]
        assert [m["title"] for m in listed] == ["A newer memory", "CORS and Vary"]

    with_server(store, session)


def test_the_server_reports_the_version_mem_version_prints(store: Store) -> None:
    printed = run_mem("--version")
    assert printed.returncode == 0, printed.stderr
    info: list[Any] = []

    async def session(client: Client) -> None:
        info.append(client.server_info)

    with_server(store, session)
    assert info[0].name == "memstore"
    assert info[0].version == version("memstore-git") != ""
    assert printed.stdout == f"mem (memstore-git) {info[0].version}\n"


def test_bad_calls_are_errors_and_the_server_keeps_serving(store: Store) -> None:
    kept = store.add("Keep the server alive")

    async def session(client: Client) -> None:
        assert "text" in error_text(await client.call_tool("add", {"text": ""}))
        assert "limit" in error_text(await client.call_tool("find", {"query": "x", "limit": 0}))
        assert "tags" in error_text(
            await client.call_tool("add", {"text": "x", "tags": ["two words"]})
        )
        assert "ref" in error_text(await client.call_tool("show", {}))
        # memstore's own errors come back with their message (after the SDK's prefix).
        assert error_text(await client.call_tool("show", {"ref": "01zzzzzzzz"})) == (
            "Error executing tool show: no memory has the id '01zzzzzzzz': use 'mem find' or"
            " 'mem list' to get one"
        )
        assert error_text(await client.call_tool("add", {"text": "   \n  "})) == (
            "Error executing tool add: the memory is empty: give some text to remember"
        )
        assert "nothing to change" in error_text(await client.call_tool("update", {"ref": kept.id}))
        assert error_text(await client.call_tool("no-such-tool", {}))
        # The same session still works.
        shown = data(await client.call_tool("show", {"ref": kept.id}))
        assert shown["title"] == "Keep the server alive"

    with_server(store, session)
    assert [item.id for item in store.list()] == [kept.id]  # nothing was written by bad calls


def test_link_and_supersede_use_the_memory_graph(store: Store) -> None:
    old = store.add("Deploy on Fridays is fine")
    other = store.add("The deploy checklist lives in docs/deploy.md")

    async def session(client: Client) -> None:
        linked = data(await client.call_tool("link", {"ref": old.id, "target": other.id}))
        assert linked["changed"] is True and linked["links"] == [other.id]
        again = data(await client.call_tool("link", {"ref": old.id, "target": other.id}))
        assert again["changed"] is False
        new = data(
            await client.call_tool(
                "supersede", {"ref": old.id[:12], "text": "Never deploy on Fridays"}
            )
        )
        assert new["supersedes"] == [old.id]
        assert "cannot link to itself" in error_text(
            await client.call_tool("link", {"ref": old.id, "target": old.id})
        )

    with_server(store, session)
    assert store.get(old.id).links == [other.id]
    (newest,) = [m for m in store.list() if m.title == "Never deploy on Fridays"]
    assert store.get(newest.id).supersedes == [old.id]


def test_help_loads_neither_mcp_nor_pydantic() -> None:
    code = (
        "import sys\n"
        "from memstore.cli import main\n"
        "for argv in (['--help'], ['mcp', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('LOADED', [m for m in ('mcp', 'pydantic') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout + result.stderr


def test_without_the_sdk_mem_mcp_says_what_to_install(store: Store) -> None:
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None  # as if the extra were not installed\n"
        "from memstore.cli import main\n"
        f"main(['--store', {str(store.root)!r}, 'mcp'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == (
        "mem: error: the MCP server needs the mcp package: pip install 'memstore-git[mcp]'\n"
    )


def test_the_documented_client_configurations_parse() -> None:
    import re
    import tomllib

    text = (ROOT / "docs" / "agents.md").read_text()
    configs = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    servers = [c["mcpServers"]["memstore"] for c in configs if "mcpServers" in c]
    assert len(servers) == 2  # Claude Code's .mcp.json and Cursor's mcp.json
    (toml,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    servers.append(tomllib.loads(toml)["mcp_servers"]["memstore"])
    for server in servers:
        assert server["command"] == "mem" and server["args"][-1] == "mcp"
