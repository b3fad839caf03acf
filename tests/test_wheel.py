"""The package as users get it: `python -m build` makes an sdist and a wheel, and the wheel,
installed in a fresh virtual environment with nothing of this checkout on the path, runs `mem`.

The build and the install fetch their dependencies from the package index (pip's own cache
is used, so a second run is mostly offline work).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import memstore

ROOT = Path(__file__).resolve().parent.parent
# Taken when the module is imported, before tests/conftest.py isolates each test: pip needs the
# user's own configuration (index, certificates, cache). PYTHON* variables could put this
# checkout on the path, which is what this file checks does not happen.
OUTER_ENV = {
    name: value
    for name, value in os.environ.items()
    if not name.startswith("PYTHON") and name != "VIRTUAL_ENV"
}
BIN = "Scripts" if sys.platform == "win32" else "bin"


@dataclass
class Built:
    sdist: Path
    wheel: Path
    venv: Path


def run(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run command; it must succeed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Build the sdist, then the wheel from it, and install the wheel in a new venv."""
    folder = tmp_path_factory.mktemp("wheel")
    dist = folder / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], env=OUTER_ENV)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    venv = folder / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=OUTER_ENV)
    python = venv / BIN / "python"
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
        env=OUTER_ENV,
        cwd=folder,
    )
    yield Built(sdist, wheel, venv)


def test_the_wheel_carries_what_mem_needs_and_no_tests(built: Built) -> None:
    assert built.wheel.name == f"memstore_git-{memstore.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(built.wheel).namelist())
    modules = {f"memstore/{path.name}" for path in (ROOT / "memstore").glob("*.py")}
    assert modules <= names
    info = f"memstore_git-{memstore.__version__}.dist-info"
    assert {
        "memstore/schema/memory.schema.json",
        "memstore/templates/memory-review.yml",
        "memstore/py.typed",  # the library API is typed: type checkers read its annotations
        f"{info}/licenses/LICENSE",
    } <= names
    assert {name.split("/")[0] for name in names} == {"memstore", info}
    assert not [name for name in names if "/tests/" in name or name.endswith(".pyc")]
    with zipfile.ZipFile(built.wheel) as wheel:
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert "Name: memstore-git\n" in metadata
    assert f"Version: {memstore.__version__}\n" in metadata
    assert "Provides-Extra: mcp\n" in metadata
    assert "mem = memstore.launch:main" in entry_points


def test_the_sdist_carries_the_source_and_not_the_ci_set_up(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "schema/memory.schema.json",
        "memstore/templates/memory-review.yml",
        "memstore/cli.py",
        "tests/conftest.py",
    } <= names
    assert not [n for n in names if n.startswith((".ci/", ".github/")) or "__pycache__" in n]


def test_the_installed_wheel_runs_mem_outside_the_source_tree(built: Built, tmp_path: Path) -> None:
    bin_dir = built.venv / BIN
    work = tmp_path / "elsewhere"
    work.mkdir()
    home = tmp_path / "empty-home"
    home.mkdir()
    # A clean environment, as on a new machine: this venv's bin, the system's, an empty home.
    env = {
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }
    mem = str(bin_dir / "mem")

    def mem_run(*args: str) -> subprocess.CompletedProcess[str]:
        return run([mem, *args], env=env, cwd=work)

    where = run(
        [str(bin_dir / "python"), "-c", "import memstore; print(memstore.__file__)"],
        env=env,
        cwd=work,
    )
    assert Path(where.stdout.strip()).is_relative_to(built.venv), where.stdout

    assert mem_run("--version").stdout == f"mem (memstore-git) {memstore.__version__}\n"
    store = work / "memories"
    assert mem_run("init", str(store)).stderr == f"created store: {store}\n"
    added = mem_run(
        "--store", str(store), "add", "CORS errors came from the missing Vary header", "-t", "web"
    )
    assert added.stdout.startswith("added ") and "CORS errors" in added.stdout
    found = mem_run("--store", str(store), "find", "vary", "header")
    assert "CORS errors came from the missing Vary header" in found.stdout
    assert "#web" in found.stdout
    checked = mem_run("--store", str(store), "check")  # the schema is read from the wheel
    assert checked.stderr == "no problems found\n"
    helped = mem_run("mcp", "--help")
    assert "Usage: mem mcp" in helped.stdout and "memstore-git[mcp]" in helped.stdout
    template = mem_run("ci-template").stdout
    assert f"MEMSTORE: memstore-git=={memstore.__version__}\n" in template
