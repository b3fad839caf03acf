"""`python -m memstore` runs the `mem` command.

The hooks that `mem setup` registers run `python -m memstore --store PATH recall` before every
prompt: that form goes straight to `memstore.recall`, without loading typer (about 70 ms).
"""

import sys


def _recall_args(args: list[str]) -> tuple[str | None, int | None] | None:
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


_fast = _recall_args(sys.argv[1:])
if _fast is not None:
    from memstore.hook import main as _hook

    sys.exit(_hook(*_fast))

from memstore.cli import main  # noqa: E402

main()
