"""The prompt hook without Whoosh: ask the store's search service for what recall prints.

`mem [--store S] recall` runs before every prompt, so its start-up is most of its cost. When the
store's search service runs (`service.py`, large stores), the hook sends it the hook's JSON as
read from stdin and the budget, and prints the text the service returns: the service runs the
same `recall.answer` over the same index, caught up the same way, so the text is the one the
hook would print in process, and the service records the shown ids for the session once the
text is sent. Any other case returns None, and the hook recalls in process: no service, a
service of another install or code, other settings or another store, an answer that is not
"ok" (bad input, an error: the in-process run reports it its way), a service that dies or does
not answer within ASK_TIMEOUT. Only the standard library is imported, and only cheap parts of
it (`json` only when the store must be found from the hook's working folder).
"""

from __future__ import annotations

import os
import sys

from memstore import quickfind

# Half of the time Claude Code gives the hook (agentsetup.HOOK_TIMEOUT): a service that does not
# answer by then leaves the rest for the search in process.
ASK_TIMEOUT = 5.0


def store_root(explicit: str | None, raw: str) -> str | None:
    """The resolved root of the store the hook reads, as `recall.store_path` chooses it: --store,
    MEM_STORE, the store around the hook's `cwd` (or this process's), else the default store;
    None when there is none, or the JSON cannot be read (the in-process run says why)."""
    if explicit or os.environ.get("MEM_STORE"):
        return quickfind.store_root(explicit)
    import json

    try:
        payload = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        return None
    cwd = payload.get("cwd") if isinstance(payload, dict) else None
    start = cwd if isinstance(cwd, str) and cwd and os.path.isdir(cwd) else None
    return quickfind.store_root(None, start) or quickfind.default_root()


def request_for(root: str, raw: str, budget: int | None) -> dict[str, object]:
    """A recall request: the hook's stdin as read, and the budget (None: the default)."""
    return {
        **quickfind.addressed(root),
        "kind": "recall",
        "payload": raw,
        "budget": budget,
    }


def ask(raw: str, explicit: str | None, budget: int | None) -> str | None:
    """The text the service gives for the hook's stdin; None to recall in process."""
    if not sys.platform.startswith("linux") or os.environ.get("MEM_WATCH") == "0":
        return None
    root = store_root(explicit, raw)
    if root is None or not quickfind.is_store(root):
        return None
    path = quickfind.socket_path(root)
    if path is None:
        return None
    answer = quickfind.ask(path, request_for(root, raw, budget), timeout=ASK_TIMEOUT)
    if answer is None or answer.get("ok") is not True:
        return None
    text = answer.get("text")
    return text if isinstance(text, str) else None
