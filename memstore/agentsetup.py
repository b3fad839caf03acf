"""`mem setup`: register memstore with AI coding tools in each tool's own configuration files.

For each tool, the MCP server (`mem --store STORE mcp`, by the absolute path of this
installation's `mem`) goes where the tool reads its user-wide MCP servers, and for Claude Code
three hooks go in its user settings: at session start a digest of the store, at every prompt the
memories that match it (`recall`), at session end the capture of the session (`import --from
claude-code --hook`). The files, as each tool documents them:

- Claude Code: `~/.claude.json`, top-level `mcpServers` (what `claude mcp add --scope user`
  writes); `~/.claude/settings.json`, `hooks.{SessionStart,UserPromptSubmit,SessionEnd}`, each a
  list of `{"hooks": [{"type": "command", "command": …}]}` groups.
- Cursor: `~/.cursor/mcp.json`, `mcpServers`.
- Codex: `~/.codex/config.toml` (or `$CODEX_HOME/config.toml`), a `[mcp_servers.memstore]`
  table with `command`, `args` and `env`.

What memstore owns: the `memstore` MCP server entry, and hook commands that run this
installation's Python with `-m memstore`. Everything else in the files keeps its bytes
(`configedit`). A file that changes is first copied to `FILE.bak` (the state before the latest
change, as `sed -i.bak` keeps it); a run that changes nothing writes nothing; `remove` takes out
exactly what setup put in.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memstore import atomic, configedit
from memstore.errors import InvalidInputError

TOOLS = ("claude-code", "cursor", "codex")
SERVER_NAME = "memstore"
# Claude Code's hook events and the `mem` arguments (after `--store S`) each one runs.
HOOKS = {
    "SessionStart": ["recall"],
    "UserPromptSubmit": ["recall"],
    "SessionEnd": ["import", "--from", "claude-code", "--hook"],
}
# Seconds Claude Code waits for a hook; recall answers in a fraction of that.
HOOK_TIMEOUT = {"SessionStart": 10, "UserPromptSubmit": 10, "SessionEnd": 60}


@dataclass
class Change:
    """One configuration file: its text before and after (None: no such file)."""

    path: Path
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """The change as a unified diff ('' when nothing changes)."""
        name = shown(self.path)
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=name if self.before is not None else "/dev/null",
            tofile=name if self.after is not None else "/dev/null",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    @property
    def backup(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")


@dataclass
class Installation:
    """How the tools start memstore: this Python, and the store they should use."""

    python: Path
    mem: Path
    store: Path

    @classmethod
    def current(cls, store: Path) -> Installation:
        """This installation: `mem` beside the running interpreter (or `python -m memstore`)."""
        python = Path(sys.executable).absolute()
        mem = python.parent / ("mem.exe" if sys.platform == "win32" else "mem")
        return cls(python=python, mem=mem, store=store.absolute())

    def server(self, source: str) -> tuple[str, list[str], dict[str, str]]:
        """The MCP server's command, arguments and environment for one tool."""
        store_args = ["--store", str(self.store), "mcp"]
        if self.mem.exists():
            return str(self.mem), store_args, {"MEM_SOURCE": source}
        # -P: the project folder the tool starts the server in is not put on sys.path.
        return str(self.python), ["-P", "-m", "memstore", *store_args], {"MEM_SOURCE": source}

    def hook_prefix(self) -> str:
        """The start of every hook command: this Python without a typer start-up."""
        # -P: the project folder the hook runs in is not put on sys.path, so a `memstore`
        # folder there cannot stand in for the installed one.
        return shlex.join([str(self.python), "-P", "-m", "memstore"])

    def hook_command(self, event: str) -> str:
        return f"{self.hook_prefix()} {shlex.join(['--store', str(self.store), *HOOKS[event]])}"

    def owns_hook(self, command: Any, event: str) -> bool:
        """Whether a hook command is one setup writes for event (for any store)."""
        if not isinstance(command, str):
            return False
        return command.startswith(self.hook_prefix() + " --store ") and command.endswith(
            " " + shlex.join(HOOKS[event])
        )


def home() -> Path:
    """The user's home folder, from HOME where it is set (tests set it)."""
    return Path(os.environ.get("HOME") or Path.home())


def config_files(tool: str) -> list[Path]:
    """The files setup edits for a tool."""
    if tool == "claude-code":
        return [home() / ".claude.json", home() / ".claude" / "settings.json"]
    if tool == "cursor":
        return [home() / ".cursor" / "mcp.json"]
    codex_home = os.environ.get("CODEX_HOME")
    return [(Path(codex_home) if codex_home else home() / ".codex") / "config.toml"]


