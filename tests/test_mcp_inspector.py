"""`mem mcp` through a client independent of memstore and of the Python SDK: the official MCP
Inspector in CLI mode (Node.js), the version pinned in .ci/install-inspector.

`.ci/install-inspector` installs it into .ci/node (CI runs it before the tests). Where it is not
installed (a machine without node and npm, or a copy of the sources without .ci/) this test is
skipped, except in CI, where a missing Inspector fails it. The Inspector's calls run side by
side, each with its own server process, to keep the test short.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memstore.store import Store
from tests.conftest import user_settings

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / ".ci" / "install-inspector"
MODULES = ROOT / ".ci" / "node" / "node_modules"
INSPECTOR = MODULES / ".bin" / "mcp-inspector"


def inspector() -> str:
    """The Inspector's command, at the version .ci/install-inspector pins."""
    if INSPECTOR.exists() and shutil.which("node"):
        (pinned,) = re.findall(r"^VERSION=(\S+)$", INSTALLER.read_text(), flags=re.M)
        package = MODULES / "@modelcontextprotocol" / "inspector" / "package.json"
        installed = json.loads(package.read_text())["version"]
        assert installed == pinned, f"the Inspector is {installed}: run .ci/install-inspector"
        return str(INSPECTOR)
    assert not os.environ.get("CI"), "the MCP Inspector is missing: run .ci/install-inspector"
    pytest.skip("the MCP Inspector is not installed: .ci/install-inspector (needs node and npm)")


def test_the_inspector_lists_and_calls_the_tools(store: Store) -> None:
    command = inspector()
    known = store.add("CORS errors on /api came from the missing Vary header", tags=["web"])
    # The Inspector gives the server only a few variables of its own environment (PATH, HOME…):
    # the test's isolation (git config, author, data folders) is passed on by name.
    server_env = [f"{name}={os.environ[name]}" for name in user_settings(os.environ)]
    server = [sys.executable, "-m", "memstore", "--store", str(store.root), "mcp"]
    # A generous connection timeout: a loaded machine can take seconds to start a server.
    common = ["--format", "json", "--cwd", str(ROOT), "--connect-timeout", "120000"]
    for setting in [*server_env, "MEM_SOURCE=inspector"]:
        common += ["-e", setting]
    calls = {
        "initialize": ["--method", "initialize"],
        "tools": ["--method", "tools/list", "--strict"],
        "find": ["--method", "tools/call", "--tool-name", "find"]
        + ["--tool-arg", "query=vary header", "limit=5"],
        "add": ["--method", "tools/call", "--tool-name", "add"]
        + ["--tool-arg", "text=Billing runs on the 1st of each month", 'tags=["billing"]'],
        "invalid": ["--method", "tools/call", "--tool-name", "find"]
        + ["--tool-arg", "query=vary", "limit=0"],
    }
    running = {
        name: subprocess.Popen(
            [command, "--cli", *server, *arguments, *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, arguments in calls.items()
    }
    results: dict[str, tuple[int, Any, str]] = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=180)
        results[name] = (process.returncode, json.loads(out) if out.strip() else None, err)

    status, initialized, err = results["initialize"]
    assert status == 0, err
    info = initialized["result"]["serverInfo"]
    assert info["name"] == "memstore" and info["version"] == __import__("memstore").version()

    status, listed, err = results["tools"]
    assert status == 0, err  # --strict: no schema portability problem
    tools = {tool["name"]: tool for tool in listed["result"]["tools"]}
    assert set(tools) == {"add", "find", "show", "update", "link", "supersede", "context", "recent"}
    for tool in tools.values():
        assert all(p.get("description") for p in tool["inputSchema"]["properties"].values())
        assert tool["annotations"]["openWorldHint"] is False
    assert tools["find"]["annotations"]["readOnlyHint"] is True

    status, found, err = results["find"]
    assert status == 0, err
    payload = found["result"]["structuredContent"]
    assert [hit["id"] for hit in payload["results"]] == [known.id] and payload["more"] is False

    status, added, err = results["add"]
    assert status == 0, err
    memory = store.get(added["result"]["structuredContent"]["id"])
    assert memory.tags == ["billing"] and memory.source == "inspector"

    status, refused, _ = results["invalid"]
    assert status != 0 and refused["result"]["isError"] is True
    assert refused["result"]["content"][0]["text"] == (
        "limit must be at least 1 (got 0): call find again with valid arguments"
    )
