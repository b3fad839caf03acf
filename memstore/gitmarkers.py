"""git's conflict markers in a memory file, left by a plain `git merge` or `git pull` that ran
without memstore's merge driver: finding them, and taking the two sides over as a memstore merge.

memstore's own conflicts are blocks of HTML comments (`memstore.merge`); git's markers
(`<<<<<<<`, `|||||||`, `=======`, `>>>>>>>`) break a memory's YAML header, so `mem check` reports
them and `mem resolve` rebuilds both sides from them and merges them field by field.
"""

from __future__ import annotations

from memstore.merge import MergeResult, merge_memory

_OURS, _BASE, _THEIRS, _END = b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>"


def _marker(line: bytes, marker: bytes) -> bool:
    rest = line[len(marker) :]
    return line.startswith(marker) and (not rest.strip() or rest[:1] in (b" ", b"\t"))


def marker_line(data: bytes) -> int | None:
    """The line number of the first `<<<<<<<` of a conflict git left in data, if any."""
    if _END not in data:
        return None
    for number, line in enumerate(data.splitlines(), 1):
        if _marker(line, _OURS):
            return number if sides(data) is not None else None
    return None


def sides(data: bytes) -> tuple[bytes | None, bytes, bytes] | None:
    """(base, ours, theirs) rebuilt from git's markers; base is None unless every conflict
    carries it (git's diff3 or zdiff3 style). None when the markers do not nest properly."""
    ours: list[bytes] = []
    base: list[bytes] = []
    theirs: list[bytes] = []
    every_base = True
    state = "out"
    conflicts = 0
    for line in data.splitlines(keepends=True):
        if state == "out" and _marker(line, _OURS):
            state, seen_base, conflicts = "ours", False, conflicts + 1
        elif state == "ours" and _marker(line, _BASE):
            state, seen_base = "base", True
        elif state in ("ours", "base") and _marker(line, _THEIRS):
            state = "theirs"
            every_base = every_base and seen_base
        elif state == "theirs" and _marker(line, _END):
            state = "out"
        elif _marker(line, _OURS) or _marker(line, _END):
            return None  # nested or out of order: not git's plain markers
        else:
            targets = {
                "out": (ours, base, theirs),
                "ours": (ours,),
                "base": (base,),
                "theirs": (theirs,),
            }[state]
            for target in targets:
                target.append(line)
    if state != "out" or not conflicts:
        return None
    return (b"".join(base) if every_base else None), b"".join(ours), b"".join(theirs)


def take_over(data: bytes, path: str = "") -> MergeResult | None:
    """The memstore merge of the two sides held by git's markers (None: no usable markers)."""
    found = sides(data)
    if found is None:
        return None
    base, ours, theirs = found
    return merge_memory(base, ours, theirs, path)
