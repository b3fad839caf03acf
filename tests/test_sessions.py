"""Capturing agent sessions: mem import --from claude-code / codex, and --hook (sessions.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pygit2
import pytest

from memstore import sessions
from memstore.store import Store
from tests.conftest import Clock, mem_ok
from tests.session_logs import (
    BIG_OUTPUT,
    SECRETS,
    Claude,
    claude_session,
    codex_session,
    dump,
    text,
)

CLAUDE_ID = "5f1c2d3e-aaaa-4bbb-8ccc-000000000001"
CODEX_ID = "019a2d7a-41c4-78b1-b7cc-a45d62a89cd5"


@pytest.fixture(autouse=True)
def no_tool_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tools' own folders come from HOME (a temporary folder here), not the user's."""
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)


def home_logs(home: Path) -> tuple[Path, Path]:
    claude = dump(
        home / ".claude/projects/-home-ana-code-webshop" / f"{CLAUDE_ID}.jsonl",
        claude_session(CLAUDE_ID),
    )
    codex = dump(
        home / ".codex/sessions/2026/03/02" / f"rollout-2026-03-02T10-00-00-{CODEX_ID}.jsonl",
        codex_session(CODEX_ID),
    )
    return claude, codex


def commits(root: Path) -> int:
    repo = pygit2.Repository(str(root))
    return sum(1 for _ in repo.walk(repo.head.target))


def memories(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted((root / "memories").rglob("*.md"))
    }


def secrets_in_git(root: Path) -> list[str]:
    """Every secret found in the raw bytes of any object of the repository's object database."""
    repo = pygit2.Repository(str(root))
    found = []
    for oid in repo.odb:
        _kind, data = repo.odb.read(oid)
        found += [kind for kind, value in SECRETS.items() if value.encode() in data]
    return sorted(set(found))


