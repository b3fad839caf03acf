"""mem's own options: --version, shell completion, and the help text that names the install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import run_mem

BASH = shutil.which("bash")


def test_version_prints_the_installed_version() -> None:
    expected = f"mem (memstore-git) {version('memstore-git')}\n"
    for option in ("--version", "-V"):
        result = run_mem(option)
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), option
    # Eager: it answers before the command would run (and fail without a store).
    result = run_mem("--version", "list")
    assert (result.returncode, result.stdout) == (0, expected)


def test_version_loads_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from memstore.cli import main\n"
        "main(['--version'])\n"
        "heavy = [m for m in ('pygit2', 'whoosh', 'yaml', 'jsonschema', 'pyrage', 'mcp')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mem (memstore-git) ") and "HEAVY []" in result.stdout


def test_help_names_the_extra_that_mem_mcp_needs() -> None:
    # Rich reads [mcp] as markup unless it is escaped: the help said "(needs memstore)".
    wide = {"COLUMNS": "200"}
    for args in (["--help"], ["mcp", "--help"]):
        result = run_mem(*args, env=wide)
        assert result.returncode == 0, result.stderr
        assert "(needs memstore-git[mcp])" in result.stdout, result.stdout
        assert "(needs memstore)" not in result.stdout


def test_help_lists_version_and_completion_options() -> None:
    result = run_mem("--help", env={"COLUMNS": "200"})
    for option in ("--version", "-V", "--install-completion", "--show-completion"):
        assert option in result.stdout, option


def mem_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has a `mem` that runs this checkout with this Python."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mem").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m memstore "$@"\n')
    (shim / "mem").chmod(0o755)
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": root}


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The trailing `true` keeps bash as mem's parent (no exec of the last command), so that
    # typer finds the shell to write completion for.
    assert BASH is not None
    return subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", f"{script}\ntrue"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def complete(script_path: Path, words: str, env: dict[str, str], cwd: Path) -> list[str]:
    """What bash offers after `words`, using the completion script at script_path."""
    result = bash(
        f'source "{script_path}"\n'
        f"COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
        "_mem_completion mem\n"
        'printf "%s\\n" "${COMPREPLY[@]}"',
        env,
        cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_show_completion_prints_a_script_that_completes_commands_and_options(
    tmp_path: Path,
) -> None:
    env = mem_on_path(tmp_path)
    shown = bash("mem --show-completion", env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "complete -o default -F _mem_completion mem" in shown.stdout
    script = tmp_path / "mem-completion.sh"
    script.write_text(shown.stdout)
    assert complete(script, "mem fi", env, tmp_path) == ["find"]
    assert complete(script, "mem find --ta", env, tmp_path) == ["--tag"]
    assert "--version" in complete(script, "mem --", env, tmp_path)


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_install_completion_adds_it_to_bashrc(tmp_path: Path) -> None:
    env = mem_on_path(tmp_path)
    home = Path(env["HOME"])  # a folder of this test's own (tests/conftest.py)
    installed = bash("mem --install-completion", env, tmp_path)
    assert installed.returncode == 0, installed.stderr
    script = home / ".bash_completions" / "mem.sh"
    assert f"bash completion installed in {script}" in installed.stdout
    assert f"source '{script}'" in (home / ".bashrc").read_text()
    assert complete(script, "mem sta", env, tmp_path) == ["status"]
