"""The `mem` command, run as a real process; results checked through the library."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pygit2

from memstore.store import Store
from tests.conftest import mem_ok, run_mem


def test_quick_start_uses_the_default_store(tmp_path: Path) -> None:
    added = run_mem(
        "add",
        "CORS errors on /api came from the missing Vary header; fixed in nginx.conf",
        "-t",
        "web",
        "-t",
        "bug",
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    found = run_mem("find", "cors", "nginx", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "CORS errors on /api" in found.stdout and "fixed in nginx.conf" in found.stdout
    assert "**" not in found.stdout  # piped: no match marks
    default = tmp_path / "data" / "memstore" / "default"
    store = Store(default)
    assert [m.title for m in store.list()] == [
        "CORS errors on /api came from the missing Vary header; fixed in nginx.conf"
    ]
    assert store.list()[0].tags == ["web", "bug"]


def test_store_option_env_and_enclosing_folder(tmp_path: Path) -> None:
    target = tmp_path / "project-memories"
    assert run_mem("init", str(target)).returncode == 0
    assert run_mem("--store", str(target), "add", "via option").returncode == 0
    assert run_mem("add", "via env", env={"MEM_STORE": str(target)}).returncode == 0
    inner = target / "memories"
    assert run_mem("add", "via enclosing folder", cwd=inner).returncode == 0
    titles = {m.title for m in Store(target).list()}
    assert titles == {"via option", "via env", "via enclosing folder"}
    assert not (tmp_path / "data" / "memstore" / "default").exists()


def test_add_from_stdin_and_file_with_options(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    note = tmp_path / "note.md"
    note.write_text("From a file\n\nwith two paragraphs\n")
    assert (
        run_mem(
            "--store", str(store.root), "add", "-", "--title", "Piped", input="piped text\n"
        ).returncode
        == 0
    )
    result = run_mem(
        "--store",
        str(store.root),
        "add",
        "--file",
        str(note),
        "--type",
        "decision",
        "--source",
        "claude-code",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["type"] == "decision" and data["source"] == "claude-code"
    assert data["session"] == ""
    memory = store.get(data["id"])
    assert memory.body == "From a file\n\nwith two paragraphs\n"
    assert {m.title for m in store.list()} == {"Piped", "From a file"}


def test_find_and_list_json_shapes(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    memory = store.add("Kafka consumer lag alert threshold is 5000", tags=["ops"])
    found = mem_ok("--store", str(store.root), "find", "kafka", "--json")
    data = json.loads(found.stdout)
    assert data["query"] == "kafka"
    assert list(data["results"][0]) == [
        "id",
        "title",
        "path",
        "type",
        "tags",
        "created",
        "score",
        "snippet",
        "superseded_by",
        "expires",
        "expired",
        "age",
    ]
    assert data["results"][0]["id"] == memory.id and data["results"][0]["score"] > 0
    listed = json.loads(mem_ok("--store", str(store.root), "list", "--json").stdout)
    assert list(listed["memories"][0]) == [
        *("id", "title", "path", "type", "tags", "created"),
        *("expires", "expired", "age"),
    ]
    shown = json.loads(mem_ok("--store", str(store.root), "show", memory.id[:10], "--json").stdout)
    assert shown["body"] == "Kafka consumer lag alert threshold is 5000\n"
    log = json.loads(mem_ok("--store", str(store.root), "log", memory.id, "--json").stdout)
    assert [c["message"] for c in log["commits"]] == [f"add {memory.id}: {memory.title}"]
    checked = run_mem("--store", str(store.root), "check", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout) == {"problems": []}


def test_filters_on_find_and_list(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    a = store.add("deploy checklist for friday", tags=["ops"], type="procedure")
    store.add("deploy retro notes", tags=["team"])
    args = ("--store", str(store.root))
    by_tag = json.loads(mem_ok(*args, "find", "deploy", "--tag", "ops", "--json").stdout)
    assert [r["id"] for r in by_tag["results"]] == [a.id]
    by_type = json.loads(mem_ok(*args, "list", "--type", "procedure", "--json").stdout)
    assert [r["id"] for r in by_type["memories"]] == [a.id]
    future = json.loads(mem_ok(*args, "list", "--since", "2999-01-01", "--json").stdout)
    assert future["memories"] == []
    recent = json.loads(
        mem_ok(*args, "find", "deploy", "--since", "7d", "-n", "1", "--json").stdout
    )
    assert len(recent["results"]) == 1


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.add("one")
    store.find("one")
    cases = [
        (("--store", str(tmp_path / "nope"), "find", "x"), "is not a memstore store"),
        (("--store", str(store.root), "show", "zzzz"), "no memory has the id"),
        (("--store", str(store.root), "add", "  "), "the memory is empty"),
        (("--store", str(store.root), "find", "created:[bad to worse]"), "cannot read the date"),
        (("--store", str(store.root), "list", "--since", "last blue moon"), "cannot read the date"),
    ]
    for args, expected in cases:
        result = run_mem(*args)
        # A query that cannot be read is a bad argument: a usage error, as in ripgrep.
        assert result.returncode == (2 if "created:" in args[-1] else 1), (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mem: error: "), result.stderr
        assert expected in lines[0] and "Traceback" not in result.stderr


def test_check_prints_path_line_message_and_exits_1(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    folder = store.root / "memories" / "2026" / "01"
    folder.mkdir(parents=True)
    (folder / "bad.md").write_text(
        "---\nid: nope\ntitle: x\ntype: note\ntags: []\ncreated: 2026-01-01T00:00:00Z\n---\nbody\n"
    )
    result = run_mem("--store", str(store.root), "check")
    assert result.returncode == 1
    assert result.stdout.startswith("memories/2026/01/bad.md:2: id: 'nope'")


def test_edit_with_editor_and_rm(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    memory = store.add("text to change")
    script = tmp_path / "editor.py"
    script.write_text(
        textwrap.dedent("""
        import sys, pathlib
        p = pathlib.Path(sys.argv[1])
        p.write_text(p.read_text().replace("text to change", "text that changed"))
    """)
    )
    editor = f"{sys.executable} {script}"
    result = run_mem("--store", str(store.root), "edit", memory.id, env={"EDITOR": editor})
    assert result.returncode == 0, result.stderr
    assert store.get(memory.id).body == "text that changed\n"
    unchanged = run_mem("--store", str(store.root), "edit", memory.id, env={"EDITOR": "true"})
    assert unchanged.returncode == 0 and "no changes" in unchanged.stderr
    failing = run_mem("--store", str(store.root), "edit", memory.id, env={"EDITOR": "false"})
    assert failing.returncode == 1 and "nothing was changed" in failing.stderr
    assert run_mem("--store", str(store.root), "rm", memory.id).returncode == 0
    assert store.list() == []


def test_rebuild_prints_a_notice(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    store.add("rebuild me")
    first = mem_ok("--store", str(store.root), "find", "rebuild")
    assert first.stderr == "" and "rebuild me" in first.stdout  # init made the index
    shutil.rmtree(store.git_dir / "memstore")
    result = mem_ok("--store", str(store.root), "find", "rebuild")
    assert "mem: search index missing: rebuilding it" in result.stderr
    again = mem_ok("--store", str(store.root), "find", "rebuild")
    assert "rebuilding" not in again.stderr and "rebuild me" in again.stdout


def test_help_does_not_load_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from memstore.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pygit2', 'whoosh', 'yaml', 'jsonschema') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    assert "find" in result.stdout and "add" in result.stdout


def test_core_modules_do_not_import_the_cli_stack() -> None:
    code = (
        "import sys, memstore.store, memstore.index, memstore.memory, memstore.gitrepo\n"
        "print([m for m in ('typer', 'click', 'rich') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_every_command_has_help_and_docs() -> None:
    from memstore.cli import app

    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    assert set(names) >= {
        "init",
        "add",
        "find",
        "show",
        "list",
        "edit",
        "rm",
        "log",
        "check",
        "reindex",
    }
    from typer.testing import CliRunner

    runner = CliRunner()  # in process: a new process per command would take half a minute
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, name
        assert f"## mem {name}" in docs, name


def test_find_help_documents_the_query_language() -> None:
    result = mem_ok("find", "--help")
    for fragment in ("tag:web", "OR", "created:", "C++", '"vary header"'):
        assert fragment in result.stdout, fragment


def test_commit_author_from_repository_config(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    repo = pygit2.Repository(str(store.root))
    repo.config["user.name"] = "Repo Person"
    repo.config["user.email"] = "repo@example.com"
    mem_ok("--store", str(store.root), "add", "authored", env={"MEM_AUTHOR": ""})
    head = repo.revparse_single("HEAD")
    assert head.author.name == "Repo Person"


def test_add_file_adopts_a_foreign_notes_front_matter(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s")
    note = tmp_path / "obsidian-note.md"
    note.write_text(
        "---\ntitle: Vault note\ntags: [infra, dns]\naliases: [resolver]\n"
        "date: 2024-03-01\nid: not-ours\n---\nThe resolver caches NXDOMAIN for 60 s.\n"
    )
    result = run_mem("--store", str(store.root), "add", "--file", str(note), "--json")
    assert result.returncode == 0, result.stderr
    memory = store.get(json.loads(result.stdout)["id"])
    assert memory.title == "Vault note" and memory.tags == ["infra", "dns"]
    assert memory.extra == {"aliases": ["resolver"], "date": "2024-03-01"}
    assert memory.id != "not-ours" and memory.body == "The resolver caches NXDOMAIN for 60 s.\n"
    result = mem_ok("--store", str(store.root), "add", "-f", str(note), "-t", "cli", "--json")
    memory = store.get(json.loads(result.stdout)["id"])
    assert (memory.title, memory.tags) == ("Vault note", ["cli"])  # the option wins for tags


def test_add_records_the_session_from_the_option_or_mem_session(store: Store) -> None:
    root = str(store.root)
    given = run_mem("--store", root, "add", "Chose uv", "--session", "chat 42", "--json")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["session"] == "chat 42"
    from_env = mem_ok("--store", root, "add", "Pinned ruff", "--json", env={"MEM_SESSION": "s-9"})
    memory = store.get(json.loads(from_env.stdout)["id"])
    assert memory.session == "s-9"
    assert "\nsession: s-9\n" in (store.root / memory.path).read_text()
    shown = mem_ok("--store", root, "show", memory.id)
    assert "session: s-9" in shown.stdout
    plain = mem_ok("--store", root, "add", "No session here", "--json", env={"MEM_SESSION": ""})
    assert "session" not in store.get(json.loads(plain.stdout)["id"]).fields
