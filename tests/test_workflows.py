"""The GitHub Actions workflows memstore ships: linted with real linters, and their steps run."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pygit2
import pytest
import yaml

from memstore import review
from memstore.store import Store
from tests.conftest import Clock, run_mem

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "memstore" / "templates" / review.WORKFLOW_TEMPLATE
OWN_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WORKFLOWS = [review.WORKFLOW_TEMPLATE, *(path.name for path in OWN_WORKFLOWS)]
GIT = shutil.which("git")
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


@functools.cache
def rendered_template() -> str:
    """The workflow as `mem ci-template` prints it (the template with this version pinned)."""
    result = run_mem("ci-template")
    assert result.returncode == 0, result.stderr
    return result.stdout


def workflow_file(name: str, folder: Path) -> Path:
    """The workflow to lint: the template as `mem ci-template` writes it, or one of ours."""
    if name != review.WORKFLOW_TEMPLATE:
        return ROOT / ".github" / "workflows" / name
    path = folder / name
    path.write_text(rendered_template())
    return path


def installed_tool(name: str) -> str | None:
    """A command the test extra installs: beside this Python first (a venv run without
    activating it has no bin folder on PATH), then on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def test_the_workflows_to_lint_are_found() -> None:
    assert {"memory-review.yml", "ci.yml"} <= set(WORKFLOWS)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_actionlint_reports_nothing(name: str, tmp_path: Path) -> None:
    actionlint = installed_tool("actionlint")
    if actionlint is None:
        # The test extra installs it; CI must never pass without it.
        assert not os.environ.get("CI"), "actionlint is missing: pip install -e '.[test]'"
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    workflow = workflow_file(name, tmp_path)
    result = subprocess.run(
        [actionlint, "-no-color", str(workflow)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("name", WORKFLOWS)
def test_zizmor_with_default_settings_reports_nothing(name: str, tmp_path: Path) -> None:
    # No configuration and no ignore comments: what a user's own zizmor run will say of the
    # file `mem ci-template --write` gives them.
    zizmor = installed_tool("zizmor")
    assert zizmor is not None, "zizmor is missing: pip install -e '.[test]'"
    workflow = workflow_file(name, tmp_path)
    result = subprocess.run(
        [zizmor, "--offline", "--no-progress", "--no-config", "--no-ignores", str(workflow)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_action_is_pinned_by_commit_hash_with_its_version(name: str, tmp_path: Path) -> None:
    lines = workflow_file(name, tmp_path).read_text().splitlines()
    uses = [line.split("uses:", 1)[1].strip() for line in lines if "uses:" in line]
    assert uses
    for action in uses:
        assert PINNED_ACTION.match(action), action


def test_the_template_installs_this_exact_version_of_memstore_git() -> None:
    data = yaml.safe_load(rendered_template())
    assert data["env"] == {"MEMSTORE": f"memstore-git=={version('memstore-git')}"}
    (job,) = data["jobs"].values()
    installs = [step["run"] for step in job["steps"] if "pip install" in step.get("run", "")]
    assert installs == ['python -m pip install "$MEMSTORE"']


def run_steps(workflow: str) -> list[str]:
    data = yaml.safe_load(workflow)
    return [step["run"] for job in data["jobs"].values() for step in job["steps"] if "run" in step]


def test_the_template_uses_only_commands_and_options_mem_has() -> None:
    steps = run_steps(TEMPLATE.read_text())
    used = re.findall(r"\bmem ([a-z-]+)((?: +--?[a-z-]+| +\S+)*)", "\n".join(steps))
    assert {name for name, _ in used} == {"diff", "check"}
    for name, rest in used:
        result = run_mem(name, "--help")
        assert result.returncode == 0, result.stderr
        for option in re.findall(r"--[a-z-]+", rest):
            assert option in result.stdout, (name, option)


def test_the_template_asks_for_least_privilege() -> None:
    data = yaml.safe_load(rendered_template())
    assert data["permissions"] == {"contents": "read"}
    (job,) = data["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = job["steps"][0]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert "pull_request" in data[True]  # PyYAML reads the key `on` as True


@pytest.mark.skipif(GIT is None, reason="the git program is not installed")
def test_the_template_steps_run_on_a_pull_request_checkout(tmp_path: Path, clock: Clock) -> None:
    """Run the template's shell steps (all but pip install) as GitHub would on a pull request."""
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True)
    origin = Store.init(tmp_path / "origin", clock=clock)
    old = origin.add("Deploy on Fridays is fine", tags=["ops"])
    origin.add_remote("origin", str(remote))
    origin.sync()
    work = tmp_path / "work"
    assert GIT is not None
    subprocess.run([GIT, "clone", "-q", "-b", "main", str(remote), str(work)], check=True)
    subprocess.run([GIT, "-C", str(work), "switch", "-q", "-c", "no-friday"], check=True)
    pr = Store(work, clock=clock)
    new = pr.add("Never deploy on Fridays", tags=["ops"], extra={"supersedes": [old.id]})
    pr.update(old.id, tags=["ops", "history"])

    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mem").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m memstore "$@"\n')
    (shim / "mem").chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "BASE_REF": "main",
        "GITHUB_STEP_SUMMARY": str(summary),
        "MEMSTORE": f"memstore-git=={version('memstore-git')}",
    }
    steps = [step for step in run_steps(rendered_template()) if "pip install" not in step]
    assert len(steps) == 2
    for step in steps:
        result = subprocess.run(
            ["bash", "-e", "-c", step], cwd=work, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, step + result.stdout + result.stderr
    comment = (work / "memory-diff.md").read_text()
    assert comment.startswith(review.MD_MARKER)
    assert f"`{new.id}`" in comment and "Never deploy on Fridays" in comment
    assert f"supersedes {old.id} “Deploy on Fridays is fine”" in comment
    assert "tags +history" in comment
    assert summary.read_text() == comment


def test_ci_template_prints_and_installs_the_workflow(store: Store) -> None:
    printed = run_mem("ci-template")
    expected = TEMPLATE.read_text().replace("@VERSION@", version("memstore-git"))
    assert "@VERSION@" not in expected
    assert printed.returncode == 0 and printed.stdout == expected
    target = store.root / review.WORKFLOW_PATH
    first = run_mem("--store", str(store.root), "ci-template", "--write")
    assert first.returncode == 0, first.stderr
    assert target.read_text() == expected
    again = run_mem("--store", str(store.root), "ci-template", "--write")
    assert again.returncode == 0 and "already the current template" in again.stderr
    target.write_text("name: mine\n")
    clash = run_mem("--store", str(store.root), "ci-template", "--write")
    assert clash.returncode == 1
    assert clash.stderr == (
        f"mem: error: {target} exists and differs from the template: compare it with"
        " 'mem ci-template', then remove it to install the template\n"
    )
    assert target.read_text() == "name: mine\n"


HARNESS = """
const fs = require("fs");
const comments = JSON.parse(fs.readFileSync("comments.json", "utf8"));
const calls = [];
const github = {
  rest: {
    issues: {
      listComments: "listComments",
      createComment: async (args) => { calls.push(["create", args]); },
      updateComment: async (args) => { calls.push(["update", args]); },
    },
  },
  paginate: async (method, args) => {
    calls.push(["list", method, args]);
    return comments;
  },
};
const context = { repo: { owner: "alice", repo: "memories" }, issue: { number: 7 } };
(async () => {
SCRIPT
  fs.writeFileSync("calls.json", JSON.stringify(calls));
})();
"""


def run_comment_script(tmp_path: Path, body: str, comments: list[dict[str, object]]) -> list:
    """Run the template's github-script step in node against an in-memory GitHub."""
    node = shutil.which("node")
    if node is None:  # GitHub's runners and this project's CI have it
        pytest.skip("node is not installed")
    (job,) = yaml.safe_load(rendered_template())["jobs"].values()
    (script,) = [s["with"]["script"] for s in job["steps"] if "github-script" in s.get("uses", "")]
    (tmp_path / "harness.js").write_text(HARNESS.replace("SCRIPT", script))
    (tmp_path / "memory-diff.md").write_text(body)
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    result = subprocess.run([node, "harness.js"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return list(json.loads((tmp_path / "calls.json").read_text()))


def test_the_comment_step_posts_one_comment_then_updates_it(tmp_path: Path) -> None:
    body = f"{review.MD_MARKER}\n### Memory changes\n\n1 added\n"
    calls = run_comment_script(tmp_path, body, [{"id": 1, "body": "LGTM"}])
    assert calls[-1] == [
        "create",
        {"owner": "alice", "repo": "memories", "issue_number": 7, "body": body},
    ]
    mine = {"id": 42, "body": f"{review.MD_MARKER}\nan older summary"}
    calls = run_comment_script(tmp_path, body, [{"id": 1, "body": "LGTM"}, mine])
    assert calls[-1] == [
        "update",
        {"owner": "alice", "repo": "memories", "comment_id": 42, "body": body},
    ]


def test_a_long_summary_is_cut_between_diff_blocks(tmp_path: Path, store: Store) -> None:
    for n in range(40):
        store.add(f"Memory {n}\n\n" + "\n".join(f"line {i} of memory {n}" for i in range(80)))
    body = review.render_markdown(store.diff(f"{store.log()[-1].commit}..HEAD"))
    assert len(body) > 65000
    calls = run_comment_script(tmp_path, body, [])
    posted = calls[-1][1]["body"]
    assert len(posted) <= 65000 + 100
    assert posted.endswith("(cut short: the job summary has it all)\n")
    assert posted.count("<details>") == posted.count("</details>") > 0
    assert posted.count("```") % 2 == 0