def test_both_logs_are_captured_from_where_the_tools_keep_them(tmp_path: Path) -> None:
    home = Path.home()  # a temporary folder (conftest)
    home_logs(home)
    root = tmp_path / "store"
    mem_ok("init", str(root))
    before = commits(root)
    run = mem_ok("import", "--from", "claude-code", "--store", str(root), "--json")
    first = json.loads(run.stdout)
    assert first["malformed"] == 2 and first["problems"][0]["line"] == 16
    assert first["redacted"] == {
        "aws-access-key": 1,
        "env-secret": 1,
        "github-token": 1,
        "jwt": 1,
        "openai-api-key": 1,
        "private-key": 1,
        "stripe-key": 1,
        "url-password": 1,
    }
    codex = mem_ok("import", "--from", "codex", "--store", str(root))
    assert codex.stderr == (
        f"{home}/.codex/sessions/2026/03/02/rollout-2026-03-02T10-00-00-{CODEX_ID}.jsonl:16:"
        " 1 malformed line skipped (line 16 of what was new)\n"
        "imported 4 new from 1 codex log (18 new lines), 0 already present, 0 repeated,"
        " 1 malformed lines skipped, redacted 1 secret (1 anthropic-api-key)\n"
    )
    assert commits(root) == before + 2  # one commit for each import

    store = Store(root)
    listed = {item.title: store.get(item.id) for item in store.list()}
    assert sorted(listed) == sorted(
        [
            # Claude Code: the prompts, and each turn's final answer; no tool output, no
            # thinking, no "Let me look…", no meta line, no "yes", no sub-agent.
            "The checkout page fails on Safari with a CORS error. My token is…",
            "Fixed: nginx now sends `Vary: Origin` with the CORS headers, so Safari no…",
            "We decided to keep sessions in Redis, not in Postgres. Use AWS key…",
            "Understood: sessions go to Redis. I will not store the key anywhere.",
            "Also here is the .env for staging:",
            "Noted the staging settings; the secrets stay in the vault.",
            "Summarise what you did with the deploy key [redacted:private-key]",
            "The deploy key was added to the CI secrets, and the JWT [redacted:jwt] expires…",
            # Codex: no environment context, no reasoning, no "I'll check…", no event_msg copy.
            "Why do invoices round wrong for amounts like 10.005? The key is…",
            "Invoices used float `round()`, which rounds half to even on binary floats. I…",
            "From now on always use Decimal for money, never float.",
            "Agreed: money is Decimal everywhere; I added a lint rule for it.",
        ]
    )
    fixed = listed["Fixed: nginx now sends `Vary: Origin` with the CORS headers, so Safari no…"]
    prompt = listed["The checkout page fails on Safari with a CORS error. My token is…"]
    assert fixed.source == "claude-code" and fixed.session == CLAUDE_ID
    assert fixed.tags == ["webshop"] and fixed.extra == {"project": "webshop", "role": "assistant"}
    assert fixed.created_text == "2026-03-01T09:00:14.014Z"
    assert fixed.links == [prompt.id]
    # Only the commands that ran and did something: not `cat`, not the failed curl.
    assert fixed.body.endswith("```sh\n$ nginx -t && systemctl reload nginx\n```\n")
    decision = listed["From now on always use Decimal for money, never float."]
    assert decision.type == "decision" and decision.source == "codex"
    assert decision.session == CODEX_ID and decision.extra["project"] == "billing"
    everything = "".join(memories(root).values())
    assert BIG_OUTPUT[:200] not in everything and "line 3199:" not in everything
    assert "Checking rounding" not in everything and "should not repeat it" not in everything
    assert "search the code for CORS" not in everything and "null" not in everything
    assert secrets_in_git(root) == []
    state = (root / ".git/memstore/sessions.json").read_bytes()
    assert not [value for value in SECRETS.values() if value.encode() in state]

    again = mem_ok("import", "--from", "claude-code", "--store", str(root), "--json")
    assert json.loads(again.stdout)["imported"] == 0 and json.loads(again.stdout)["lines"] == 0
    mem_ok("import", "--from", "codex", "--store", str(root))
    assert commits(root) == before + 2  # a re-run adds nothing, not even a commit


