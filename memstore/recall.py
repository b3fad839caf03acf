"""Recall for an agent's hooks: the memories a prompt is about, each shown once per session.

`mem recall` reads a hook's JSON on stdin (Claude Code sends `prompt`, `session_id`, `cwd` and
`hook_event_name`) and prints what the tool should add to the model's context, as plain text
(Claude Code adds a UserPromptSubmit or SessionStart hook's stdout to the context):

- UserPromptSubmit (or any event with a `prompt`): the memories that clear the relevance bar,
  best first, within a token budget, each with its id, date and path. A memory is relevant when
  it contains enough of the prompt's distinct topic words (`query.question_words`: question and
  function words dropped), each weighted by its rarity in the store: at least MIN_SHARE of the
  weight of the words the store knows; and when it scores at least MIN_RELATIVE of the best
  hit. A prompt nothing clears gets nothing: no output, exit status 0.
  A memory already shown in the session is not shown again: the ids shown per session are kept
  in the index folder `.git/memstore/recall.json` (never committed), for the MAX_SESSIONS
  sessions used last, at most MAX_IDS ids each.
- SessionStart: a short digest, one line per memory: the memories most relevant to the project
  (the name of the `cwd` folder) and the newest ones.

Speed matters, as it runs before every prompt: the search goes straight to the index (no
snippets, no highlighting), `python -m memstore recall` skips typer (see `launch`), and in a
large store the search service answers it (`quickrecall`, `service`), with `answer`: the text,
and the ids to `remember` once it is sent.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from memstore import atomic, locate
from memstore.context import (
    CHARS_PER_TOKEN,
    MIN_BUDGET,
    MIN_PART,
    cut,
    estimate_tokens,
    header,
)
from memstore.errors import InvalidInputError, MemstoreError
from memstore.search import successors

# The relevance bar (benchmarks/recall_hook.py measures it): a memory must hold this share of
# the prompt's topic words that the store knows, each word weighted by its rarity (inverse
# document frequency, so "quokkaflux" outweighs "note"), and score this share of the best hit.
MIN_SHARE = 0.5
MIN_RELATIVE = 0.5
# Only the rarest prompt words whose memories add up to this many are searched (query.rarest):
# the common ones cost the most to score and say the least.
POSTINGS_BUDGET = 1000
# Candidates looked at, and memories shown at most.
CANDIDATES = 10
MAX_MEMORIES = 5
DEFAULT_BUDGET = 500
DIGEST_RELEVANT = 5
DIGEST_RECENT = 5
# What recall.json keeps.
STATE_FILE = "recall.json"
MAX_SESSIONS = 200
MAX_IDS = 1000
# Prompt words kept for the search: longer prompts (pasted logs) are cut to their first words.
PROMPT_WORDS = 64
_QUERY_SAFE = re.compile(r"^[\w.+#/@-]+$")


class Recalling(Protocol):
    """What recall reads: a `Store`'s index, git folder, list and get."""

    index: Any
    root: Path
    git_dir: Path

    def list(self, *, filters: Any = ..., limit: int = ...) -> Any: ...

    def get(self, ref: str) -> Any: ...


@dataclass
class Found:
    """A memory that matched the prompt."""

    id: str
    path: str
    score: float
    share: float  # the share of the prompt's topic words it holds, weighted by rarity
    superseded: bool = False


def prompt_words(prompt: str) -> list[str]:
    """The prompt's distinct topic words, lower-cased, in order (at most PROMPT_WORDS)."""
    from memstore.query import question_words

    words: list[str] = []
    for word in question_words(prompt[: PROMPT_WORDS * 20]):
        low = word.lower()
        if _QUERY_SAFE.match(low) and low not in words:
            words.append(low)
        if len(words) >= PROMPT_WORDS:
            break
    return words


def search(store: Recalling, words: list[str], limit: int = CANDIDATES) -> list[Found]:
    """The memories that clear the relevance bar for words, best first, not superseded."""
    found = candidates(store, words, limit)
    best = found[0].score if found else 0.0
    return [
        item
        for item in found
        if item.share >= MIN_SHARE and item.score >= MIN_RELATIVE * best and not item.superseded
    ]


