"""mem recall: the prompt hook's block of relevant memories, once per session."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from memstore import recall
from memstore.store import Store
from tests.conftest import mem_ok, run_mem


def fill(store: Store) -> dict[str, str]:
    ids = {}
    ids["pool"] = store.add(
        "Raise the pgbouncer pool size to 80 on the billing database: at 20 the payments"
        " worker timed out with ECONNRESET.",
        title="pgbouncer pool size for billing",
    ).id
    ids["deploy"] = store.add("Deploy the billing service with the blue-green script.").id
    ids["lunch"] = store.add("Team lunch is on Fridays at noon.").id
    for n in range(20):
        store.add(f"Weekly note {n}: the database backups ran fine and nothing broke.")
    return ids


def hook(store: Store, prompt: str, session: str = "s", **extra: object) -> str:
    payload = {"prompt": prompt, "session_id": session, **extra}
    return recall.respond(store, payload)


def test_a_prompt_gets_the_memories_it_is_about_with_id_date_and_path(store: Store) -> None:
    ids = fill(store)
    text = hook(store, "why does the payments worker get ECONNRESET from pgbouncer?")
    memory = store.get(ids["pool"])
    assert text.startswith("Memories from memstore that may bear on this prompt")
    assert f"## {memory.title}\nid: {memory.id} · date: {memory.created_text[:10]}" in text
    assert f"path: {memory.path}\n" in text
    assert ids["lunch"] not in text and "Weekly note" not in text


def test_a_prompt_about_nothing_in_the_store_gets_nothing(store: Store) -> None:
    fill(store)
    assert hook(store, "write a haiku about autumn leaves") == ""
    # Common words of the store alone do not clear the bar.
    assert hook(store, "the database broke again, rename the variable in the parser") == ""
    assert hook(store, "") == ""
    assert recall.respond(store, {"session_id": "s"}) == ""


def test_the_bar_weighs_rare_words_more_than_common_ones(store: Store) -> None:
    fill(store)
    # pgbouncer is in one memory, backups in twenty: each holds half the words, but the one
    # with the rare word holds most of the weight.
    found = recall.search(store, recall.prompt_words("pgbouncer backups"))
    assert [store.get(item.id).title for item in found] == ["pgbouncer pool size for billing"]
    assert found[0].share > 0.75
    weekly = recall.candidates(store, recall.prompt_words("pgbouncer backups"))[1:]
    assert weekly and all(item.share < 0.25 for item in weekly)


def test_a_memory_is_shown_once_per_session(store: Store) -> None:
    ids = fill(store)
    assert ids["pool"] in hook(store, "pgbouncer ECONNRESET again", session="a")
    assert hook(store, "pgbouncer ECONNRESET again", session="a") == ""
    assert ids["pool"] in hook(store, "pgbouncer ECONNRESET again", session="b")
    # The record is in the index folder, not in git.
    state = store.git_dir / "memstore" / recall.STATE_FILE
    assert set(json.loads(state.read_text())["sessions"]) == {"a", "b"}
    assert recall.STATE_FILE not in {p.name for p in store.root.iterdir()}


def test_the_session_record_is_bounded(store: Store) -> None:
    for number in range(recall.MAX_SESSIONS + 5):
        recall.remember(store, f"s{number}", ["x"] * 3, now_ns=number)
    recall.remember(store, "s0", [f"id{n}" for n in range(recall.MAX_IDS + 10)], now_ns=10**6)
    sessions = json.loads((store.git_dir / "memstore" / recall.STATE_FILE).read_text())["sessions"]
    assert len(sessions) == recall.MAX_SESSIONS
    assert "s1" not in sessions and "s0" in sessions
    assert len(sessions["s0"]["ids"]) == recall.MAX_IDS


def test_the_block_stays_within_the_budget(store: Store) -> None:
    long_text = "\n".join(f"Line {n}: pgbouncer tuning detail number {n}." for n in range(400))
    store.add(long_text, title="pgbouncer tuning notes")
    text = recall.respond(store, {"prompt": "pgbouncer tuning", "session_id": "s"}, budget=200)
    assert "pgbouncer tuning notes" in text
    assert len(text) / 4 <= 200


def test_session_start_gives_a_digest_of_the_project_and_the_newest(store: Store) -> None:
    ids = fill(store)
    text = recall.respond(
        store,
        {"hook_event_name": "SessionStart", "cwd": "/home/me/src/pgbouncer", "session_id": "s"},
    )
    assert text.startswith("memstore: memories you can cite by id")
    assert "About pgbouncer:\n- pgbouncer pool size for billing (id " + ids["pool"] in text
    assert "Newest:\n- Weekly note 19" in text
    assert all(
        line.startswith(("memstore:", "About", "Newest", "- ")) for line in text.splitlines()
    )


def test_the_digest_lists_the_memories_tagged_with_the_project(store: Store) -> None:
    fill(store)
    # As a captured session's memories are: the project is a tag, not a word of the text.
    captured = store.add("Safari needs Vary: Origin on CORS answers.", tags=["web-shop"])
    text = recall.respond(
        store,
        {"hook_event_name": "SessionStart", "cwd": "/home/me/src/Web Shop", "session_id": "s"},
    )
    assert f"About Web Shop:\n- Safari needs Vary: Origin on CORS answers. (id {captured.id}" in (
        text
    )
    assert text.count(captured.id) == 1  # not again among the newest


def test_mem_recall_reads_stdin_and_the_default_store_missing_is_silent(
    store: Store, tmp_path: Path
) -> None:
    ids = fill(store)
    payload = json.dumps({"prompt": "pgbouncer ECONNRESET", "session_id": "cli"})
    shown = mem_ok("--store", str(store.root), "recall", input=payload)
    assert ids["pool"] in shown.stdout
    # No store anywhere yet: nothing to add, no error.
    empty = run_mem("recall", input=payload, cwd=tmp_path)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")


def test_bad_input_is_one_line_and_exit_status_1_never_2(store: Store) -> None:
    for args in (["recall"], ["recall", "--budget", "5"]):
        result = run_mem("--store", str(store.root), *args, input="not json")
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("mem: error: ") and result.stderr.count("\n") == 1
    fast = run_mem("--store", str(store.root), "recall", input="[1, 2]")
    assert (fast.returncode, fast.stderr) == (
        1,
        "mem: error: recall reads a hook's JSON object on stdin, not a list or value\n",
    )
    deep = run_mem("--store", str(store.root), "recall", input="[" * 100_000)
    assert (deep.returncode, deep.stderr) == (
        1,
        "mem: error: recall reads a hook's JSON on stdin, and this is nested too deeply to read\n",
    )


def test_the_fast_path_does_not_load_typer(store: Store) -> None:
    import subprocess
    import sys

    code = (
        "import sys, runpy, io; sys.stdin = io.StringIO('{}');"
        f" sys.argv = ['memstore', '--store', {str(store.root)!r}, 'recall'];"
        " import atexit; atexit.register(lambda: print('typer' in sys.modules, file=sys.stderr));"
        " runpy.run_module('memstore', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "False\n")


def test_front_matter_keys_are_not_words_a_memory_holds(store: Store) -> None:
    fill(store)
    tooltip = store.add("The tooltip widget shows hints.", tags=["ui"])
    # "type" and "source" are keys of every memory's front-matter, not words of this one: only
    # hints (its text) and ui (its tag) count towards its share.
    [found] = recall.candidates(store, ["type", "source", "hints", "ui"])
    assert found.id == tooltip.id
    assert 0.4 < found.share < 0.6


@pytest.mark.parametrize(
    ("prompt", "shown", "written"),
    [
        # Most prompts get nothing: no file is written either.
        ("write a haiku about autumn leaves", False, set()),
        # A block shown is recorded for the session.
        ("pgbouncer ECONNRESET", True, {"recall.json"}),
    ],
)
def test_the_hook_loads_only_what_a_search_needs(
    store: Store, prompt: str, shown: bool, written: set[str]
) -> None:
    import subprocess
    import sys

    ids = fill(store)
    modules = ("typer", "pygit2", "memstore.secrets", "whoosh.qparser", "pyrage")
    code = (
        "import sys, runpy, io, json, atexit;"
        f" sys.stdin = io.StringIO(json.dumps({{'prompt': {prompt!r}, 'session_id': 'm'}}));"
        f" sys.argv = ['memstore', '--store', {str(store.root)!r}, 'recall'];"
        f" atexit.register(lambda: print([m for m in {modules!r} if m in sys.modules],"
        " file=sys.stderr));"
        " runpy.run_module('memstore', run_name='__main__')"
    )
    # Files written in the last seconds are looked at again by every search (index.py): as an
    # hour old, they are not, and a hook with nothing new to index writes nothing.
    for path in (store.root / "memories").rglob("*.md"):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    store.find("pgbouncer")
    before = files_under(store.root)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (ids["pool"] in result.stdout) is shown
    assert (result.returncode, result.stderr) == (0, "[]\n")
    after = files_under(store.root)
    changed = {Path(p).name for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed - TOUCHED_BY_EVERY_SEARCH == written


# The index's lock, and the probe that reads the file system's clock (atomic.py).
TOUCHED_BY_EVERY_SEARCH = {"index.lock", "clock"}


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Each file below root, with its modification time and size."""
    return {
        str(path): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in root.rglob("*")
        if path.is_file()
    }
