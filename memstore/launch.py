"""The `mem` command's entry point (also `python -m memstore`).

Two forms skip the CLI's start-up. `[--store PATH] recall`, which the hooks `mem setup`
registers run before every prompt, goes straight to `hook` (no typer: about 70 ms), which asks
the store's search service first (`quickrecall`) and recalls in process without one. A plain
`mem find` is first offered to the store's search service (`quickfind`), which answers without
typer, Whoosh or pygit2 being imported. A plain `mem add TEXT` runs without typer
(`quickadd`), and is also offered to the service first. Anything else, and any search the
service does not answer, runs the CLI (`cli.main`).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: see memstore/__init__.py
if TYPE_CHECKING:
    from memstore.store import Store


def main() -> None:
    """Run `mem` with the process's arguments."""
    from memstore import hook, quickfind

    recall = hook.recall_args(sys.argv[1:])
    if recall is not None:
        sys.exit(hook.main(*recall))
    status = quickfind.run(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from memstore import quickadd

    status = quickadd.run(sys.argv[1:], added=_start_service)
    if status is not None:
        sys.exit(status)
    from memstore.cli import main as run_cli

    run_cli()


def _start_service(store: Store) -> None:
    """After an add made in process: a large store's next add or search is made by its service."""
    if sys.platform.startswith("linux"):
        from memstore import service

        service.start_if_wanted(store.root, store.git_dir / "memstore")
