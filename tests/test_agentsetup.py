"""mem setup: memstore registered in Claude Code's, Cursor's and Codex's own config files."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memstore import configedit
from memstore.store import Store
from tests.conftest import mem_ok, run_mem

CLAUDE_USER = """{
  "numStartups": 41,
  "theme": "dark",
  "projects": {
    "/home/me/src/app": {
      "allowedTools": [],
      "mcpServers": {}
    }
  },
  "mcpServers": {
    "playwright": {
      "type": "stdio",
      "command": "npx",
      "args": ["@playwright/mcp@latest"],
      "env": {}
    }
  },
  "userID": "abc"
}
"""

CLAUDE_SETTINGS = """{
    "permissions": {"allow": ["Bash(npm run lint)"], "deny": []},
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "echo pre"}]
            }
        ],
        "UserPromptSubmit": [
            {
                "hooks": [
                    {
                        "type": "command",
                        "command": "date"
                    }
                ]
            }
        ]
    },
    "model": "opus"
}
"""

CURSOR = """{
\t"mcpServers": {
\t\t"context7": {"url": "https://mcp.context7.com/mcp", "headers": {"K": "${env:K}"}},
\t\t"fs": {
\t\t\t"command": "npx",
\t\t\t"args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
\t\t}
\t}
}
"""

CODEX = """# my codex config
model = "o4-mini"  # fast
approval_policy = "on-request"

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-server"]
env = { "API_KEY" = "value" }
# about the profiles below