def plan(tools: list[str], installation: Installation, remove: bool = False) -> list[Change]:
    """The change to every file of the tools, computed without writing anything.

    Raises InvalidInputError for a file that cannot be read as its format, before any change.
    """
    changes = []
    for tool in tools:
        if tool not in TOOLS:
            raise InvalidInputError(
                f"unknown tool {tool!r}: choose one of {', '.join(TOOLS)} or all"
            )
        for path in config_files(tool):
            before = _read(path)
            edited = _edited(tool, path, installation, remove, before or "")
            after: str | None = edited
            restored = _before_setup(tool, path, installation, before) if remove else None
            if restored is not None:
                after = restored
            elif before is None and edited == "":
                after = None
            elif (
                remove and before is not None and _empty(path, edited) and not _empty(path, before)
            ):
                after = None  # what setup created holds nothing else: take the file away too
            changes.append(Change(path, before, after))
    return changes


def _edited(tool: str, path: Path, installation: Installation, remove: bool, text: str) -> str:
    """text with memstore's entries set (or removed), in the file's own line endings."""
    crlf = "\r\n" in text and text.count("\n") == text.count("\r\n")
    edit = _editor(tool, path, installation, remove)
    if not crlf:
        return edit(text)
    return edit(text.replace("\r\n", "\n")).replace("\n", "\r\n")


def _before_setup(
    tool: str, path: Path, installation: Installation, current: str | None
) -> str | None:
    """The backup's text when the file is still exactly what setup made of it (so that remove
    gives back its bytes, empty objects and missing final newline included); else None."""
    if current is None:
        return None
    try:
        backup = _read(path.with_name(path.name + ".bak"))
        if backup is None or _edited(tool, path, installation, True, backup) != backup:
            return None  # no backup, or one that holds memstore's entries itself
        if _edited(tool, path, installation, False, backup) != current:
            return None  # changed since setup (by the user, or a setup for another store)
    except InvalidInputError:  # a backup that does not parse: not one setup made
        return None
    return backup


def apply(changes: list[Change]) -> None:
    """Write the changed files, each after a copy of its old bytes in FILE.bak."""
    for change in changes:
        if not change.changed:
            continue
        if change.before is not None:
            shutil.copy2(change.path, change.backup)
        if change.after is None:
            change.path.unlink()
        else:
            atomic.write_atomic(change.path, change.after.encode("utf-8"))


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")  # line endings as they are
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f"cannot read {shown(path)}: {getattr(error, 'strerror', None) or error};"
            " fix it, then run 'mem setup' again (nothing was changed)"
        ) from None


def _empty(path: Path, text: str) -> bool:
    if path.suffix == ".toml":
        return not text.strip()
    return text.strip() in ("", "{}")


def shown(path: Path) -> str:
    """A path as the user would type it: ~ for the home folder."""
    try:
        return "~/" + path.relative_to(home()).as_posix()
    except ValueError:
        return str(path)


def _editor(
    tool: str, path: Path, installation: Installation, remove: bool
) -> Callable[[str], str]:
    if tool == "codex":
        return lambda text: _codex(text, path, installation, remove)
    if path.name == "settings.json":
        return lambda text: _claude_hooks(text, path, installation, remove)
    return lambda text: _mcp_json(text, path, tool, installation, remove)


# JSON files


def _object(text: str, path: Path) -> configedit.Node:
    return configedit.parse_json(text or "{}", shown(path))


def _expect(node: configedit.Node | None, kind: str, where: str, path: Path) -> None:
    if node is not None and node.kind != kind:
        raise InvalidInputError(
            f"{shown(path)}: {where} should be a JSON {kind}; fix it, then run 'mem setup'"
            " again (nothing was changed)"
        )


def _set_member(text: str, path: Path, keys: list[str], value: Any) -> str:
    """text with the member at keys set to value, creating the objects on the way."""
    text = text or "{}\n"
    node = _object(text, path)
    for depth, key in enumerate(keys):
        child = node.get(key)
        if child is None:
            for missing in reversed(keys[depth + 1 :]):
                value = {missing: value}
            return configedit.add_entry(text, node, value, key)
        if depth == len(keys) - 1:
            if child.value(text) == value:
                return text
            return configedit.replace_value(text, child, value)
        _expect(child, "object", f"'{'.'.join(keys[: depth + 1])}'", path)
        node = child
    return text


def _delete_member(text: str, path: Path, keys: list[str]) -> str:
    """text without the member at keys, and without the objects that this leaves empty."""
    if not text:
        return text
    chain = [_object(text, path)]
    for key in keys:
        child = chain[-1].get(key)
        if child is None:
            return text
        if key != keys[-1]:
            _expect(child, "object", f"'{key}'", path)
        chain.append(child)
    # Delete the deepest member; then each parent it leaves empty (but never the top level).
    for depth in range(len(keys), 0, -1):
        parent = chain[depth - 1]
        index = max(i for i, (name, _, _) in enumerate(parent.entries) if name == keys[depth - 1])
        text = configedit.delete_entry(text, parent, index)
        if depth == 1 or len(parent.entries) > 1:
            break
        chain = [_object(text, path)]
        for key in keys[: depth - 1]:
            chain.append(chain[-1].get(key))  # type: ignore[arg-type]
    return text


