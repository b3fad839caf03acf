"""The agent memory loop end to end: `mem setup claude-code` on a clean home, then a session.

The hooks are run as Claude Code runs them: the command `mem setup` wrote into
`~/.claude/settings.json`, through a shell, with the hook's JSON on stdin. Claude Code itself
cannot run here; its transcript is generated (tests/session_logs.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pygit2

from memstore import locate
from memstore.store import Store
from tests.conftest import mem_ok
from tests.session_logs import BIG_OUTPUT, SECRETS, Claude, bash, claude_session, dump, text

SESSION = "5f1c2d3e-aaaa-4bbb-8ccc-000000000001"
NEXT_SESSION = "9b7e6d5c-bbbb-4ccc-8ddd-000000000002"
PROJECT = "/home/ana/code/webshop"


def hook_commands(home: Path) -> dict[str, str]:
    """Each event's memstore hook command, as `mem setup` registered it."""
    settings = json.loads((home / ".claude" / "settings.json").read_text(encoding="utf-8"))
    commands = {}
    for event, groups in settings["hooks"].items():
        [command] = [hook["command"] for group in groups for hook in group["hooks"]]
        commands[event] = command
    return commands


def run_hook(command: str, payload: dict[str, Any], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a hook command the way Claude Code does: a shell, the hook's JSON on stdin."""
    return subprocess.run(
        command,
        shell=True,
        input=json.dumps(payload),
        capture_output=True,
        encoding="utf-8",
        cwd=cwd,
        env=dict(os.environ),
        timeout=120,
    )


def secrets_in(data: bytes) -> list[str]:
    return [kind for kind, value in SECRETS.items() if value.encode() in data]


def secrets_in_git_objects(root: Path) -> list[str]:
    """The secrets found in the raw bytes of any object of the store's object database."""
    repo = pygit2.Repository(str(root))
    found: set[str] = set()
    count = 0
    for oid in repo.odb:
        count += 1
        found.update(secrets_in(repo.odb.read(oid)[1]))
    assert count > 10  # the walk saw the session's commits, trees and blobs
    return sorted(found)


def more_of_the_session() -> list[Any]:
    """The rest of the session: the kinds of secret its first part does not hold."""
    c = Claude(SESSION, cwd=PROJECT)
    c.count = 100
    return [
        c.user(
            "The release notifier posts nothing. Its config has SLACK_TOKEN="
            f"{SECRETS['slack-token']} and ANTHROPIC_API_KEY={SECRETS['anthropic-api-key']}"
        ),
        c.assistant(bash("toolu_10", "cat notifier/config.yaml")),
        c.tool_result("toolu_10", f"age_identity: {SECRETS['age-secret-key']}\nchannel: #rel"),
        c.assistant(
            text(
                "The release notifier posted to #rel, which was archived; it now posts to"
                " #releases. Keep the age identity out of the repository."
            )
        ),
    ]


def test_setup_then_a_session_is_captured_without_secrets_and_recalled_next_time(
    tmp_path: Path,
) -> None:
    home = Path(os.environ["HOME"])  # a clean, temporary home folder (conftest)
    assert not any(home.iterdir()) or [p.name for p in home.iterdir()] == [".gitconfig"]
    work = tmp_path / "work"
    work.mkdir()

    # 1. One command, no store yet: the default store is made and registered.
    setup = mem_ok("setup", "claude-code", cwd=work)
    store_root = locate.default_store_path()
    assert locate.is_store(store_root)
    assert f"store: {store_root}" in setup.stderr
    commands = hook_commands(home)
    assert sorted(commands) == ["SessionEnd", "SessionStart", "UserPromptSubmit"]
    assert all(f"--store {store_root} " in command for command in commands.values())
    assert "memstore" in json.loads((home / ".claude.json").read_text())["mcpServers"]

    # 2. A session happens: Claude Code writes its transcript where it keeps them.
    transcript = dump(
        home / ".claude" / "projects" / "-home-ana-code-webshop" / f"{SESSION}.jsonl",
        claude_session(SESSION) + more_of_the_session(),
    )
    assert len(secrets_in(transcript.read_bytes())) == len(SECRETS)  # every kind is in the log

    # 3. The session ends: the SessionEnd hook captures it.
    end = run_hook(
        commands["SessionEnd"],
        {
            "session_id": SESSION,
            "transcript_path": str(transcript),
            "cwd": PROJECT,
            "hook_event_name": "SessionEnd",
            "reason": "prompt_input_exit",
        },
        cwd=work,
    )
    assert end.returncode == 0 and end.stdout == ""
    assert end.stderr.startswith("mem: captured 10 new memories from session 5f1c2d3e (")

    store = Store(store_root)
    captured = {item.title: store.get(item.id) for item in store.list()}
    assert len(captured) == 10
    fix = captured["Fixed: nginx now sends `Vary: Origin` with the CORS headers, so Safari no…"]
    decision = captured["We decided to keep sessions in Redis, not in Postgres. Use AWS key…"]
    for memory in (fix, decision):
        assert memory.session == SESSION and memory.source == "claude-code"
        assert memory.extra["project"] == "webshop"
    assert "```sh\n$ nginx -t && systemctl reload nginx\n```" in fix.body
    assert "[redacted:aws-access-key]" in decision.body
    text = "".join(m.body + m.title for m in captured.values())
    assert "The user pasted a token" not in text  # thinking
    assert "Let me look at the nginx config" not in text  # a step, not a conclusion
    assert BIG_OUTPUT[:100] not in text and "syntax is ok" not in text  # tool output

    # No secret in any git object, nor anywhere else in the store's folder (index, caches).
    assert secrets_in_git_objects(store_root) == []
    leaked = {
        str(path.relative_to(store_root)): secrets_in(path.read_bytes())
        for path in store_root.rglob("*")
        if path.is_file() and secrets_in(path.read_bytes())
    }
    assert leaked == {}

    # 4. A new session starts in the project: a digest of what the store knows about it.
    start = run_hook(
        commands["SessionStart"],
        {
            "session_id": NEXT_SESSION,
            "transcript_path": str(transcript.with_name(f"{NEXT_SESSION}.jsonl")),
            "cwd": PROJECT,
            "hook_event_name": "SessionStart",
            "source": "startup",
        },
        cwd=work,
    )
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("memstore: memories you can cite by id")
    about = start.stdout.split("About webshop:\n")[1].split("Newest:")[0].splitlines()
    assert len(about) == 5  # the session's newest memories: tagged with the project
    newest = captured["The release notifier posted to #rel, which was archived; it now posts to…"]
    assert about[0] == (
        f"- {newest.title} (id {newest.id} · {newest.created_text[:10]} · {newest.path})"
    )

    # 5. The next prompt is about the same topic: the captured conclusion is recalled, cited.
    prompt = {
        "session_id": NEXT_SESSION,
        "transcript_path": str(transcript.with_name(f"{NEXT_SESSION}.jsonl")),
        "cwd": PROJECT,
        "hook_event_name": "UserPromptSubmit",
        "prompt": "Safari CORS errors are back. Did we fix that in nginx?",
    }
    recalled = run_hook(commands["UserPromptSubmit"], prompt, cwd=work)
    assert recalled.returncode == 0, recalled.stderr
    assert recalled.stdout.startswith("Memories from memstore that may bear on this prompt")
    assert f"id: {fix.id} · date: {fix.created_text[:10]}" in recalled.stdout
    assert f"path: {fix.path}\n" in recalled.stdout
    assert "Vary: Origin" in recalled.stdout
    assert not secrets_in(recalled.stdout.encode())
    # Said once in a session: the same question again adds nothing.
    again = run_hook(commands["UserPromptSubmit"], prompt, cwd=work)
    assert (again.returncode, again.stdout) == (0, "")

    # 6. The session is captured again at its end: nothing new, nothing twice.
    end_again = run_hook(
        commands["SessionEnd"],
        {
            "session_id": SESSION,
            "transcript_path": str(transcript),
            "cwd": PROJECT,
            "hook_event_name": "SessionEnd",
            "reason": "clear",
        },
        cwd=work,
    )
    assert end_again.stderr == "mem: captured 0 new memories from session 5f1c2d3e\n"
    assert len(Store(store_root).list()) == 10
