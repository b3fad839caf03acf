"""Review: what changed between two commits, memory by memory, for people and pull requests.

`compare` walks the two trees with `gitrepo.changed_paths` (the cost follows the change, not the
store), reads both versions of every changed memory file, pairs them by id so that a moved file
is one change, and classifies each: added, deleted, edited (body), retitled, retagged, retyped,
supersedes (a new `supersedes:` entry), relinked, moved, and other fields. Three renderers turn
the result into plain text, Markdown for a pull-request comment, or JSON. Encrypted memories
(`.md.age`) are read only when a decrypt function is given; otherwise they are named by id.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore.errors import InvalidInputError, MalformedMemoryError, MemstoreError
from memstore.memory import (
    ENCRYPTED_SUFFIX,
    FIELD_ORDER,
    MEMORY_DIR,
    SUFFIX,
    Memory,
    parse,
    same_value,
)

if TYPE_CHECKING:
    import pygit2

    from memstore.blobcache import ParsedBlobs

# The order kinds are listed in, everywhere (text, Markdown, JSON).
KINDS = (
    "added",
    "deleted",
    "edited",
    "retitled",
    "retagged",
    "retyped",
    "supersedes",
    "relinked",
    "moved",
    "fields",
)
STATUS_ORDER = ("added", "changed", "deleted")
MD_MARKER = "<!-- memstore-diff -->"
# The GitHub Actions workflow for memory repositories ships inside the package.
WORKFLOW_TEMPLATE = "memory-review.yml"
WORKFLOW_PATH = ".github/workflows/memory-review.yml"
Decrypt = Callable[[bytes, str], bytes | None]
Lookup = Callable[[str], str | None]


class Side:
    """One version of a memory file: its path and, when it could be read, the memory."""

    # A plain class with slots, its id worked out once: a large range makes tens of thousands.
    __slots__ = ("encrypted", "id", "memory", "path", "problem")

    def __init__(
        self, path: str, memory: Memory | None = None, encrypted: bool = False, problem: str = ""
    ) -> None:
        self.path = path
        self.memory = memory
        self.encrypted = encrypted
        self.problem = problem
        memory_id = memory.fields.get("id") if memory is not None else None
        if isinstance(memory_id, str) and memory_id:
            self.id = memory_id
        elif path.endswith(ENCRYPTED_SUFFIX):  # encrypted files are named by their id
            self.id = path.rsplit("/", 1)[-1][: -len(ENCRYPTED_SUFFIX)]
        else:
            self.id = ""

    def __repr__(self) -> str:
        return f"Side({self.path!r}, {self.memory!r}, {self.encrypted!r}, {self.problem!r})"


@dataclass(slots=True)
class Change:
    """What happened to one memory between the two commits."""

    id: str
    title: str
    path: str
    status: str  # added, changed or deleted
    kinds: list[str]
    old_path: str | None = None
    old_title: str | None = None
    tags_added: list[str] = field(default_factory=list)
    tags_removed: list[str] = field(default_factory=list)
    old_type: str | None = None
    type: str | None = None
    supersedes: list[dict[str, str]] = field(default_factory=list)
    links_added: list[str] = field(default_factory=list)
    links_removed: list[str] = field(default_factory=list)
    link_titles: dict[str, str] = field(default_factory=dict)  # id -> title, where known
    fields: list[str] = field(default_factory=list)
    encrypted: bool = False
    readable: bool = True
    problem: str = ""
    diff: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "path": self.path,
            "status": self.status,
            "kinds": self.kinds,
            "old_path": self.old_path,
            "old_title": self.old_title,
            "tags_added": self.tags_added,
            "tags_removed": self.tags_removed,
            "old_type": self.old_type,
            "type": self.type,
            "supersedes": self.supersedes,
            "links_added": self.links_added,
            "links_removed": self.links_removed,
            "link_titles": self.link_titles,
            "fields": self.fields,
            "encrypted": self.encrypted,
            "readable": self.readable,
            "problem": self.problem,
            "diff": "\n".join(self.diff),
        }


@dataclass
class Review:
    """Every memory change between two commits."""

    spec: str
    old: str | None  # None: the empty tree (the first commit)
    new: str
    changes: list[Change]

    def counts(self) -> dict[str, int]:
        """How many changes of each kind, in KINDS order, without the zeros."""
        counts = {kind: 0 for kind in KINDS}
        for change in self.changes:
            for kind in change.kinds:
                counts[kind] += 1
        return {kind: n for kind, n in counts.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return {
            "range": {"spec": self.spec, "from": self.old, "to": self.new},
            "counts": self.counts(),
            "changes": [change.to_dict() for change in self.changes],
        }


# Ranges


def resolve_range(repo: pygit2.Repository, spec: str | None) -> tuple[str, str | None, str]:
    """(spec shown, old commit or None, new commit) for A..B, A...B, REV (REV..HEAD) or nothing.

    Nothing means the commits not yet on the branch's upstream (or origin's branch of the same
    name) when there are any, otherwise the last commit.
    """
    import pygit2

    if repo.head_is_unborn:
        raise InvalidInputError("the store has no commits yet: add a memory first")
    head = repo.head.peel(pygit2.Commit)
    if spec is None or not spec.strip():
        return _default_range(repo, head)
    spec = spec.strip()
    try:
        parsed = repo.revparse(spec)
        if parsed.flags & pygit2.enums.RevSpecFlag.SINGLE:
            old = parsed.from_object.peel(pygit2.Commit)
            return spec, str(old.id), str(head.id)
        old = parsed.from_object.peel(pygit2.Commit)
        new = parsed.to_object.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise InvalidInputError(
            f"unknown revision or range {spec!r}: give a commit, branch or tag, A..B or A...B"
        ) from None
    if parsed.flags & pygit2.enums.RevSpecFlag.MERGE_BASE:
        base = repo.merge_base(old.id, new.id)
        if base is None:
            raise InvalidInputError(f"{spec!r}: the two commits have no common ancestor")
        return spec, str(base), str(new.id)
    return spec, str(old.id), str(new.id)


def _default_range(repo: pygit2.Repository, head: Any) -> tuple[str, str | None, str]:
    upstream = _upstream(repo)
    if upstream is not None:
        base = repo.merge_base(upstream, head.id)
        if base is not None and base != head.id:
            return "unpushed commits", str(base), str(head.id)
    parent = str(head.parents[0].id) if head.parents else None
    return "HEAD~1..HEAD" if parent else "HEAD", parent, str(head.id)


def _upstream(repo: pygit2.Repository) -> Any:
    if repo.head_is_detached:
        return None
    branch = repo.branches.local.get(repo.head.shorthand)
    target = None
    try:
        target = branch.upstream if branch is not None else None
    except Exception:  # a configured upstream whose ref is gone
        target = None
    if target is None:
        ref = repo.references.get(f"refs/remotes/origin/{repo.head.shorthand}")
        return ref.target if ref is not None else None
    return target.target


# Comparing


def compare(
    repo: pygit2.Repository,
    old: str | None,
    new: str,
    spec: str = "",
    *,
    decrypt: Decrypt | None = None,
    lookup: Lookup | None = None,
) -> Review:
    """The memory-level changes from commit old (None: nothing) to commit new."""
    import gc

    # Tens of thousands of objects are made for a large range, none in a cycle: the cyclic
    # collector's passes over them found nothing and took a seventh of the time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compare(repo, old, new, spec, decrypt, lookup)
    finally:
        if collecting:
            gc.enable()


def _compare(
    repo: pygit2.Repository,
    old: str | None,
    new: str,
    spec: str,
    decrypt: Decrypt | None,
    lookup: Lookup | None,
) -> Review:
    from memstore import gitrepo

    blobs = gitrepo.changed_blobs(repo, old, new, MEMORY_DIR)
    if blobs is None:
        raise InvalidInputError(f"cannot read the commits of {spec!r}: check the range")
    before: dict[str, Side] = {}
    after: dict[str, Side] = {}
    odb = repo.odb
    paths = [
        path
        for path in sorted(blobs)
        if path.endswith((SUFFIX, ENCRYPTED_SUFFIX)) and not path.rsplit("/", 1)[-1].startswith(".")
    ]
    parsed = _parsed_blobs(repo, blobs, paths)
    for path in paths:
        plain = path.endswith(SUFFIX)
        # The blob ids come with the tree diff: no lookup of each path in each commit's tree.
        for blob_id, sides in zip(blobs[path], (before, after), strict=True):
            if blob_id is None:
                continue
            kept = parsed.get(blob_id) if parsed is not None and plain else None
            if kept is not None:
                side = Side(path, Memory(path=path, fields=kept[0], body=kept[1]))
            else:
                data = _blob_data(odb, blob_id)
                if data is None:
                    continue
                side = _read_side(path, data, decrypt)
                if parsed is not None and plain and side.memory is not None:
                    parsed.put(blob_id, side.memory.fields, side.memory.body)
            # By id, so that a moved file is one change; a file without one, by path.
            sides.setdefault(side.id or f"path:{path}", side)
    if parsed is not None:
        parsed.save()
    _pair_unreadable(before, after)
    _pair_unreadable(after, before)
    titles: dict[str, str] = {}
    titles_made = False

    def title_of(memory_id: str) -> str:
        nonlocal titles_made
        if not titles_made:  # only ranges with links or supersedes ask: made at the first one
            titles_made = True
            for sides in (before, after):
                for key, side in sides.items():
                    if side.memory is not None:
                        titles[key] = side.memory.title
        if memory_id not in titles:
            found = _title_in_tree(repo, new, memory_id, decrypt)
            if found is None and old is not None:
                found = _title_in_tree(repo, old, memory_id, decrypt)
            if found is None and lookup is not None:  # a file kept outside its month's folder
                found = lookup(memory_id)
            titles[memory_id] = found or ""
        return titles[memory_id]

    pairs = [(before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())]
    changes = [_classify(a, b, title_of) for a, b in pairs]
    changes = [change for change in changes if change.kinds]
    changes.sort(key=lambda c: (STATUS_ORDER.index(c.status), c.path, c.id))
    return Review(spec=spec, old=old, new=new, changes=changes)


def _parsed_blobs(
    repo: pygit2.Repository, blobs: dict[str, tuple[str | None, str | None]], paths: list[str]
) -> ParsedBlobs | None:
    """The cache of parsed files, loaded, for a range that reads enough plain files to gain
    from it (blobcache.py); None for a smaller one, or a repository without memstore's folder."""
    from memstore import blobcache

    plain = sum(
        (a is not None) + (b is not None)
        for a, b in (blobs[path] for path in paths if path.endswith(SUFFIX))
    )
    home = Path(repo.path) / "memstore"
    if plain < blobcache.MIN_BLOBS or not home.is_dir():
        return None
    parsed = blobcache.ParsedBlobs(home)
    parsed.load()
    return parsed


