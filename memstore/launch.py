"""The `mem` command's entry point.

A plain `mem find` is first offered to the store's search service (`quickfind`), which answers
without typer, Whoosh or pygit2 being imported; anything else, and any search the service does
not answer, runs the CLI (`cli.main`).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run `mem` with the process's arguments."""
    from memstore import quickfind

    status = quickfind.run(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from memstore.cli import main as run_cli

    run_cli()
