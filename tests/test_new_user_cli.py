"""What a new user of `mem` hit: option places, query errors, output, exit statuses, limits."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from memstore.errors import QuerySyntaxError
from memstore.store import Store
from tests.conftest import run_mem


def _with(store: Store, texts: list[str], tags: list[str] | None = None) -> list[str]:
    return [store.add(text, tags=tags or []).id for text in texts]


def _on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run mem with its stdout on a pseudo-terminal; return what it printed there."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "memstore", *args],
            stdout=follower,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            timeout=120,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # Linux: the terminal is gone once everything is read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert process.returncode == 0, process.stderr
    return b"".join(chunks).decode()


# Global options in either place


def test_store_and_json_work_before_and_after_the_command(store: Store) -> None:
    root = str(store.root)
    assert run_mem("add", "CORS needs the Vary header", "--store", root).returncode == 0
    assert run_mem("--store", root, "add", "CSP blocks inline scripts").returncode == 0
    for args in (
        ["find", "cors", "--store", root, "--json"],
        ["--store", root, "--json", "find", "cors"],
        ["--json", "find", "cors", "--store", root],
    ):
        found = run_mem(*args)
        assert found.returncode == 0, (args, found.stderr)
        assert [r["title"] for r in json.loads(found.stdout)["results"]] == [
            "CORS needs the Vary header"
        ]
    listed = run_mem("--json", "list", "--store", root)
    assert len(json.loads(listed.stdout)["memories"]) == 2
    # After the command, --store wins over the one before it, as a later option does.
    other = Store.init(store.root.parent / "other")
    assert run_mem("--store", root, "add", "in the other store", "--store", str(other.root))
    assert [m.title for m in other.list()] == ["in the other store"]
    refused = run_mem("--json", "reindex", "--store", root)
    assert refused.returncode == 2
    assert "mem reindex has no --json" in refused.stderr


# Query errors


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("created:2026-13", "cannot read the date '2026-13' in the query 'created:2026-13': use"),
        ("created:2026-02-30", "cannot read the date '2026-02-30'"),
        ("created:>2026-13", "cannot read the date '2026-13'"),
        ("created:[2026-01 to 2026-13]", "cannot read the date '2026-13'"),
        ("created:soon", "cannot read the date 'soon'"),
        ("web OR", "the query 'web OR' ends with OR: give a search word on each side of OR"),
        ("OR web", "the query 'OR web' starts with OR"),
        ("web AND", "ends with AND"),
        ("web OR OR cors", "has nothing to search for after OR"),
        ("web NOT", "ends with NOT"),
        ('"vary header', "has an unclosed quote"),
        ('web "vary', "has an unclosed quote"),
    ],
)
def test_a_query_that_cannot_mean_what_it_says_is_a_usage_error(
    store: Store, query: str, message: str
) -> None:
    _with(store, ["web: the CORS errors came from the Vary header"])
    with pytest.raises(QuerySyntaxError) as raised:
        store.find(query)
    assert message in str(raised.value)
    result = run_mem("--store", str(store.root), "find", query)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("mem: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_a_bad_date_names_the_accepted_forms(store: Store) -> None:
    result = run_mem("--store", str(store.root), "find", "created:2026-13")
    assert "created:2026-11-21" in result.stderr and "created:[2026-01-01 to" in result.stderr
    assert "no words to search for" not in result.stderr


@pytest.mark.parametrize(
    "query",
    [
        "web OR cors",
        "NOT cors",
        "web AND NOT cors",
        '"vary header"',
        "web AND (cors OR csp)",
        "created:2026",
        "created:[2026-11 to]",
        "created:[to 2026-12]",
        "created:>2026-06",
        "created:today",
        "what is OR in SQL?",
    ],
)
def test_valid_queries_still_parse(store: Store, query: str) -> None:
    _with(store, ["web: the CORS errors came from the Vary header"])
    store.find(query)  # no error


# Output


def test_match_marks_only_on_a_terminal_and_never_with_no_color(store: Store) -> None:
    _with(store, ["CORS errors on /api came from the missing Vary header"])
    root = str(store.root)
    piped = run_mem("--store", root, "find", "cors")
    assert piped.returncode == 0
    assert "   CORS errors on /api came from the missing Vary header" in piped.stdout
    assert "**" not in piped.stdout and "\x1b" not in piped.stdout
    as_json = json.loads(run_mem("--store", root, "find", "cors", "--json").stdout)
    assert as_json["results"][0]["snippet"].startswith("**CORS**")
    shown = _on_terminal("--store", root, "find", "cors", env={"NO_COLOR": ""})
    assert "\x1b[1mCORS\x1b[0m errors" in shown
    plain = _on_terminal("--store", root, "find", "cors", env={"NO_COLOR": "1"})
    assert "CORS errors on /api" in plain
    assert "\x1b" not in plain and "**" not in plain
    title = _on_terminal("--store", root, "show", store.list()[0].id, env={"NO_COLOR": "1"})
    assert "\x1b" not in title


def test_a_closed_pipe_is_not_an_error(store: Store, tmp_path: Path) -> None:
    # More output than a pipe holds (64 KB), so the writer meets the closed pipe.
    lines = [json.dumps({"body": f"pipe test memory number {n} " + "x" * 80}) for n in range(1500)]
    (tmp_path / "many.jsonl").write_text("\n".join(lines) + "\n")
    store.import_memories(tmp_path / "many.jsonl")
    for command in (["list", "-n", "0"], ["find", "pipe", "-n", "0"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "memstore", "--store", str(store.root), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # like `| head -1`
        process.stdout.close()
        error = process.stderr.read()
        process.stderr.close()
        assert process.wait(timeout=120) == 0, (command, error)
        assert b"pipe test memory" in first, command
        assert error == b"", command


def test_a_bad_file_is_warned_about_once_per_command(store: Store) -> None:
    (memory_id,) = _with(store, ["a good memory about nginx"])
    (store.root / "memories" / "bad.md").write_text("---\ntitle: [oops\n---\nnginx too\n")
    for args in (["show", memory_id], ["find", "nginx"], ["add", "one more nginx memory"]):
        result = run_mem("--store", str(store.root), *args)
        assert result.returncode == 0, result.stderr
        skipped = [line for line in result.stderr.splitlines() if "bad.md: skipped" in line]
        assert len(skipped) == 1, (args, result.stderr)


# Exit statuses


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["find", "web", "-n", "-1"], "-1 is not in the range"),
        (["list", "-n", "-1"], "-1 is not in the range"),
        (["log", "-n", "-1"], "-1 is not in the range"),
        (["resolve", "01m7yvp5zt", "--keep", "3"], "'3' is not one of '1', '2', 'both'"),
        (["diff", "--format", "xml"], "'xml' is not one of 'text', 'md', 'json'"),
        (["add"], "mem: error: nothing to add: give the text, - for stdin, or --file FILE"),
        (["add", "text", "--file", "x.md"], "mem: error: give the text or --file, not both"),
        (["find"], "Missing argument 'query'."),
        (["export"], "mem: error: give --json"),
    ],
)
def test_usage_errors_exit_with_2(store: Store, args: list[str], message: str) -> None:
    result = run_mem("--store", str(store.root), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


# --related and limits


def test_related_lists_only_memories_that_share_the_subject(store: Store) -> None:
    pytest_id, same, deploy, cors, staging = _with(
        store,
        [
            "Use pytest for the web tests: fixtures replace the setUp chains of unittest",
            "We use pytest for web tests.",
            "Deploy the web app on Tuesdays after the tests pass",
            "CORS errors on /api came from the missing Vary header; fixed in nginx.conf",
            "The staging database password rotates monthly",
        ],
    )
    related = {hit.id: hit.relation for hit in store.related(pytest_id)}
    assert related[same] == "similar"
    assert set(related) <= {same, deploy}  # web tests, maybe; never CORS or passwords
    assert store.related(cors) == [] and store.related(staging) == []
    shown = run_mem("--store", str(store.root), "find", "--related", cors)
    assert shown.returncode == 0 and shown.stdout == ""
    assert "no related memories found" in shown.stderr


def test_find_and_list_say_when_there_are_more(store: Store) -> None:
    _with(store, [f"web note {n}" for n in range(12)])
    root = str(store.root)
    found = run_mem("--store", root, "find", "web")
    assert found.stdout.count(" · note") == 10
    more = "mem: showing the best 10 results; there are more: use -n to see more (-n 0: all)"
    assert more in found.stderr
    every = run_mem("--store", root, "find", "web", "-n", "12")
    assert every.stdout.count(" · note") == 12 and "there are more" not in every.stderr
    assert json.loads(run_mem("--store", root, "find", "web", "--json").stdout)["more"] is True
    data = json.loads(run_mem("--store", root, "find", "web", "-n", "0", "--json").stdout)
    assert len(data["results"]) == 12 and data["more"] is False
    listed = run_mem("--store", root, "list", "-n", "5")
    assert len(listed.stdout.splitlines()) == 5
    assert "mem: showing the newest 5 memories; there are more" in listed.stderr
    assert "there are more" not in run_mem("--store", root, "list").stderr
    data = json.loads(run_mem("--store", root, "list", "-n", "12", "--json").stdout)
    assert len(data["memories"]) == 12 and data["more"] is False