def _mcp_json(text: str, path: Path, tool: str, installation: Installation, remove: bool) -> str:
    node = _object(text, path)
    _expect(node.get("mcpServers"), "object", "'mcpServers'", path)
    if remove:
        return _delete_member(text, path, ["mcpServers", SERVER_NAME])
    command, args, env = installation.server(tool)
    entry: dict[str, Any] = {"command": command, "args": args, "env": env}
    if tool == "claude-code":
        entry = {"type": "stdio", **entry}  # as `claude mcp add` writes it
    return _set_member(text, path, ["mcpServers", SERVER_NAME], entry)


def _claude_hooks(text: str, path: Path, installation: Installation, remove: bool) -> str:
    for event in HOOKS:
        text = _one_hook(text, path, installation, event, remove)
    return text


def _one_hook(text: str, path: Path, installation: Installation, event: str, remove: bool) -> str:
    """text with memstore's hook for event set (or removed): one command, in a group of its own
    at the end of the event's list unless it was already somewhere in it."""
    wanted: dict[str, Any] = {
        "type": "command",
        "command": installation.hook_command(event),
        "timeout": HOOK_TIMEOUT[event],
    }
    while True:
        root = _object(text, path)
        hooks = root.get("hooks")
        _expect(hooks, "object", "'hooks'", path)
        groups = hooks.get(event) if hooks is not None else None
        _expect(groups, "array", f"'hooks.{event}'", path)
        ours = list(_our_hooks(text, groups, installation, event)) if groups else []
        if remove or len(ours) > 1:  # a copy made by hand: keep only the first
            if not ours or (not remove and len(ours) == 1):
                break
            group_index, group, item_index = ours[-1]
            inner = group.get("hooks")
            assert groups is not None and hooks is not None and inner is not None
            if len(inner.entries) > 1:
                text = configedit.delete_entry(text, inner, item_index)
            elif len(groups.entries) > 1:
                text = configedit.delete_entry(text, groups, group_index)
            else:
                text = _delete_member(text, path, ["hooks", event])
            continue
        if ours:
            _, group, item_index = ours[0]
            inner = group.get("hooks")
            assert inner is not None
            item = inner.entries[item_index][2]
            if item.value(text) != wanted:
                text = configedit.replace_value(text, item, wanted)
            break
        if groups is None:
            return _set_member(text, path, ["hooks", event], [{"hooks": [wanted]}])
        return configedit.add_entry(text, groups, {"hooks": [wanted]})
    return text


def _our_hooks(
    text: str, groups: configedit.Node, installation: Installation, event: str
) -> list[tuple[int, configedit.Node, int]]:
    found = []
    for group_index, (_, _, group) in enumerate(groups.entries):
        inner = group.get("hooks") if group.kind == "object" else None
        if inner is None or inner.kind != "array":
            continue
        for item_index, (_, _, item) in enumerate(inner.entries):
            if item.kind != "object":
                continue
            command = item.get("command")
            if command is not None and installation.owns_hook(command.value(text), event):
                found.append((group_index, group, item_index))
    return found


# TOML (Codex)


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's."""
    return json.dumps(value, ensure_ascii=False)


def _codex(text: str, path: Path, installation: Installation, remove: bool) -> str:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(
            f"{shown(path)} is not valid TOML: {error}; fix it or move it away, then run"
            " 'mem setup' again (nothing was changed)"
        ) from None
    table = f"mcp_servers.{SERVER_NAME}"
    span = configedit.table_span(text, table)
    servers = data.get("mcp_servers", {})
    if span is None and isinstance(servers, dict) and SERVER_NAME in servers:
        raise InvalidInputError(
            f"{shown(path)} defines mcp_servers.{SERVER_NAME} in a form 'mem setup' does not"
            f" edit (not a [{table}] table): change or remove it by hand"
        )
    if remove:
        return text if span is None else configedit.delete_table(text, span)
    command, args, env = installation.server("codex")
    block = (
        f"[{table}]\n"
        f"command = {_toml_string(command)}\n"
        f"args = [{', '.join(_toml_string(arg) for arg in args)}]\n"
        f"env = {{ {', '.join(f'{k} = {_toml_string(v)}' for k, v in env.items())} }}\n"
    )
    if span is None:
        result = configedit.add_table(text, block)
    else:
        start, end = span
        result = text[:start] + block + text[end:]
    # The table is written whole: what it holds now is exactly what setup means.
    assert tomllib.loads(result)["mcp_servers"][SERVER_NAME] == {
        "command": command,
        "args": args,
        "env": env,
    }
    return result