[profiles.work]
model = "gpt-5"
"""


def home() -> Path:
    return Path(os.environ["HOME"])


def write_fixtures() -> dict[Path, str]:
    files = {
        home() / ".claude.json": CLAUDE_USER,
        home() / ".claude" / "settings.json": CLAUDE_SETTINGS,
        home() / ".cursor" / "mcp.json": CURSOR,
        home() / ".codex" / "config.toml": CODEX,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return files


def snapshot() -> dict[str, bytes]:
    return {
        str(path.relative_to(home())): path.read_bytes()
        for path in sorted(home().rglob("*"))
        if path.is_file() and not path.name.endswith(".bak") and path.name != ".gitconfig"
    }


def test_setup_all_merges_into_every_file_and_keeps_the_users_entries(store: Store) -> None:
    write_fixtures()
    result = mem_ok("--store", str(store.root), "setup")
    assert "updated: ~/.claude/settings.json (backup: ~/.claude/settings.json.bak)" in result.stderr

    mem = str(Path(sys.executable).parent / "mem")
    user = json.loads((home() / ".claude.json").read_text())
    assert list(user) == ["numStartups", "theme", "projects", "mcpServers", "userID"]
    assert list(user["mcpServers"]) == ["playwright", "memstore"]
    assert user["mcpServers"]["memstore"] == {
        "type": "stdio",
        "command": mem,
        "args": ["--store", str(store.root), "mcp"],
        "env": {"MEM_SOURCE": "claude-code"},
    }
    assert user["projects"]["/home/me/src/app"]["mcpServers"] == {}

    settings = json.loads((home() / ".claude" / "settings.json").read_text())
    hooks = settings["hooks"]
    assert hooks["PreToolUse"] == [
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo pre"}]}
    ]
    assert hooks["UserPromptSubmit"][0] == {"hooks": [{"type": "command", "command": "date"}]}
    prefix = shlex.join([sys.executable, "-P", "-m", "memstore", "--store", str(store.root)])
    assert [group["hooks"][0]["command"] for group in hooks["UserPromptSubmit"][1:]] == [
        f"{prefix} recall"
    ]
    assert hooks["SessionStart"][0]["hooks"][0]["command"] == f"{prefix} recall"
    assert hooks["SessionEnd"][0]["hooks"][0]["command"] == (
        f"{prefix} import --from claude-code --hook"
    )
    assert settings["permissions"] == {"allow": ["Bash(npm run lint)"], "deny": []}

    cursor = json.loads((home() / ".cursor" / "mcp.json").read_text())
    assert list(cursor["mcpServers"]) == ["context7", "fs", "memstore"]
    assert cursor["mcpServers"]["memstore"]["env"] == {"MEM_SOURCE": "cursor"}
    assert '\t\t"memstore": {\n\t\t\t"command"' in (home() / ".cursor" / "mcp.json").read_text()

    codex_text = (home() / ".codex" / "config.toml").read_text()
    assert codex_text.startswith(CODEX)  # comments and all, untouched
    codex = tomllib.loads(codex_text)
    assert codex["mcp_servers"]["memstore"] == {
        "command": mem,
        "args": ["--store", str(store.root), "mcp"],
        "env": {"MEM_SOURCE": "codex"},
    }
    assert codex["mcp_servers"]["docs"]["env"] == {"API_KEY": "value"}
    # Each file that changed was copied first.
    assert (home() / ".codex" / "config.toml.bak").read_text() == CODEX
    assert (home() / ".claude" / "settings.json.bak").read_text() == CLAUDE_SETTINGS


def test_a_second_run_changes_nothing_and_remove_gives_back_the_original_bytes(
    store: Store,
) -> None:
    write_fixtures()
    before = snapshot()
    mem_ok("--store", str(store.root), "setup")
    after_setup = snapshot()
    second = mem_ok("--store", str(store.root), "setup")
    assert snapshot() == after_setup
    assert second.stderr.count("unchanged: ") == 4
    mem_ok("--store", str(store.root), "setup", "--remove")
    assert snapshot() == before


def test_setup_and_remove_on_a_clean_home_leave_no_file(store: Store) -> None:
    mem_ok("--store", str(store.root), "setup", "all")
    assert (home() / ".claude" / "settings.json").is_file()
    mem_ok("--store", str(store.root), "setup", "--remove")
    assert snapshot() == {}


def test_dry_run_prints_a_diff_and_writes_nothing(store: Store) -> None:
    write_fixtures()
    before = snapshot()
    result = mem_ok("--store", str(store.root), "setup", "codex", "--dry-run")
    assert snapshot() == before
    assert result.stdout.startswith("--- ~/.codex/config.toml\n+++ ~/.codex/config.toml\n")
    assert "+[mcp_servers.memstore]\n" in result.stdout
    assert ".claude" not in result.stdout


def test_setup_again_with_another_store_replaces_its_own_entries_only(
    store: Store, tmp_path: Path
) -> None:
    write_fixtures()
    other = Store.init(tmp_path / "other")
    mem_ok("--store", str(store.root), "setup", "claude-code")
    mem_ok("--store", str(other.root), "setup", "claude-code")
    settings = json.loads((home() / ".claude" / "settings.json").read_text())
    prompt_hooks = [g["hooks"][0]["command"] for g in settings["hooks"]["UserPromptSubmit"]]
    assert len(prompt_hooks) == 2 and prompt_hooks[0] == "date"
    assert str(other.root) in prompt_hooks[1] and str(store.root) not in prompt_hooks[1]
    assert len(settings["hooks"]["SessionStart"]) == 1


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    [
        (
            ".claude/settings.json",
            '{"hooks": {"UserPromptSubmit": [}\n',
            "~/.claude/settings.json is not valid JSON: Expecting value (line 1, column 33)",
        ),
        (
            ".claude/settings.json",
            '{"hooks": []}\n',
            "~/.claude/settings.json: 'hooks' should be a JSON object",
        ),
        (".codex/config.toml", "[mcp_servers.docs\n", "~/.codex/config.toml is not valid TOML"),
        (
            ".codex/config.toml",
            '[mcp_servers]\nmemstore = { command = "mem" }\n',
            "~/.codex/config.toml defines mcp_servers.memstore in a form 'mem setup' does not",
        ),
    ],
)
def test_a_malformed_file_is_one_line_and_nothing_is_written(
    store: Store, relative: str, text: str, message: str
) -> None:
    write_fixtures()
    (home() / relative).write_text(text)
    before = snapshot()
    result = run_mem("--store", str(store.root), "setup")
    assert result.returncode == 1
    assert result.stderr.startswith(f"mem: error: {message}")
    assert result.stderr.count("\n") == 1
    assert snapshot() == before
    assert not list(home().rglob("*.bak"))


def test_a_store_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = run_mem("--store", str(tmp_path / "nowhere"), "setup")
    assert result.returncode == 1
    assert "is not a memstore store: run 'mem init" in result.stderr
    assert snapshot() == {}


def test_codex_home_is_honoured(store: Store, tmp_path: Path) -> None:
    codex_home = tmp_path / "codex-home"
    mem_ok("--store", str(store.root), "setup", "codex", env={"CODEX_HOME": str(codex_home)})
    assert "memstore" in tomllib.loads((codex_home / "config.toml").read_text())["mcp_servers"]
    assert not (home() / ".codex").exists()


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "{}\n",
        '{"a": 1}',
        '{\n    "a": [1, 2],\n    "b": {"c": null}\n}\n',
        '{\n\t"mcpServers": {\n\t\t"x": {"command": "y"}\n\t},\n\t"z": "\\u00e9\\"}"\n}',
    ],
)
def test_json_add_then_delete_is_the_identity(text: str) -> None:
    root = configedit.parse_json(text, "t")
    added = configedit.add_entry(text, root, {"k": ["v", {"w": 1}]}, "memstore")
    assert json.loads(added) == {**json.loads(text), "memstore": {"k": ["v", {"w": 1}]}}
    again = configedit.parse_json(added, "t")
    assert configedit.delete_entry(added, again, len(again.entries) - 1) == text


def test_the_registered_prompt_hook_recalls_once_per_session(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "memories")
    wanted = store.add(
        "The staging database password rotates every Monday; the rotation script lives in"
        " ops/rotate_pg.sh and must run before the nightly export.",
        title="Staging database password rotation",
    )
    store.add("Lunch on Fridays is at noon in the big room.", title="Friday lunch")
    mem_ok("--store", str(store.root), "setup", "claude-code")
    settings = json.loads((home() / ".claude" / "settings.json").read_text())
    command = settings["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]

    def prompt(text: str, session: str) -> subprocess.CompletedProcess[str]:
        payload = {
            "session_id": session,
            "transcript_path": str(tmp_path / "t.jsonl"),
            "cwd": str(tmp_path),
            "hook_event_name": "UserPromptSubmit",
            "prompt": text,
        }
        return subprocess.run(
            command,
            shell=True,
            input=json.dumps(payload),
            capture_output=True,
            encoding="utf-8",
            cwd=tmp_path,
            timeout=60,
        )

    first = prompt("how does the staging database password rotation work?", "s-1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Memories from memstore that may bear on this prompt")
    assert f"id: {wanted.id} · date: {wanted.created_text[:10]}" in first.stdout
    assert f"path: {wanted.path}\n" in first.stdout
    assert "ops/rotate_pg.sh" in first.stdout and "Friday lunch" not in first.stdout
    again = prompt("and who runs the staging password rotation script?", "s-1")
    assert (again.returncode, again.stdout) == (0, "")
    other_session = prompt("staging database password rotation?", "s-2")
    assert wanted.id in other_session.stdout
    unrelated = prompt("write a haiku about autumn leaves", "s-3")
    assert (unrelated.returncode, unrelated.stdout, unrelated.stderr) == (0, "", "")


# Other shapes of each tool's files that a user may have: each must come back byte for byte.
ROUND_TRIPS = {
    "claude-code": [
        {".claude.json": CLAUDE_USER, ".claude/settings.json": CLAUDE_SETTINGS},
        {".claude.json": '{"numStartups":3,"mcpServers":{}}', ".claude/settings.json": "{}"},
        {
            ".claude.json": '{\n  "userID": "abc"\n}',
            ".claude/settings.json": '{\n  "hooks": {\n    "SessionEnd": [\n      {"hooks":'
            ' [{"type": "command", "command": "~/bin/backup-transcript"}]}\n    ]\n  },\n'
            '  "hooks_note": "mine"\n}\n',
        },
        {".claude/settings.json": '{\r\n  "model": "opus",\r\n  "hooks": {}\r\n}\r\n'},
    ],
    "cursor": [
        {".cursor/mcp.json": CURSOR},
        {".cursor/mcp.json": '{"mcpServers": {}}'},
        {".cursor/mcp.json": '{\n  "mcpServers": {\n    "fs": {"command": "npx"}\n  }\n}\n'},
    ],
    "codex": [
        {".codex/config.toml": CODEX},
        {".codex/config.toml": 'model = "o3"'},
        {".codex/config.toml": "[mcp_servers]\n\n[mcp_servers.fs]\ncommand = 'npx'\n"},
        {".codex/config.toml": "# only a comment\n\n[tui]\nnotifications = true\n# last\n"},
    ],
}


@pytest.mark.parametrize(
    ("tool", "files"),
    [(tool, files) for tool, cases in ROUND_TRIPS.items() for files in cases],
)
def test_each_tools_files_round_trip_through_setup_and_remove(
    store: Store, tool: str, files: dict[str, str]
) -> None:
    for relative, text in files.items():
        (home() / relative).parent.mkdir(parents=True, exist_ok=True)
        (home() / relative).write_bytes(text.encode())
    before = snapshot()
    mem_ok("--store", str(store.root), "setup", tool)
    after_setup = snapshot()
    assert after_setup != before
    for relative, text in files.items():  # each still parses, with memstore in it
        if relative.endswith(".toml"):
            assert "memstore" in tomllib.loads((home() / relative).read_text())["mcp_servers"]
        else:
            json.loads((home() / relative).read_text())
        if "\r\n" in text:  # a file in CRLF line endings stays in them
            written = after_setup[relative]
            assert written.count(b"\n") == written.count(b"\r\n")
    mem_ok("--store", str(store.root), "setup", tool)
    assert snapshot() == after_setup
    mem_ok("--store", str(store.root), "setup", tool, "--remove")
    assert snapshot() == before


def test_remove_after_the_user_edited_the_file_keeps_the_edit(store: Store) -> None:
    path = home() / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {}}')
    mem_ok("--store", str(store.root), "setup", "cursor")
    edited = json.loads(path.read_text())
    edited["mcpServers"]["fs"] = {"command": "npx"}
    path.write_text(json.dumps(edited))
    mem_ok("--store", str(store.root), "setup", "cursor", "--remove")
    assert json.loads(path.read_text()) == {"mcpServers": {"fs": {"command": "npx"}}}