def _pair_unreadable(these: dict[str, Side], others: dict[str, Side]) -> None:
    """Key a readable side by path when the other commit's file at that path has no id."""
    for key in [k for k in others if k.startswith("path:")]:
        path = key[len("path:") :]
        match = next((k for k, side in these.items() if side.path == path), None)
        if match is not None and match != key and match not in others:
            these[key] = these.pop(match)


def _blob_data(odb: pygit2.Odb, blob_id: str | None) -> bytes | None:
    if blob_id is None:
        return None
    import pygit2

    # From the object database: half the time of building a Blob object to take its bytes.
    kind, data = odb.read(blob_id)
    return data if kind == pygit2.enums.ObjectType.BLOB else None


def _title_in_tree(
    repo: pygit2.Repository, commit: str, memory_id: str, decrypt: Decrypt | None
) -> str | None:
    """The title of a memory in a commit, looked up where memstore puts its file.

    A memory's file is in the folder of the month it was created (local time), which its id
    tells to within a day, and its name ends with the id's last characters: a few tree reads,
    where asking the search index could mean building it first (a fresh clone in CI).
    """
    import pygit2

    from memstore import ids

    made = ids.time_of(memory_id.lower())
    if made is None:
        return None
    moment = datetime.fromtimestamp(made / 1000, UTC)
    months = sorted({(moment + timedelta(days=d)).strftime("%Y/%m") for d in (-1, 0, 1)})
    names = (f"-{memory_id[-ids.SHORT_ID_LENGTH :]}{SUFFIX}", f"{memory_id}{ENCRYPTED_SUFFIX}")
    tree = repo[commit].peel(pygit2.Commit).tree
    for month in months:
        try:
            folder = repo[tree[f"{MEMORY_DIR}/{month}"].id]
        except KeyError:
            continue
        if not isinstance(folder, pygit2.Tree):
            continue
        for entry in folder:
            name = entry.name or ""
            blob = repo[entry.id] if name.endswith(names) else None
            if not isinstance(blob, pygit2.Blob):
                continue
            side = _read_side(f"{MEMORY_DIR}/{month}/{name}", blob.data, decrypt)
            if side.memory is not None and side.memory.id == memory_id:
                return side.memory.title
    return None