def candidates(store: Recalling, words: list[str], limit: int = CANDIDATES) -> list[Found]:
    """The best matches for words, each with its score, share and whether it is superseded."""
    from memstore import query

    if not words:
        return []
    with store.index.reading() as ix, ix.searcher(weighting=query.weighting()) as searcher:
        reader = searcher.reader()
        analyzer = ix.schema["body"].analyzer
        total = max(reader.doc_count(), 1)
        weights: dict[str, tuple[list[str], float]] = {}
        for word in words:
            terms = [token.text for token in analyzer(word, mode="query")]
            if terms:
                # A word no memory holds weighs as the rarest: a prompt about something the
                # store does not know is not about the memories that share its common words.
                count = min(reader.doc_frequency("body", term) for term in terms)
                weights[word] = (terms, math.log(1 + total / max(count, 1)))
        known = [word for word in weights if reader.doc_frequency("body", weights[word][0][0])]
        if not known:
            return []
        chosen = query.rarest(ix.schema, reader, known, POSTINGS_BUDGET)
        built = query.question_query(ix.schema, " ".join(chosen))
        if built is None:
            return []
        # Not list(results) nor len(results): Whoosh's Results.__len__ runs the query again to
        # count every match.
        hits = [hit for hit in searcher.search(built[0], limit=limit)]
        if not hits:
            return []
        wanted = {term for terms, _ in weights.values() for term in terms}
        held = _held_terms(reader, analyzer, hits, wanted)
        found = []
        whole = sum(weight for _, weight in weights.values())
        for hit in hits:
            has = held[hit.docnum]
            share = sum(w for terms, w in weights.values() if has.issuperset(terms)) / whole
            found.append(Found(hit["id"], hit["path"], float(hit.score or 0.0), share))
        superseded = successors(ix, [item.id for item in found])
        for item in found:
            item.superseded = item.id in superseded
    return found


def _held_terms(
    reader: Any, analyzer: Any, hits: list[Any], terms: set[str]
) -> dict[int, set[str]]:
    """Which of terms each hit holds in its title, tags or text, by document number.

    Answered from the index (the hits' stored title and tags, and the text's postings), so that
    no memory file is read or analysed again on the hook's path.
    """
    held: dict[int, set[str]] = {}
    for hit in hits:
        fields = f"{hit.get('title') or ''}\n{(hit.get('tags') or '').replace(',', ' ')}"
        held[hit.docnum] = {token.text for token in analyzer(fields)} & terms
    numbers = sorted(held)
    for term in terms:
        if not reader.doc_frequency("body", term):
            continue
        postings = reader.postings("body", term)
        for number in numbers:
            if postings.is_active() and postings.id() < number:
                postings.skip_to(number)
            if not postings.is_active():
                break
            if postings.id() == number:
                held[number].add(term)
    return held


# The per-session record of what was shown


def _state_path(store: Recalling) -> Path:
    return store.git_dir / "memstore" / STATE_FILE


def shown_before(store: Recalling, session: str) -> set[str]:
    """The ids already shown in a session."""
    return set(_load(store).get(session, {}).get("ids", []))


