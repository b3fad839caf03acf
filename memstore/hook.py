"""The `recall` hook's entry point, without typer: `python -m memstore [--store P] recall`.

`mem recall` (cli) and the fast path of `launch` both come here. The fast path first asks the
store's search service (`quickrecall`, standard library only), which answers with the text this
process would print; without a service, or when it refuses, the hook recalls in process and
starts the service in the background where a large store has one (as `mem find` does). A hook
must never get in the way of the session: a store that does not exist yet gives nothing, and an
error is one line on stderr with exit status 1, which Claude Code reports without blocking the
prompt (status 2 would block it).
"""

from __future__ import annotations

import sys

from memstore.errors import MemstoreError


def run(raw: str, explicit_store: str | None, budget: int | None = None) -> str:
    """What the hook prints for the JSON it was given on stdin ('' for nothing)."""
    from memstore import recall
    from memstore.store import Store

    tokens = recall.checked_budget(budget)
    payload = recall.read_payload(raw)
    cwd = payload.get("cwd")
    path = recall.store_path(explicit_store, cwd if isinstance(cwd, str) else None)
    if path is None:
        return ""
    store = Store(path)
    text = recall.respond(store, payload, tokens)
    if sys.platform.startswith("linux"):
        from memstore import service  # the next prompt of a large store is then answered by it

        service.start_if_wanted(store.root, store.git_dir / "memstore")
    return text


def main(explicit_store: str | None, budget: int | None) -> int:
    """Read stdin, print the block; the exit status."""
    from memstore import quickrecall

    raw = sys.stdin.read()
    text = quickrecall.ask(raw, explicit_store, budget)
    try:
        if text is None:
            text = run(raw, explicit_store, budget)
    except MemstoreError as error:
        print(f"mem: error: {error}", file=sys.stderr)
        return 1
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def recall_args(args: list[str]) -> tuple[str | None, int | None] | None:
    """(--store, --budget) when args are exactly `[--store PATH] recall [--budget N]`."""
    store = budget = None
    if len(args) >= 2 and args[0] == "--store":
        store, args = args[1], args[2:]
    if not args or args[0] != "recall":
        return None
    rest = args[1:]
    if not rest:
        return store, budget
    if len(rest) == 2 and rest[0] in ("--budget", "-b") and rest[1].isdigit():
        return store, int(rest[1])
    return None