def _read_side(path: str, data: bytes, decrypt: Decrypt | None) -> Side:
    encrypted = path.endswith(ENCRYPTED_SUFFIX)
    if encrypted:
        try:
            plain = decrypt(data, path) if decrypt is not None else None
        except MemstoreError as error:  # encrypted to others only, or damaged: named by id
            return Side(path, encrypted=True, problem=str(error))
        if plain is None:
            return Side(path, encrypted=True)
        data = plain
    try:
        return Side(path, parse(data, path), encrypted=encrypted)
    except MalformedMemoryError as error:
        return Side(path, encrypted=encrypted, problem=error.reason)


def _classify(a: Side | None, b: Side | None, title_of: Callable[[str], str]) -> Change:
    current = b or a
    assert current is not None
    status = "added" if a is None else "deleted" if b is None else "changed"
    memory = current.memory
    known = memory or (a.memory if a is not None else None)  # a file that became unreadable
    change = Change(
        id=current.id or (a.id if a is not None else ""),
        title=known.title if known is not None else "",
        path=current.path,
        status=status,
        kinds=[],
        encrypted=current.encrypted,
        readable=memory is not None,
        problem=current.problem,
    )
    old, new = (a.memory if a else None), (b.memory if b else None)
    if status != "changed":
        change.kinds.append(status)
        if new is not None and new.fields.get("supersedes") is not None and new.supersedes:
            change.kinds.append("supersedes")
            change.supersedes = [
                {"id": ref, "title": title_of(ref)} for ref in new.supersedes if ref
            ]
        change.diff = _body_diff(old, new, a, b)
        return change
    assert a is not None and b is not None
    if a.path != b.path:
        change.old_path = a.path
    if old is None or new is None:  # unreadable on one side: say that it changed, no details
        change.kinds.append("edited")
        if a.path != b.path:
            change.kinds.append("moved")
        return change
    kinds = change.kinds
    if old.body != new.body:
        kinds.append("edited")
    if old.title != new.title:
        kinds.append("retitled")
        change.old_title = old.title
    change.tags_added = [t for t in new.tags if t not in old.tags]
    change.tags_removed = [t for t in old.tags if t not in new.tags]
    if change.tags_added or change.tags_removed:
        kinds.append("retagged")
    if old.type != new.type:
        kinds.append("retyped")
        change.old_type, change.type = old.type, new.type
    added = [ref for ref in new.supersedes if ref and ref not in old.supersedes]
    if added:
        kinds.append("supersedes")
        change.supersedes = [{"id": ref, "title": title_of(ref)} for ref in added]
    change.links_added = [ref for ref in new.links if ref not in old.links]
    change.links_removed = [ref for ref in old.links if ref not in new.links]
    if change.links_added or change.links_removed:
        kinds.append("relinked")
        for ref in change.links_added + change.links_removed:
            if title_of(ref):
                change.link_titles[ref] = title_of(ref)
    if a.path != b.path:
        kinds.append("moved")
    handled = {"title", "tags", "type", "links"} | ({"supersedes"} if added else set())
    names = [k for k in FIELD_ORDER if k not in handled] + sorted(
        (old.fields.keys() | new.fields.keys()) - set(FIELD_ORDER)
    )
    change.fields = [
        name for name in names if not same_value(old.fields.get(name), new.fields.get(name))
    ]
    if change.fields:
        kinds.append("fields")
    change.diff = _body_diff(old, new, a, b)
    return change


