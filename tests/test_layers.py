"""memstore's modules depend on each other in one direction: each module has a layer and imports
only from its own layer or below, with no cycle (docs/architecture.md).

Every import counts: at the top of a file, inside a function, under `TYPE_CHECKING`, relative
or absolute, and a string naming a module (`importlib.import_module("memstore.x")`, `-m`).
The imports that still break the rule are listed in ALLOWED with the reason they are there; the
list only shrinks: a test fails when one of them is no longer needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memstore"

# The layers, from the bottom (docs/architecture.md). Same-layer imports are allowed when they
# make no cycle.
LAYERS: dict[str, int] = {
    # 0. base
    "errors": 0,
    "ids": 0,
    "atomic": 0,
    "locking": 0,
    "gitindex": 0,
    "checkcache": 0,
    "jsontext": 0,
    "report": 0,
    "locate": 0,
    "when": 0,
    "yamlrules": 0,
    "analysis": 0,
    "duplicates": 0,
    "notes": 0,
    "text": 0,
    "knownhosts": 0,
    "configedit": 0,
    "secrets": 0,
    "toolmarkup": 0,
    "quickfind": 0,
    "quickrecall": 0,
    # 1. model and primitives
    "memory": 1,
    "blobcache": 1,
    "merge": 1,
    "validate": 1,
    "links": 1,
    "results": 1,
    "query": 1,
    "semantic": 1,
    "keys": 1,
    "crypto": 1,
    "gitrepo": 1,
    "gitsetup": 1,
    "gitmarkers": 1,
    "watch": 1,
    "freshness": 1,
    "snippets": 1,
    # 2. engines
    "index": 2,
    "indexaudit": 2,
    "search": 2,
    "bulkscore": 2,
    "bulkwrite": 2,
    "readercache": 2,
    "review": 2,
    # 3. the core
    "core": 3,
    "history": 2,
    # 3. the core: to come (today inside store.py)
    # 4. services that take the core
    "sync": 4,
    "keyops": 4,
    "transfer": 4,
    "context": 4,
    "doctor": 4,
    "check": 4,
    "relations": 4,
    "authoring": 4,
    "restore": 4,
    "recall": 4,
    "agentsetup": 4,
    "sessions": 4,
    "view": 4,
    # 5. the facade and the package's public names
    "store": 5,
    "__init__": 5,
    # 6. entry points
    "cli": 6,
    "mcp_server": 6,
    "hook": 6,
    "__main__": 6,
    "launch": 6,
    "quickadd": 6,
    "service": 6,
}

# (importer, imported): imports that still break the layers, each with why it is still there.
ALLOWED: dict[tuple[str, str], str] = {}

CLI_STACK = ("typer", "click", "rich")


def modules() -> list[str]:
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def imported_names(name: str) -> set[str]:
    """Every top-level package or module name that module `name` imports, memstore ones as
    `memstore.x` (the package itself is `memstore.__init__`)."""
    return imports_in(PACKAGE / f"{name}.py")


def imports_in(path: Path) -> set[str]:
    known = set(modules())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def memstore_module(dotted: str, names: list[str]) -> None:
        parts = dotted.split(".") if dotted else []
        if parts:
            found.add(f"memstore.{parts[0]}")
            return
        for imported in names:  # `from memstore import x` or `from . import x`
            found.add(f"memstore.{imported if imported in known else '__init__'}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == "memstore":
                    found.add(f"memstore.{rest.partition('.')[0] or '__init__'}")
                else:
                    found.add(top)
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:  # memstore is flat: any relative import is inside it
                memstore_module(node.module or "", names)
            elif node.module and node.module.partition(".")[0] == "memstore":
                memstore_module(node.module.partition(".")[2], names)
            elif node.module:
                found.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            top, _, rest = node.value.partition(".")
            if top == "memstore" and rest in known:
                found.add(f"memstore.{rest}")
    return found


def graph() -> dict[str, set[str]]:
    """module -> the memstore modules it imports (not itself)."""
    return {
        name: {dep.partition(".")[2] for dep in imported_names(name) if dep.startswith("memstore.")}
        - {name}
        for name in modules()
    }


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        here = todo.pop()
        if here == goal:
            return True
        if here not in seen:
            seen.add(here)
            todo.extend(edges.get(here, ()))
    return False


def breaks_layers(edges: dict[str, set[str]], importer: str, imported: str) -> bool:
    """An import goes up a layer, or, within a layer, closes a cycle."""
    if LAYERS[imported] != LAYERS[importer]:
        return LAYERS[imported] > LAYERS[importer]
    return reaches(edges, imported, importer)


def checked_edges() -> dict[str, set[str]]:
    return {
        importer: {dep for dep in deps if (importer, dep) not in ALLOWED}
        for importer, deps in graph().items()
    }


def test_the_import_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The walk itself, on a module (read as if in memstore/) with each form of import."""
    source = (
        "from __future__ import annotations\n"
        "import memstore.errors\n"
        "from memstore import atomic, Store\n"
        "from memstore.ids import new_id\n"
        "from . import locking\n"
        "from .when import parse\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from memstore.memory import Memory\n"
        "def f():\n    import typer.core\n    from memstore import notes\n"
        "    return __import__('importlib').import_module('memstore.report')\n"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    assert imports_in(probe) == {
        "__future__",
        "typing",
        "typer",
        "memstore.errors",
        "memstore.atomic",
        "memstore.__init__",
        "memstore.ids",
        "memstore.locking",
        "memstore.when",
        "memstore.memory",
        "memstore.notes",
        "memstore.report",
    }


def test_every_module_has_a_layer() -> None:
    assert [name for name in modules() if name not in LAYERS] == []
    assert [name for name in LAYERS if name not in modules()] == []  # no layer for a module gone


def test_no_import_goes_up_a_layer() -> None:
    edges = checked_edges()
    upward = sorted(
        f"{importer} (layer {LAYERS[importer]}) imports {dep} (layer {LAYERS[dep]})"
        for importer, deps in edges.items()
        for dep in deps
        if LAYERS.get(dep, -1) > LAYERS.get(importer, -1)
    )
    assert upward == []


def test_no_import_cycle() -> None:
    edges = checked_edges()
    cycles = sorted(
        f"{importer} <-> {dep}"
        for importer, deps in edges.items()
        for dep in deps
        if reaches(edges, dep, importer)
    )
    assert cycles == []


def test_every_allowed_exception_is_still_needed() -> None:
    """The list only shrinks: an exception whose import is gone or now follows the layers goes."""
    edges = graph()
    without = checked_edges()
    stale = []
    for (importer, imported), _why in sorted(ALLOWED.items()):
        if imported not in edges.get(importer, set()):
            stale.append(f"{importer} no longer imports {imported}")
        elif not breaks_layers(without, importer, imported):
            stale.append(f"{importer} -> {imported} follows the layers now")
    assert stale == []


def test_core_modules_never_import_the_cli_stack() -> None:
    """Below the entry points no module imports typer, click or rich, not even in a function."""
    core = [name for name in modules() if LAYERS.get(name, 0) < LAYERS["cli"]]
    assert "store" in core and "cli" not in core
    found = sorted(
        f"{name} imports {top}" for name in core for top in imported_names(name) if top in CLI_STACK
    )
    assert found == []
