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

from memstore.mcp_server import DUPLICATE_ADVICE, SECRETS_ADVICE
from memstore.report import CollectingReporter
from memstore.store import Store
from tests.conftest import run_mem

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"add", "find", "show", "update", "link", "supersede", "context", "recent"}


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
        listed = json.loads(recent.contents[0].text)
        assert [m["title"] for m in listed["memories"]] == ["A newer memory", "CORS and Vary"]
        assert listed == data(await client.call_tool("recent", {}))

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
        assert error_text(await client.call_tool("find", {"query": "x", "limit": 0})) == (
            "limit must be at least 1 (got 0): call find again with valid arguments"
        )
        leaked = {"text": "x", "title": "A title" + tag("/title")}
        assert "title ends with leaked tool-call markup" in error_text(
            await client.call_tool("add", leaked)
        )
        assert "tags" in error_text(
            await client.call_tool("add", {"text": "x", "tags": ["two words"]})
        )
        assert "ref" in error_text(await client.call_tool("show", {}))
        # memstore's own errors come back as its one-line message, without the SDK's prefix.
        assert error_text(await client.call_tool("show", {"ref": "01zzzzzzzz"})) == (
            "no memory has the id '01zzzzzzzz': use 'mem find' or 'mem list' to get one"
        )
        assert error_text(await client.call_tool("add", {"text": "   \n  "})) == (
            "the memory is empty: give some text to remember"
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
    assert len(servers) == 1  # Cursor's mcp.json (Claude Code's is a `claude mcp add` line)
    (toml,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    servers.append(tomllib.loads(toml)["mcp_servers"]["memstore"])
    for server in servers:  # the full path, as `mem setup` writes it: tools may lack our PATH
        assert server["command"].startswith("/") and server["command"].endswith("/mem")
        assert server["args"][-1] == "mcp"


def in_process(store: Store, session: Callable[[Client], Awaitable[None]]) -> None:
    """Run session against the server of store, connected in-process by the SDK's client: the
    same protocol as over stdio, with the store's clock and reporter in reach."""
    from memstore.mcp_server import build_server

    async def main() -> None:
        async with Client(build_server(store)) as client:
            await session(client)

    anyio.run(main)


def tag(name: str) -> str:
    """Markup built from its name, so that no tag is written out whole in this file."""
    return "<" + name + ">"


def test_add_and_supersede_return_their_duplicates_with_advice_in_tool_terms(
    store: Store, reporter: CollectingReporter
) -> None:
    testing = store.add("We use pytest for the web tests")
    deploy = store.add("Deploys go out from main on Tuesdays")

    async def session(client: Client) -> None:
        exact = data(await client.call_tool("add", {"text": "We use PYTEST for the web tests!"}))
        assert exact["duplicates"] == [
            {
                "id": testing.id,
                "title": testing.title,
                "path": testing.path,
                "kind": "exact",
                "similarity": 1.0,
            }
        ]
        assert exact["advice"] == (
            "This memory repeats the memories in `duplicates` and was added anyway. To revise a"
            " memory rather than repeat it, call `update` with its id as `ref` (changes it in"
            " place) or `supersede` with its id as `ref` (a new memory that replaces it); `find`"
            " before `add`."
        )
        # Empty optional values count as not given: models often fill every argument.
        unset = {"title": "", "source": "", "session": ""}
        fresh = data(
            await client.call_tool("add", {"text": "Cache keys include the locale", **unset})
        )
        assert fresh["duplicates"] == [] and "advice" not in fresh
        assert fresh["source"] == "mcp" and fresh["session"] == ""
        assert fresh["title"] == "Cache keys include the locale"
        unchanged = {"ref": fresh["id"], "text": "", "title": "", "type": ""}
        assert error_text(await client.call_tool("update", unchanged)) == (
            "nothing to change: give text, title, tags or type"
        )
        # The memory a supersede replaces is not a duplicate of its successor.
        newer = data(
            await client.call_tool(
                "supersede",
                {"ref": deploy.id, "text": "Deploys go out from main on Tuesdays and Fridays"},
            )
        )
        assert newer["supersedes"] == [deploy.id] and newer["duplicates"] == []
        similar = data(
            await client.call_tool(
                "supersede", {"ref": fresh["id"], "text": "We use pytest for all the web tests"}
            )
        )
        assert {(d["id"], d["kind"]) for d in similar["duplicates"]} == {
            (testing.id, "similar"),
            (exact["id"], "similar"),
        }
        assert "`supersede`" in similar["advice"]

    in_process(store, session)
    assert reporter.warnings == []  # told to the agent, not to the server's stderr
    assert len(store.list()) == 6


def test_show_gives_the_object_of_mem_show_json(store: Store) -> None:
    other = store.add("The deploy checklist lives in docs/deploy.md")
    old = store.add("Deploy on Fridays is fine")
    store.link(old.id, other.id)
    newer = store.add("Never deploy on Fridays", supersedes=old.id)
    linking = store.add("Why we moved deploys", tags=["ops"])
    store.link(linking.id, old.id)
    shown: list[dict[str, Any]] = []

    async def session(client: Client) -> None:
        shown.append(data(await client.call_tool("show", {"ref": old.id[:12]})))

    in_process(store, session)
    printed = run_mem("--store", str(store.root), "show", old.id, "--json")
    assert printed.returncode == 0, printed.stderr
    expected = json.loads(printed.stdout)
    # The age depends on the clock: the store's is fixed, the `mem` process has the machine's.
    assert shown[0].pop("age") and expected.pop("age")
    assert shown[0] == expected
    assert shown[0]["superseded_by"] == [{"id": newer.id, "title": newer.title}]
    assert shown[0]["backlinks"] == [{"id": linking.id, "title": linking.title}]
    assert shown[0]["links"] == [other.id]
    assert shown[0]["body"] == "Deploy on Fridays is fine\n"


def test_find_says_whether_there_are_more_results(store: Store) -> None:
    for n in range(3):
        store.add(f"Vary header note {n}")

    async def session(client: Client) -> None:
        two = data(await client.call_tool("find", {"query": "vary", "limit": 2}))
        assert two["more"] is True
        assert [hit["id"] for hit in two["results"]] == [
            hit.id for hit in store.find("vary", limit=2)
        ]
        three = data(await client.call_tool("find", {"query": "vary", "limit": 3}))
        assert three["more"] is False and len(three["results"]) == 3

    in_process(store, session)


def test_recent_tool_for_a_project_a_session_or_a_date(store: Store) -> None:
    billing = store.add("Invoices are sent on the 1st", tags=["billing"], session="chat-1")
    web = store.add("The web app uses htmx", tags=["web"])
    later = store.add("Invoices go out by email", session="chat-1")

    async def session(client: Client) -> None:
        async def ids(arguments: dict[str, Any]) -> tuple[list[str], bool]:
            result = data(await client.call_tool("recent", arguments))
            return [m["id"] for m in result["memories"]], result["more"]

        everything = data(await client.call_tool("recent", {}))
        printed = run_mem("--store", str(store.root), "list", "--json", "-n", "20")
        listed = json.loads(printed.stdout)
        # Ages depend on the clock: the store's is fixed, the `mem` process has the machine's.
        for memory in [*everything["memories"], *listed["memories"]]:
            assert memory.pop("age")
        assert everything == listed  # what `mem list --json` gives
        assert await ids({}) == ([later.id, web.id, billing.id], False)
        assert await ids({"limit": 2}) == ([later.id, web.id], True)
        assert await ids({"session": "chat-1"}) == ([later.id, billing.id], False)
        assert await ids({"project": "billing"}) == ([billing.id], False)
        assert await ids({"project": "billing", "session": "nope"}) == ([], False)
        unset = {"project": "", "session": "", "since": ""}
        assert await ids(unset) == ([later.id, web.id, billing.id], False)
        # The store's clock says 2026-11-21; a date a day off either way holds in any time zone.
        assert await ids({"since": "2026-11-20"}) == ([later.id, web.id, billing.id], False)
        assert await ids({"since": "2026-11-22"}) == ([], False)
        assert await ids({"since": "2d"}) == ([later.id, web.id, billing.id], False)
        assert error_text(await client.call_tool("recent", {"since": "soon"})) == (
            "cannot read the date 'soon': use 2026-11-01, 2026-11-01T09:00, or an age like 7d"
            " or '3 weeks ago'"
        )
        resource = await client.read_resource("memstore://recent")
        from_resource = json.loads(resource.contents[0].text)
        for memory in from_resource["memories"]:
            assert memory.pop("age")  # as everything's were
        assert from_resource == everything

    in_process(store, session)


ANNOTATIONS = {  # read-only, destructive, idempotent
    "add": (False, False, False),
    "find": (True, None, True),
    "show": (True, None, True),
    "update": (False, True, True),
    "link": (False, False, True),
    "supersede": (False, False, False),
    "context": (True, None, True),
    "recent": (True, None, True),
}


def test_every_tool_and_argument_is_described_and_annotated(store: Store) -> None:
    from memstore.memory import KNOWN_TYPES

    async def session(client: Client) -> None:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for name, tool in tools.items():
            assert tool.description and tool.description == tool.description.strip()
            # Paragraphs on one line: no indentation or line breaks from the source.
            assert all("\n" not in p for p in tool.description.split("\n\n")), name
            assert "  " not in tool.description, name
            for argument, schema in tool.input_schema["properties"].items():
                assert schema.get("description"), (name, argument)
            hints = tool.annotations
            assert hints is not None and hints.title, name
            assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (
                ANNOTATIONS[name]
            ), name
            assert hints.open_world_hint is False, name
        for name in ("add", "update", "supersede"):
            kind = tools[name].input_schema["properties"]["type"]
            assert all(known in kind["description"] for known in KNOWN_TYPES), name
            assert kind["examples"] == list(KNOWN_TYPES)

    in_process(store, session)


def test_invalid_arguments_come_back_as_one_line(store: Store) -> None:
    async def session(client: Client) -> None:
        async def refused(tool: str, arguments: dict[str, Any]) -> str:
            text = error_text(await client.call_tool(tool, arguments))
            assert "\n" not in text and "pydantic" not in text and "http" not in text
            return text

        assert await refused("find", {"query": "x", "limit": 0}) == (
            "limit must be at least 1 (got 0): call find again with valid arguments"
        )
        assert await refused("show", {}) == "ref is required: call show again with valid arguments"
        assert await refused("add", {"text": "x", "tags": ["ok", "two words"]}) == (
            "tags[1]: a tag is one word, without spaces or commas (got 'two words'): call add"
            " again with valid arguments"
        )
        assert await refused("add", {"text": "x", "type": "my type"}) == (
            "type: a type is a word of letters, digits, _ and -, starting with a letter"
            " (got 'my type'): call add again with valid arguments"
        )
        assert await refused("add", {"text": "", "title": "x" * 201}) == (
            "text is empty; title must have at most 200 characters: call add again with valid"
            " arguments"
        )
        assert await refused("context", {"budget": 60_000}) == (
            "budget must be at most 50000 (got 60000): call context again with valid arguments"
        )
        assert await refused("find", {"query": "x", "limit": "many"}) == (
            "limit: input should be a valid integer, unable to parse string as an integer"
            " (got 'many'): call find again with valid arguments"
        )
        assert await refused("add", {"text": "x", "tag": ["web"]}) == (
            "add takes no argument 'tag': its arguments are text, title, tags, type, source,"
            " session"
        )

    in_process(store, session)
    assert store.list() == []


def test_a_save_with_leaked_tool_call_markup_is_refused(store: Store) -> None:
    kept = store.add("Deploys go out from main")
    head = store.repo.head.target

    async def session(client: Client) -> None:
        title_ran_on = {"title": "Deploy notes" + tag("/title") + "\nThey go out from main"}
        assert error_text(await client.call_tool("add", {"text": "x", **title_ran_on})) == (
            "title holds leaked tool-call markup '</title>' followed by 21 characters that look"
            " like another argument ('They go out from main'): call add again with each value"
            " in its own argument (markup meant for the memory goes in `code`)"
        )
        swallowed = (
            "Deploys go out from main"
            + tag("/parameter")
            + "\n"
            + tag('parameter name="tags"')
            + '["ops"]'
        )
        assert error_text(await client.call_tool("add", {"text": swallowed})) == (
            "text holds leaked tool-call markup '</parameter>' followed by 30 characters that"
            ' look like the tags argument (\'<parameter name="tags">["ops"]\'): call add again'
            " with each value in its own argument (markup meant for the memory goes in `code`)"
        )
        ends = {"ref": kept.id, "text": "Deploys go out from main" + tag("/text")}
        assert error_text(await client.call_tool("update", ends)) == (
            "text ends with leaked tool-call markup '</text>': call update again with each value"
            " in its own argument (markup meant for the memory goes in `code`)"
        )
        call = {"ref": kept.id, "text": "Never on Fridays", "tags": ["ops" + tag("/tags")]}
        assert "tags ends with leaked" in error_text(await client.call_tool("supersede", call))

    in_process(store, session)
    assert store.repo.head.target == head  # nothing was written
    assert store.get(kept.id).body == "Deploys go out from main\n"


def test_notes_about_html_and_xml_are_saved(store: Store) -> None:
    notes = [
        "In the page head, "
        + tag("title")
        + "Billing"
        + tag("/title")
        + " names the tab; "
        + tag("div")
        + " blocks stack.",
        "Close the title before the body:\n\n```html\n"
        + tag("/title")
        + "\n"
        + tag("/parameter")
        + "\n```\n",
        "Tool calls put each argument in `" + tag('parameter name="x"') + "` tags.",
        'An SVG label: <text x="4">Total' + tag("/text"),
    ]
    title = "Why " + tag("/title") + " must be escaped"

    async def session(client: Client) -> None:
        for text in notes:
            added = data(await client.call_tool("add", {"text": text, "title": title}))
            assert store.get(added["id"]).body == text.rstrip("\n") + "\n"
            assert store.get(added["id"]).title == title

    in_process(store, session)
    assert len(store.list()) == len(notes)


def test_add_update_and_supersede_tell_the_agent_what_secrets_were_redacted(
    store: Store, reporter: CollectingReporter
) -> None:
    from tests.session_logs import SECRETS

    token, password = SECRETS["github-token"], SECRETS["url-password"]

    async def session(client: Client) -> None:
        saved = data(
            await client.call_tool(
                "add",
                {
                    "text": f"CI pushes with {token}; the DB is postgres://ci:{password}@db/ci",
                    "title": f"CI token {token}",
                },
            )
        )
        assert saved["redacted"] == {"github-token": 2, "url-password": 1}
        assert saved["title"] == "CI token [redacted:github-token]"
        assert saved["advice"] == (
            "Secrets in what you saved were replaced with [redacted:KIND] before anything was"
            " written (counted by kind in `redacted`): keep secrets out of memories, and say"
            " where one is kept instead (a vault entry, an environment variable's name)."
        )
        clean = data(await client.call_tool("add", {"text": "The CI runs on every push"}))
        assert clean["redacted"] == {} and "advice" not in clean
        changed = data(
            await client.call_tool("update", {"ref": clean["id"], "text": f"Push with {token}"})
        )
        assert changed["changed"] and changed["redacted"] == {"github-token": 1}
        assert changed["advice"].startswith("Secrets in what you saved were replaced")
        same = data(await client.call_tool("update", {"ref": clean["id"], "title": "CI"}))
        assert same["redacted"] == {} and "advice" not in same
        # Both pieces of advice when a replacement repeats a memory and holds a secret.
        newer = data(
            await client.call_tool("supersede", {"ref": saved["id"], "text": f"Push with {token}"})
        )
        assert newer["redacted"] == {"github-token": 1}
        assert newer["duplicates"][0]["id"] == clean["id"]
        assert newer["advice"] == DUPLICATE_ADVICE + " " + SECRETS_ADVICE

    in_process(store, session)
    assert reporter.warnings == []  # told to the agent, not to the server's stderr
    everything = "".join(store.get(item.id).to_bytes().decode() for item in store.list())
    assert token not in everything and password not in everything
