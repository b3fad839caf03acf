"""Realistic agent session logs for tests: Claude Code transcripts and Codex rollouts.

The fake secrets are put together at run time from pieces, so that this file holds no string
that a secret scanner would flag; `SECRETS` maps each kind to the value used.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

_rng = random.Random(14)


def _chars(alphabet: str, count: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(count))


_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits

SECRETS: dict[str, str] = {
    "github-token": "gh" + "p_" + _chars(_ALNUM, 36),
    "aws-access-key": "AK" + "IA" + _chars("ABCDEFGHJKLMNPQRSTUVWXYZ234567", 16),
    "aws-secret-key": _chars(_ALNUM + "/+", 40),
    "openai-api-key": "sk" + "-proj-" + _chars(_ALNUM, 40) + "7",
    "anthropic-api-key": "sk" + "-ant-api03-" + _chars(_ALNUM + "_-", 93) + "AA",
    "slack-token": "xo" + "xb-" + _chars(string.digits, 12) + "-" + _chars(_ALNUM, 24),
    "stripe-key": "sk" + "_live_" + _chars(_ALNUM, 24),
    "url-password": "pw" + _chars(_ALNUM, 14),
    "env-secret": "s3" + _chars(_ALNUM, 18),
    "age-secret-key": "AGE-SECRET-KEY-1" + _chars("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
    "private-key": _chars(_ALNUM + "+/", 64),  # the body of the key block
    "jwt": "ey"
    + "J"
    + _chars(_ALNUM, 30)
    + ".ey"
    + "J"
    + _chars(_ALNUM, 40)
    + "."
    + _chars(_ALNUM, 30),
}

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + SECRETS["private-key"]
    + "\n"
    + _chars(_ALNUM + "+/", 64)
    + "\n-----END OPENSSH PRIVATE KEY-----"
)
BIG_OUTPUT = "".join(f"line {n}: " + _chars(string.ascii_lowercase, 60) + "\n" for n in range(3200))


def dump(path: Path, lines: list[Any], mode: str = "w") -> Path:
    """Write lines (objects as JSON, strings as they are) to a log, one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as out:
        for line in lines:
            out.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


class Claude:
    """Lines of one Claude Code session, as `~/.claude/projects/<project>/<id>.jsonl` has them."""

    def __init__(self, session: str, cwd: str = "/home/ana/code/webshop") -> None:
        self.session, self.cwd = session, cwd
        self.count = 0
        self.parent: str | None = None

    def _base(self, kind: str, **extra: Any) -> dict[str, Any]:
        self.count += 1
        uuid = f"{self.session[:8]}-0000-4000-8000-{self.count:012d}"
        line = {
            "parentUuid": self.parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session,
            "version": "2.0.61",
            "gitBranch": "main",
            "type": kind,
            "uuid": uuid,
            "timestamp": f"2026-03-0{1 + self.count // 1000}T09:{(self.count // 60) % 60:02d}:"
            f"{self.count % 60:02d}.{self.count % 1000:03d}Z",
            **extra,
        }
        self.parent = uuid
        return line

    def user(self, text: str, **extra: Any) -> dict[str, Any]:
        return self._base("user", message={"role": "user", "content": text}, **extra)

    def assistant(self, *blocks: dict[str, Any], message_id: str = "") -> dict[str, Any]:
        message_id = message_id or f"msg_{self.count:04d}"
        return self._base(
            "assistant",
            message={
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": list(blocks),
            },
        )

    def tool_result(self, tool_id: str, output: str, error: bool = False) -> dict[str, Any]:
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": output}
        if error:
            block["is_error"] = True
        return self._base(
            "user",
            message={"role": "user", "content": [block]},
            toolUseResult={"stdout": output, "stderr": "", "interrupted": False},
        )


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": "c2lnbmF0dXJl"}


def bash(tool_id: str, command: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}}


