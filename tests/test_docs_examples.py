"""Every `$ mem …` example of README.md and docs/*.md runs as shown, so the docs cannot drift.

The convention:

- An example is a line starting with `$ ` in a fenced block (plain, `console`, `sh` or
  `bash`) that runs `mem`; lines ending in `\\` continue it. The lines after it, up to the next
  `$ ` line or the end of the block, are its output.
- Each document runs in order in a fresh, isolated environment (its own home, data and config
  folders, a fixed author), with `mem` in a shell, so that pipes and `~` work. Ids shown in
  the docs are mapped to the ids of the memories the examples create.
- An example is not run when it needs what a test has not got: a remote over the network or
  another machine (`mem sync`, `mem clone`, an ssh or https URL), an interactive editor
  (`mem edit` without `EDITOR=`), or `mem mcp`. A block preceded by `<!-- not run: REASON -->`
  is not run either (for examples that need files or history the docs do not create).
- Exit status: 0, unless the output shows `mem: error:` (1; 2 for the usage errors of
  USAGE_ERRORS) or the parser's `Usage:` (2), or the next example is `echo $?` with the status.
- Output: in a block preceded by `<!-- output checked -->`, every line the docs show must be
  printed (ids, commit hashes, dates and times normalised). Elsewhere the status is checked,
  and the first word of a one-line message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE_FENCES = ("", "console", "sh", "bash")
NOT_RUN = re.compile(r"\bmem (sync|clone|mcp)\b|git@|https://|^(?!.*EDITOR=).*\bmem edit\b")
ID = re.compile(r"\b[0-9a-hjkmnp-tv-z]{26}\b")
# The usage errors (exit status 2) that `mem` reports in its own words.
USAGE_ERRORS = re.compile(r"the query '|nothing to add|give --json|not both|has no --json")
PREFIX = re.compile(r"\b0[0-9a-hjkmnp-tv-z]{7,25}\b")


@dataclass
class Example:
    document: str
    line: int
    command: str
    output: list[str] = field(default_factory=list)
    check_output: bool = False
    status: int | None = None


def examples(path: Path) -> list[Example]:
    """The runnable examples of a document, in order."""
    found: list[Example] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: str | None = None
    marker = ""
    current: Example | None = None
    number = 0
    while number < len(lines):
        text = lines[number]
        number += 1
        if fence is None:
            if text.startswith("```"):
                fence = text[3:].strip()
                if fence not in RUNNABLE_FENCES:
                    fence = "skip"
                current = None
            elif text.strip():
                marker = text.strip()
            continue
        if text.startswith("```"):
            fence, marker, current = None, "", None
            continue
        if fence == "skip" or marker.startswith("<!-- not run"):
            continue
        if text.startswith("$ "):
            command = text[2:]
            while command.endswith("\\") and number < len(lines):
                command = command[:-1] + lines[number].strip()
                number += 1
            if current is not None and command.startswith("echo $?"):
                current.status = None  # the next output line says it
                current.output.append("$?")
                continue
            current = None
            if re.search(r"\bmem\b", command) and not NOT_RUN.search(command):
                current = Example(
                    path.name, number, command, check_output=marker == "<!-- output checked -->"
                )
                found.append(current)
        elif current is not None:
            current.output.append(text)
    return found


def _made(shown: str, ids: dict[str, str]) -> str:
    """The id, or id prefix, made here for one shown in the docs."""
    for known, made in ids.items():
        if known.startswith(shown):
            return made[: len(shown)]
    return shown


def expected_status(example: Example) -> int:
    if "$?" in example.output:
        return int(example.output[example.output.index("$?") + 1])
    if any(line.startswith(("Usage:", "Error:")) for line in example.output):
        return 2
    errors = [line for line in example.output if line.startswith("mem: error:")]
    if errors:
        return 2 if USAGE_ERRORS.search(errors[0]) else 1
    return 0


def normalise(text: str, ids: dict[str, str]) -> str:
    for shown, real in ids.items():
        text = text.replace(real, shown)
    text = re.sub(r"/home/[a-z]+|/tmp/\S*?/home", "~", text)
    text = re.sub(r"memories/\d{4}/\d\d/", "memories/<month>/", text)
    text = ID.sub("<id>", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d)?([+-]\d\d:\d\d|Z)?)?", "<time>", text)
    text = re.sub(r"\b[0-9a-f]{10,40}\b", "<commit>", text)
    text = re.sub(r"[a-z0-9-]+-[0-9a-hjkmnp-tv-z]{8}\.md", "<file>", text)
    return text.rstrip()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_shell_examples_run_as_shown(document: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "code" / "webshop").mkdir(parents=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MEM_", "GIT_")) and key not in ("EDITOR", "VISUAL", "NO_COLOR")
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),  # where the docs show the default store
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        MEM_AUTHOR="Alice Example <alice@example.com>",
        MEM_WATCH="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    # The docs' examples run on the default store, which the first example may not create.
    runnable = examples(document)
    if not runnable or not runnable[0].command.startswith(("mem add", "mem import", "mem init")):
        made = subprocess.run(
            ["bash", "-c", "mem init"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
    (home / "release.md").write_text("---\ntitle: Release checklist\n---\n1. Tag the release\n")
    ids: dict[str, str] = {}  # id (or prefix) shown in the docs -> id made here
    failures: list[str] = []
    for example in runnable:
        command = PREFIX.sub(lambda found: _made(found[0], ids), example.command)
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        printed = result.stdout + result.stderr
        where = f"{example.document}:{example.line}: {example.command}\n{printed}"
        if result.returncode != expected_status(example):
            failures.append(f"exit status {result.returncode}: {where}")
        for shown, made in zip(
            ID.findall("\n".join(example.output)), ID.findall(result.stdout), strict=False
        ):
            ids.setdefault(shown, made)
        shown_lines = [line for line in example.output if line.strip() and line != "$?"]
        if example.check_output:
            actual = {normalise(line.replace(str(home), "~"), ids) for line in printed.splitlines()}
            failures += [
                f"missing {line!r}: {where}"
                for line in shown_lines
                if normalise(line, ids) not in actual
            ]
    assert not failures, "\n".join(failures)
    assert runnable or document.name not in ("README.md", "cli.md", "search.md")


def test_the_docs_have_many_runnable_examples() -> None:
    counted = {path.name: len(examples(path)) for path in DOCUMENTS}
    assert sum(counted.values()) >= 50, counted
    assert counted["cli.md"] >= 30 and counted["README.md"] >= 8, counted
