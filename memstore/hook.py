"""The `recall` hook's entry point, without typer: `python -m memstore [--store P] recall`.

`mem recall` (cli) and the fast path of `__main__` both come here. A hook must never get in the
way of the session: a store that does not exist yet gives nothing, and an error is one line on
stderr with exit status 1, which Claude Code reports without blocking the prompt (status 2
would block it).
"""

from __future__ import annotations

import sys

from memstore.errors import MemstoreError


def run(raw: str, explicit_store: str | None, budget: int | None = None) -> str:
    """What the hook prints for the JSON it was given on stdin ('' for nothing)."""
    from memstore import recall
    from memstore.context import MIN_BUDGET
    from memstore.errors import InvalidInputError
    from memstore.store import Store

    if budget is not None and budget < MIN_BUDGET:
        raise InvalidInputError(
            f"a budget of {budget} tokens is too small: give at least {MIN_BUDGET}"
        )
    payload = recall.read_payload(raw)
    cwd = payload.get("cwd")
    path = recall.store_path(explicit_store, cwd if isinstance(cwd, str) else None)
    if path is None:
        return ""
    return recall.respond(Store(path), payload, budget or recall.DEFAULT_BUDGET)


def main(explicit_store: str | None, budget: int | None) -> int:
    """Read stdin, print the block; the exit status."""
    try:
        text = run(sys.stdin.read(), explicit_store, budget)
    except MemstoreError as error:
        print(f"mem: error: {error}", file=sys.stderr)
        return 1
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