def _body_diff(old: Memory | None, new: Memory | None, a: Side | None, b: Side | None) -> list[str]:
    if (a is not None and old is None) or (b is not None and new is None):
        return []  # an unreadable side: no line diff to show
    before = old.body.splitlines() if old is not None else []
    after = new.body.splitlines() if new is not None else []
    if before == after:
        return []
    if not before or not after:  # added or emptied: what difflib writes, without its matching
        sign, lines = ("+", after) if after else ("-", before)
        span = "1" if len(lines) == 1 else f"1,{len(lines)}"
        ranges = f"-0,0 +{span}" if sign == "+" else f"-{span} +0,0"
        head = [
            f"--- {f'a/{a.path}' if a else '/dev/null'}",
            f"+++ {f'b/{b.path}' if b else '/dev/null'}",
            f"@@ {ranges} @@",
        ]
        # The lines have no line break left in them: signed in one join and one split.
        return head + (sign + f"\n{sign}".join(lines)).split("\n")
    return list(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"a/{a.path}" if a else "/dev/null",
            tofile=f"b/{b.path}" if b else "/dev/null",
            lineterm="",
        )
    )


# Rendering


def _headline(review: Review) -> str:
    counts = review.counts()
    if not counts:
        return "no memory changes"
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def _range_text(review: Review) -> str:
    old = review.old[:10] if review.old else "(empty)"
    shown = f"{old}..{review.new[:10]}"
    return shown if review.spec in ("", shown) else f"{review.spec} ({shown})"