def test_appended_lines_are_captured_next_time(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "s.jsonl"
    c = Claude(CLAUDE_ID)
    dump(log, [c.user("How do we rotate the signing keys?")])
    first = store.import_sessions("claude-code", [log])
    assert [m.title for m in first.added] == ["How do we rotate the signing keys?"]
    dump(log, [c.assistant(text("Rotate them with `make rotate-keys` every 90 days."))], mode="a")
    # A line still being written (no newline yet) waits for the next run.
    with log.open("a") as out:
        out.write('{"type": "user", "message": {"role": "user", "content": "Next')
    second = store.import_sessions("claude-code", [log])
    assert [m.title for m in second.added] == ["Rotate them with `make rotate-keys` every 90 days."]
    assert second.added[0].links == [first.added[0].id] and second.malformed_lines == 0
    with log.open("a") as out:
        out.write(' question: where do the keys live?"}, "uuid": "u9",')
        out.write(f' "timestamp": "2026-03-01T10:00:00Z", "sessionId": "{CLAUDE_ID}"}}\n')
    third = store.import_sessions("claude-code", [log])
    assert [m.title for m in third.added] == ["Next question: where do the keys live?"]
    assert store.import_sessions("claude-code", [log]).added == []


def test_a_rewritten_log_is_read_again_without_duplicates(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "s.jsonl"
    c = Claude(CLAUDE_ID)
    lines = [
        c.user("Which Python versions do we support?"),
        c.assistant(text("Python 3.11 to 3.14, tested in CI.")),
    ]
    dump(log, lines)
    assert len(store.import_sessions("claude-code", [log]).added) == 2
    # Rewritten from the start (compacted, or copied over): a new first line, the old ones kept.
    d = Claude(CLAUDE_ID)
    d.count = 100
    dump(log, [d.user("Summary of the earlier part of the conversation, kept by the tool"), *lines])
    dump(
        log, [c.user("Do we still support 3.10?"), c.assistant(text("No: 3.10 was dropped."))], "a"
    )
    again = store.import_sessions("claude-code", [log])
    assert again.rewritten == [str(log.resolve())]
    assert sorted(m.title for m in again.added) == [
        "Do we still support 3.10?",
        "No: 3.10 was dropped.",
        "Summary of the earlier part of the conversation, kept by the tool",
    ]
    assert again.present == 2  # the two already imported, found by id
    assert len(store.list()) == 5


def test_two_clones_importing_the_same_logs_write_the_same_files(
    tmp_path: Path, clock: Clock
) -> None:
    claude, codex = home_logs(tmp_path / "home2")
    files = []
    for name in ("one", "two"):
        store = Store.init(tmp_path / name, clock=clock)
        store.import_sessions("codex", [codex])
        store.import_sessions("claude-code", [claude.parent])
        files.append(memories(store.root))
    assert files[0] == files[1] and len(files[0]) == 12


def test_huge_texts_are_cut_with_a_note_and_repeats_are_left_out(
    store: Store, tmp_path: Path
) -> None:
    c = Claude(CLAUDE_ID)
    pasted = "Here is the whole traceback of the failing job:\n" + BIG_OUTPUT
    log = dump(
        tmp_path / "s.jsonl",
        [
            c.user(pasted),
            c.user("Please run the full test suite again"),
            c.user("Please run the full test suite again!"),
        ],
    )
    result = store.import_sessions("claude-code", [log])
    assert result.cut == 1 and result.repeated == 1 and len(result.added) == 2
    body = store.get(result.added[0].id).body
    assert len(body) < sessions.MAX_CHARS + 100
    note = re.search(r"\n\n\[cut: ([\d,]+) more characters are in the session log\]\n$", body)
    assert note is not None
    assert int(note.group(1).replace(",", "")) == len(pasted) - len(body[: note.start()]) - 1


def test_the_session_end_hook_captures_and_never_fails(tmp_path: Path) -> None:
    root = tmp_path / "store"
    mem_ok("init", str(root))
    log = dump(tmp_path / "t" / f"{CLAUDE_ID}.jsonl", claude_session(CLAUDE_ID))
    hook = {
        "session_id": CLAUDE_ID,
        "transcript_path": str(log),
        "cwd": "/home/ana/code/webshop",
        "hook_event_name": "SessionEnd",
        "reason": "exit",
    }
    done = mem_ok("import", "--hook", "--store", str(root), input=json.dumps(hook))
    assert done.stdout == ""
    assert (
        done.stderr == "mem: captured 8 new memories from session 5f1c2d3e (8 secrets redacted)\n"
    )
    assert secrets_in_git(root) == []
    missing = mem_ok(
        "import",
        "--hook",
        "--store",
        str(root),
        input=json.dumps({**hook, "transcript_path": "/nope.jsonl"}),
    )
    assert missing.stderr == (
        "mem: warning: session not captured: /nope.jsonl does not exist:"
        " give a session log or a folder\n"
    )
    garbage = mem_ok("import", "--hook", "--store", str(root), input="not json")
    assert garbage.stderr == (
        "mem: warning: session not captured: the hook input is not JSON: expected Claude Code's\n"
    )


def test_unknown_tool_and_bad_combinations_are_refused(tmp_path: Path) -> None:
    from tests.conftest import run_mem

    root = tmp_path / "store"
    mem_ok("init", str(root))
    wrong = run_mem("import", "--from", "cursor", "--store", str(root))
    assert wrong.returncode == 2 and "cursor" in wrong.stderr
    two = run_mem("import", "a.jsonl", "b.jsonl", "--store", str(root))
    assert two.returncode != 0
    assert two.stderr.startswith("mem: error: give one .jsonl file or folder to import")