def _load(store: Recalling) -> dict[str, Any]:
    try:
        data = json.loads(_state_path(store).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: a cache, so start again
        return {}
    return data.get("sessions", {}) if isinstance(data, dict) else {}


def remember(store: Recalling, session: str, ids: list[str], now_ns: int) -> None:
    """Record ids as shown in session, keeping the record bounded."""
    sessions = _load(store)
    entry = sessions.pop(session, {"ids": []})
    entry["ids"] = (list(entry.get("ids", [])) + ids)[-MAX_IDS:]
    entry["used"] = now_ns
    sessions[session] = entry
    newest = sorted(sessions, key=lambda key: sessions[key].get("used", 0))[-MAX_SESSIONS:]
    kept = {key: sessions[key] for key in newest}
    path = _state_path(store)
    data = json.dumps({"sessions": kept}, separators=(",", ":")).encode()
    atomic.write_atomic(path, data, durable=False)


# The blocks


def prompt_block(store: Recalling, prompt: str, session: str | None, budget: int) -> str:
    """The block for a prompt: relevant memories not shown before in the session ('' if none)."""
    text, shown = prompt_answer(store, prompt, session, budget)
    if session and shown:
        remember(store, session, shown, time.time_ns())
    return text


def prompt_answer(
    store: Recalling, prompt: str, session: str | None, budget: int
) -> tuple[str, list[str]]:
    """The block for a prompt and the ids it shows, not yet recorded for the session."""
    found = search(store, prompt_words(prompt))
    if session:
        seen = shown_before(store, session)
        found = [item for item in found if item.id not in seen]
    if not found:
        return "", []
    opening = (
        "Memories from memstore that may bear on this prompt (cite by id; `mem show ID` has"
        " the rest):\n"
    )
    left = budget - estimate_tokens(opening)
    parts: list[str] = []
    shown: list[str] = []
    for item in found[:MAX_MEMORIES]:
        try:
            memory = store.get(item.path)
        except MemstoreError:  # gone since it was indexed, or encrypted to someone else
            continue
        head = header(
            memory.id, memory.title, memory.created_text[:10], memory.path, memory.type, memory.tags
        )
        body = memory.body if memory.body.endswith("\n") else memory.body + "\n"
        text = head + body
        if estimate_tokens(text) > left:
            room = (left - estimate_tokens(head)) * CHARS_PER_TOKEN - 3
            if room < MIN_PART * CHARS_PER_TOKEN:
                break
            text = head + cut(body, room)
        parts.append(text)
        shown.append(memory.id)
        left -= estimate_tokens(text)
        if left < MIN_PART:
            break
    if not parts:
        return "", []
    return opening + "".join(parts), shown


def digest(store: Recalling, cwd: str | None) -> str:
    """The session-start digest: memories about the project, then the newest, one line each.

    About the project: those that match its name, then the newest of those tagged with it (as
    captured sessions are, `sessions.project_tag`).
    """
    from memstore.results import Filters
    from memstore.sessions import project_tag

    project = Path(cwd).name if cwd else ""
    lines: list[str] = []
    listed: set[str] = set()

    def line(memory: Any) -> None:
        if memory.id not in listed:
            listed.add(memory.id)
            lines.append(
                f"- {memory.title} (id {memory.id} · {memory.created_text[:10]} · {memory.path})"
            )

    relevant: list[Any] = search(store, prompt_words(project.replace("-", " ").replace("_", " ")))
    tag = project_tag(cwd) if cwd else ""
    if tag:
        relevant += store.list(filters=Filters(tags=[tag]), limit=DIGEST_RELEVANT)
    for item in relevant:
        if len(lines) >= DIGEST_RELEVANT:
            break
        try:
            line(store.get(item.path))
        except MemstoreError:
            continue
    about = len(lines)
    for item in store.list(limit=DIGEST_RECENT):
        try:
            line(store.get(item.path))
        except MemstoreError:
            continue
    if not lines:
        return ""
    text = "memstore: memories you can cite by id (`mem show ID`, or the MCP `show` tool).\n"
    if about:
        text += f"About {project}:\n" + "\n".join(lines[:about]) + "\n"
    if lines[about:]:
        text += "Newest:\n" + "\n".join(lines[about:]) + "\n"
    return text


def checked_budget(budget: int | None) -> int:
    """The token budget asked for (None: DEFAULT_BUDGET); a budget too small is refused."""
    if budget is None:
        return DEFAULT_BUDGET
    if budget < MIN_BUDGET:
        raise InvalidInputError(
            f"a budget of {budget} tokens is too small: give at least {MIN_BUDGET}"
        )
    return budget


def read_payload(raw: str) -> dict[str, Any]:
    """The hook's JSON object from stdin (empty input: an empty object)."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise InvalidInputError(
            f"recall reads a hook's JSON on stdin, and this is not JSON ({error})"
        ) from None
    except RecursionError:  # json's parser recurses once per level of nesting
        raise InvalidInputError(
            "recall reads a hook's JSON on stdin, and this is nested too deeply to read"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError("recall reads a hook's JSON object on stdin, not a list or value")
    return data


def respond(store: Recalling, payload: dict[str, Any], budget: int = DEFAULT_BUDGET) -> str:
    """The text for one hook call: a digest at session start, else the block for the prompt."""
    text, session, shown = answer(store, payload, budget)
    if session and shown:
        remember(store, session, shown, time.time_ns())
    return text


def answer(
    store: Recalling, payload: dict[str, Any], budget: int = DEFAULT_BUDGET
) -> tuple[str, str | None, list[str]]:
    """What `respond` prints, the session and the ids to record for it once printed.

    The search service (service.py) sends the text before it records the ids: a service killed
    in between leaves them to be shown again, never a prompt that got nothing.
    """
    session = payload.get("session_id")
    session = str(session) if session else None
    if payload.get("hook_event_name") == "SessionStart":
        return digest(store, payload.get("cwd")), None, []
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "", None, []
    text, shown = prompt_answer(store, prompt, session, budget)
    return text, session, shown


def store_path(explicit: str | None, cwd: str | None) -> Path | None:
    """The store a hook reads: --store, MEM_STORE, the store around cwd, or the default (None
    when that one does not exist yet: nothing to recall)."""
    here = Path(cwd) if cwd and os.path.isdir(cwd) else None
    path, is_default = locate.choose_store(explicit, here)
    if is_default and not locate.is_store(path):
        return None
    return path
