"""mem context: the most relevant memories for a prompt, packed within a token budget."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from memstore import context
from memstore.store import Store
from tests.conftest import mem_ok, run_mem

ROOT = Path(__file__).resolve().parent.parent
LONG = "\n".join(f"Step {n}: check the deploy runbook line {n} before going on." for n in range(60))


def fill(store: Store) -> dict[str, str]:
    ids = {}
    ids["runbook"] = store.add(f"Deploy runbook\n\n{LONG}", tags=["deploy"]).id
    ids["friday"] = store.add("Never deploy on Fridays: nobody is around to roll back").id
    ids["canary"] = store.add("Deploy to the canary first, then everywhere", tags=["deploy"]).id
    ids["css"] = store.add("The admin pages use a strict CSP").id
    return ids


def test_estimate_is_characters_over_four_rounded_up() -> None:
    assert [context.estimate_tokens("x" * n) for n in (0, 1, 4, 5, 400)] == [0, 1, 1, 2, 100]


def test_packs_in_rank_order_with_a_citable_header(store: Store) -> None:
    ids = fill(store)
    result = store.context("deploy", budget=4000)
    ranked = [hit.id for hit in store.find("deploy", limit=50)]
    chosen = [item.id for item in result.items]
    assert chosen == [i for i in ranked if i in chosen] and set(chosen) >= {
        ids["friday"],
        ids["canary"],
        ids["runbook"],
    }
    assert ids["css"] not in chosen
    text = result.text
    assert text.startswith("# Memories relevant to: deploy\nFrom memstore.")
    for item in result.items:
        memory = store.get(item.id)
        assert (
            f"\n## {memory.title}\nid: {memory.id} · date: {memory.created_text[:10]}"
            f" · type: {memory.type}"
        ) in text
        assert f"path: {memory.path}\n" in text
    assert "Step 59" in text and not any(item.truncated for item in result.items)
    assert result.tokens <= 4000


def test_a_memory_too_big_is_cut_at_a_line_and_says_so(store: Store) -> None:
    ids = fill(store)
    budget = 300
    result = store.context("runbook", budget=budget)
    (item,) = result.items
    assert item.id == ids["runbook"] and item.truncated
    assert result.tokens <= budget
    assert f"[…cut to fit; `mem show {ids['runbook']}` has the rest]" in item.text
    body_lines = item.text.split("\n\n", 1)[1].splitlines()[:-1]
    assert all(line in store.get(item.id).body.splitlines() for line in body_lines if line)


def test_never_over_budget_and_deterministic(store: Store) -> None:
    fill(store)
    seen = set()
    for budget in range(100, 3000, 41):
        first = store.context("deploy", budget=budget)
        assert first.tokens <= budget, budget
        assert sum(item.tokens for item in first.items) <= budget
        assert store.context("deploy", budget=budget).text == first.text
        seen.add(tuple((item.id, item.truncated) for item in first.items))
    assert len(seen) > 3  # the budgets did change what fits


def test_superseded_memories_are_left_out(store: Store) -> None:
    old = store.add("Deploy on Fridays is fine")
    new = store.add("Never deploy on Fridays", supersedes=old.id)
    chosen = [item.id for item in store.context("deploy fridays", budget=1000).items]
    assert chosen == [new.id]


def test_no_query_gives_the_newest(store: Store) -> None:
    ids = fill(store)
    result = store.context("", budget=1000)
    assert result.text.startswith("# The most recent memories\n")
    assert [item.id for item in result.items][:2] == [ids["css"], ids["canary"]]


def test_cli_text_json_empty_and_errors(store: Store) -> None:
    ids = fill(store)
    base = ["--store", str(store.root), "context"]
    text = run_mem(*base, "canary", "--budget", "500")
    assert text.returncode == 0, text.stderr
    assert text.stdout == store.context("canary", budget=500).text
    assert f"id: {ids['canary']}" in text.stdout
    data = json.loads(mem_ok(*base, "canary", "--json").stdout)
    assert list(data) == ["query", "budget", "tokens", "memories", "text"]
    assert data["budget"] == 2000 and data["memories"][0]["id"] == ids["canary"]
    assert list(data["memories"][0]) == [
        "id",
        "title",
        "date",
        "path",
        "type",
        "tags",
        "score",
        "truncated",
        "text",
        "tokens",
        "age",
        "expired",
    ]
    empty = run_mem(*base, "zzzyzzx")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "no memories found\n")
    small = run_mem(*base, "canary", "--budget", "20")
    assert small.returncode == 1
    assert small.stderr == ("mem: error: a budget of 20 tokens is too small: give at least 100\n")


def doc_blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "agents.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_documented_session_start_hook_prints_the_block(store: Store, tmp_path: Path) -> None:
    fill(store)
    text = (ROOT / "docs" / "agents.md").read_text()
    (command,) = re.findall(r"`(mem context [^`]*CLAUDE_PROJECT_DIR[^`]*)`", text)
    project = tmp_path / "deploy"
    project.mkdir()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mem").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m memstore "$@"\n')
    (shim / "mem").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "MEM_STORE": str(store.root),
        "CLAUDE_PROJECT_DIR": str(project),
    }
    result = subprocess.run(
        ["bash", "-c", command], env=env, cwd=project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == store.context("deploy", budget=1500).text != ""
    # With no store at all, the hook prints nothing and does not fail the session.
    env["MEM_STORE"] = str(tmp_path / "missing")
    result = subprocess.run(
        ["bash", "-c", command], env=env, cwd=project, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (0, "")