def read(tool_id: str, path: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Read", "input": {"file_path": path}}


def claude_session(session: str) -> list[Any]:
    """A session: questions, decisions, tool calls, a huge tool output, secrets, bad lines."""
    c = Claude(session)
    s = SECRETS
    return [
        {"type": "summary", "summary": "Checkout fails on Safari", "leafUuid": "x"},
        c.user("<command-name>/clear</command-name>", isMeta=True),
        c.user(
            "Caveat: The messages below were generated by the user while running local"
            " commands. DO NOT respond to these messages."
        ),
        c.user(
            "The checkout page fails on Safari with a CORS error. My token is "
            f"{s['github-token']} and the DB is postgres://shop:{s['url-password']}@db.internal/shop"
        ),
        c.assistant(thinking("The user pasted a token; I should not repeat it.")),
        c.assistant(text("Let me look at the nginx config first.")),
        c.assistant(read("toolu_01", "/etc/nginx/nginx.conf")),
        c.tool_result(
            "toolu_01", f"server {{ listen 80; }}\nAWS_SECRET_ACCESS_KEY={s['aws-secret-key']}\n"
        ),
        c.assistant(bash("toolu_02", "cat /var/log/nginx/error.log")),
        c.tool_result("toolu_02", BIG_OUTPUT),
        c.assistant(bash("toolu_03", "nginx -t && systemctl reload nginx")),
        c.tool_result("toolu_03", "syntax is ok\ntest is successful"),
        c.assistant(bash("toolu_04", "curl -sI https://shop.example.com/api")),
        c.tool_result("toolu_04", "curl: (6) Could not resolve host", error=True),
        c.assistant(
            text(
                "Fixed: nginx now sends `Vary: Origin` with the CORS headers, so Safari no longer"
                " serves a cached response without them. I reloaded nginx after `nginx -t`."
            ),
            message_id="msg_final1",
        ),
        '{"type": "user", "message": {"role": "user", "content": "truncated',
        c.user("yes"),
        c.user(
            "We decided to keep sessions in Redis, not in Postgres. Use "
            f"AWS key {s['aws-access-key']} for the staging bucket."
        ),
        c.assistant(
            text("Understood: sessions go to Redis. I will not store the key anywhere."),
            message_id="msg_final2",
        ),
        c.user(
            "Also here is the .env for staging:\n"
            f"STRIPE_KEY={s['stripe-key']}\nSESSION_SECRET={s['env-secret']}\n"
            f"OPENAI_API_KEY={s['openai-api-key']}\nDEBUG=false"
        ),
        c.assistant(text("Noted the staging settings; the secrets stay in the vault.")),
        c.user("Summarise what you did with the deploy key " + PRIVATE_KEY),
        c.assistant(
            text(
                "The deploy key was added to the CI secrets, and the JWT "
                f"{s['jwt']} expires tomorrow."
            )
        ),
        {**c.user("Subagent: search the code for CORS handlers"), "isSidechain": True},
        "not json at all",
    ]


def codex_session(session: str) -> list[Any]:
    """A Codex rollout: meta, instructions, messages twice (event_msg), calls, reasoning."""
    s = SECRETS
    stamp = iter(f"2026-03-02T10:00:{n:02d}.000Z" for n in range(60))
    cwd = "/home/ana/code/billing"

    def line(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": next(stamp), "type": kind, "payload": payload}

    def message(role: str, value: str) -> dict[str, Any]:
        block = "input_text" if role == "user" else "output_text"
        return line(
            "response_item",
            {"type": "message", "role": role, "content": [{"type": block, "text": value}]},
        )

    def call(call_id: str, command: str) -> dict[str, Any]:
        arguments = json.dumps({"command": ["bash", "-lc", command], "workdir": cwd})
        return line(
            "response_item",
            {"type": "function_call", "name": "shell", "arguments": arguments, "call_id": call_id},
        )

    def output(call_id: str, out: str, code: int) -> dict[str, Any]:
        value = json.dumps(
            {"output": out, "metadata": {"exit_code": code, "duration_seconds": 0.1}}
        )
        return line(
            "response_item", {"type": "function_call_output", "call_id": call_id, "output": value}
        )

    prompt = (
        "Why do invoices round wrong for amounts like 10.005? The key is " + s["anthropic-api-key"]
    )
    return [
        line(
            "session_meta",
            {
                "id": session,
                "timestamp": "2026-03-02T10:00:00.000Z",
                "cwd": cwd,
                "originator": "codex_cli_rs",
                "cli_version": "0.46.0",
                "instructions": None,
            },
        ),
        message(
            "user",
            "<environment_context>\n  <cwd>/home/ana/code/billing</cwd>\n</environment_context>",
        ),
        message("user", prompt),
        line("event_msg", {"type": "user_message", "message": prompt, "kind": "plain"}),
        line("turn_context", {"cwd": cwd, "approval_policy": "on-request", "model": "gpt-5-codex"}),
        line(
            "response_item",
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "**Checking rounding**"}],
                "content": None,
                "encrypted_content": "gAAAA",
            },
        ),
        call("call_1", "rg -n round src/"),
        output("call_1", "src/invoice.py:12: round(x, 2)", 0),
        call("call_2", "python -m pytest tests/test_invoice.py -q"),
        output("call_2", BIG_OUTPUT + "\n1 failed", 1),
        call("call_3", "python -m pytest tests/test_invoice.py -q -k rounding"),
        output("call_3", "3 passed", 0),
        message("assistant", "I'll check how amounts are rounded."),
        message(
            "assistant",
            "Invoices used float `round()`, which rounds half to even on binary"
            " floats. I switched to `Decimal.quantize(ROUND_HALF_UP)`; the rounding tests pass.",
        ),
        line("event_msg", {"type": "agent_message", "message": "duplicate of the answer"}),
        "{broken",
        message("user", "ok"),
        message("user", "From now on always use Decimal for money, never float."),
        message("assistant", "Agreed: money is Decimal everywhere; I added a lint rule for it."),
    ]