def _details(change: Change) -> list[str]:
    """The lines that say what changed besides the status, in KINDS order."""
    lines: list[str] = []
    if not change.readable:
        if change.encrypted:
            lines.append("encrypted: contents not shown (no key to read it)")
        elif change.problem:
            lines.append(f"unreadable: {change.problem}")
    if change.old_title is not None:
        lines.append(f"retitled from “{change.old_title}”")
    if change.tags_added or change.tags_removed:
        tags = [f"+{t}" for t in change.tags_added] + [f"-{t}" for t in change.tags_removed]
        lines.append("tags " + " ".join(tags))
    if change.old_type is not None:
        lines.append(f"type {change.old_type} → {change.type}")
    for item in change.supersedes:
        title = f" “{item['title']}”" if item["title"] else ""
        lines.append(f"supersedes {item['id']}{title}")
    for sign, refs in (("+", change.links_added), ("-", change.links_removed)):
        for ref in refs:
            named = change.link_titles.get(ref)
            lines.append(f"link {sign}{ref}" + (f" “{named}”" if named else ""))
    if change.old_path is not None:
        lines.append(f"moved from {change.old_path}")
    if change.fields:
        lines.append("fields changed: " + ", ".join(change.fields))
    return lines


def _label(change: Change) -> str:
    if change.title:
        return change.title
    return "(encrypted)" if change.encrypted else "(no title)"


def render_text(review: Review) -> str:
    """Plain text: a summary line, one block per memory, then the body diffs."""
    out = [f"memory changes in {_range_text(review)}: {_headline(review)}"]
    if not review.changes:
        return out[0] + "\n"
    out.append("")
    pad = " " * 9
    for change in review.changes:  # one entry may hold several lines: all are joined alike
        out.append(f"{change.status:<8} {change.id or '-'}  {_label(change)}\n{pad}{change.path}")
        for line in _details(change):
            out.append(pad + line)
    for change in review.changes:
        if change.diff:
            out.append(f"\n=== {change.id}  {_label(change)}")
            out.extend(change.diff)
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell or summary: no markup, no HTML, no pipes."""
    text = re.sub(r"([\\`*_\[\]<>|#~])", r"\\\1", text)
    return text.replace("\n", " ")


def _fence(lines: list[str]) -> str:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(review: Review) -> str:
    """Markdown for a pull-request comment: a table, then each body diff in <details>."""
    out = [MD_MARKER, "### Memory changes", ""]
    if not review.changes:
        out.append(f"No memory changes in `{_range_text(review)}`.")
        return "\n".join(out) + "\n"
    out.append(f"{_headline(review).capitalize()} in `{_range_text(review)}`.")
    out.append("")
    out.append("| Change | Memory | Details |")
    out.append("|---|---|---|")
    for change in review.changes:
        kinds = ", ".join(change.kinds)
        memory = f"**{_md_escape(_label(change))}**<br>`{change.id or '-'}`"
        details = "<br>".join(_md_escape(line) for line in _details(change))
        out.append(f"| {kinds} | {memory} | {details} |")
    for change in review.changes:
        if not change.diff:
            continue
        fence = _fence(change.diff)
        out += [
            "",
            f"<details><summary>{_md_escape(_label(change))} (<code>{change.id}</code>)</summary>",
            "",
            f"{fence}diff",
            *change.diff,
            fence,
            "",
            "</details>",
        ]
    return "\n".join(out) + "\n"


def render_json(review: Review) -> dict[str, Any]:
    """The review as plain data with a stable key order."""
    return review.to_dict()


# The pull-request workflow


def workflow_template(version: str) -> str:
    """The GitHub Actions workflow that reviews memory changes in pull requests.

    It installs memstore-git pinned to version (`memstore.version()`, this one): the job holds a
    token that can write to pull requests, so it runs only the code that wrote it (until someone
    changes the pin).
    """
    from importlib.resources import files

    template = files("memstore").joinpath("templates", WORKFLOW_TEMPLATE)
    return template.read_text(encoding="utf-8").replace("@VERSION@", version)


def install_workflow(root: Path, version: str) -> tuple[Path, bool]:
    """Write the workflow for version into a repository at root; (its path, whether written)."""
    from memstore.atomic import write_atomic

    target = root / WORKFLOW_PATH
    text = workflow_template(version)
    if target.exists():
        if target.read_text(encoding="utf-8") == text:
            return target, False
        raise InvalidInputError(
            f"{target} exists and differs from the template: compare it with 'mem ci-template',"
            " then remove it to install the template"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text.encode("utf-8"))
    return target, True
