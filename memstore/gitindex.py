"""`.git/index` changed in place for a few paths, with the bytes libgit2 would write.

Committing one memory through libgit2 loads the whole index (100k entries, 14 MB at 100k
memories) into memory and writes it all back: about 130 ms. Here the file is read as bytes and
walked once for the offsets of its entries (none is decoded), the changed entries are spliced
in at their sorted places, and the file is written through git's lock file (`index.lock`, then
a rename), byte for byte as libgit2 1.9 writes it after `Index.add(path)` or `Index.remove(path)`
and `Index.write()`:

- index format version 2: a header, the entries sorted by path (each 62 bytes of stat data,
  blob id and flags, then the path, padded with NULs to a multiple of 8 bytes), the extensions,
  and the SHA-1 of all that;
- a new entry's stat data as libgit2 takes it: `lstat` of the file, times with nanoseconds, the
  device number from `st_rdev` (0 for a file), the mode 100644 or 100755, 32-bit fields cut;
- the cache-tree extension (TREE) kept, with the trees along each changed path invalidated
  (entry count -1, no tree id) and the rest as they were;
- git's racily-clean rule: libgit2 checks the entries whose files are as new as the index
  itself, and smudges (size 0) those whose files changed since; such an entry hands the whole
  write to libgit2.

After each write the layout of the new file (where its entries are, which are racily clean) is
noted in `.git/memstore/gitindex.layout`, with the file's size, time, inode and checksum: while
the index is still that file, the next write needs neither the walk nor a new check of the
checksum (git itself does not check it when it reads the index). Any other file is walked.

Anything else returns False without writing, and the caller lets libgit2 do it: another index
version, a conflict (stages), extended or assume-valid flags, split index, a sparse index or any
extension but TREE, a path that is also a directory, an index that is missing, locked or fails
its checksum, and a file that git's filters could change on its way in (see `blob_id`).
Standard library only: libgit2 itself is not even loaded for a filter, which would load the
whole index to read `.gitattributes` from it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import sys
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memstore.atomic import write_atomic

SIGNATURE = b"DIRC"
VERSION = 2
TREE = b"TREE"
_HEADER = struct.Struct(">4sII")
_STAT = struct.Struct(">10I")
_FLAGS = struct.Struct(">H")
_EXTENSION = struct.Struct(">4sI")
ENTRY_FIXED = 62  # stat data (40 bytes), blob id (20), flags (2)
# The flags' path length; flags above it (assume-valid, extended, a stage) or a path this long
# or longer are left to libgit2.
NAME_MASK = 0x0FFF
CHECKSUM = 20
# libgit2 creates the lock file with this mode (less the umask); the rename keeps it.
FILE_MODE = 0o666
REGULAR = 0o100644
EXECUTABLE = 0o100755


@dataclass
class TreeCache:
    """One node of the cache-tree extension: a folder, its entry count (-1: invalid), its
    tree id when valid, and its subfolders in the order they are stored."""

    name: bytes
    count: int
    oid: bytes
    children: list[TreeCache] = field(default_factory=list)

    def invalidate(self, path: bytes) -> None:
        """Invalidate the trees along path, as libgit2's git_tree_cache_invalidate_path."""
        node = self
        node.count = -1
        for part in path.split(b"/")[:-1]:
            found = next((child for child in node.children if child.name == part), None)
            if found is None:
                return
            node = found
            node.count = -1

    def to_bytes(self) -> bytes:
        parts: list[bytes] = []
        self._write(parts)
        return b"".join(parts)

    def _write(self, parts: list[bytes]) -> None:
        parts.append(b"%s\0%d %d\n" % (self.name, self.count, len(self.children)))
        if self.count != -1:
            parts.append(self.oid)
        for child in self.children:
            child._write(parts)


class Unhandled(Exception):
    """An index this module leaves to libgit2."""


def blob_id(data: bytes) -> bytes | None:
    """The blob id git gives a file with these bytes whatever its attributes and settings;
    None when its filters could change them.

    libgit2's filters on the way in are `crlf`, which changes nothing but CRLF pairs (and
    refuses a file only with `core.safecrlf=true`, which callers leave to libgit2), and
    `ident`, which changes nothing but `$Id...$`.
    """
    if b"\r\n" in data or b"$Id" in data:
        return None
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).digest()


def update(git_dir: Path, workdir: Path, changes: dict[str, bytes | None]) -> bool:
    """Set the entries of these paths in `.git/index`: True when done, False to leave it to
    libgit2 (nothing written).

    changes maps each path (relative to workdir, with `/`) to the bytes of the file now at that
    path in the work tree, or to None for a path to drop. It must be called with libgit2's
    defaults for `core.ignorecase` (false), `core.filemode` (true) and `core.safecrlf` (warn).
    """
    index_path = git_dir / "index"
    lock_path = git_dir / "index.lock"
    memo = git_dir / "memstore" / LAYOUT
    try:
        handle = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError:  # held by git, or a store that cannot be written: libgit2 says which
        return False
    written = False
    try:
        pieces, layout = _new_index(index_path, workdir, changes, memo)
        with os.fdopen(handle, "wb", closefd=True) as out:
            handle = -1
            for piece in pieces:
                out.write(piece)
        os.replace(lock_path, index_path)
        written = True
    except (Unhandled, OSError, ValueError, struct.error):
        return False  # libgit2 does it, or reports what stops it
    finally:
        if handle != -1:
            os.close(handle)
        if not written:
            lock_path.unlink(missing_ok=True)
    layout.save(memo, index_path)
    return True


def _new_index(
    index_path: Path, workdir: Path, changes: dict[str, bytes | None], memo: Path
) -> tuple[list[bytes | memoryview], _Layout]:
    """The pieces of the new index file, in order, and where its entries will be."""
    with open(index_path, "rb") as source:
        stamp = os.fstat(source.fileno())
        data = source.read()
    view = memoryview(data)
    parsed = _remembered(memo, data, stamp) or _parse(data, view, stamp)
    offsets = parsed.offsets

    def name_at(offset: int) -> bytes:
        (flags,) = _FLAGS.unpack_from(data, offset + ENTRY_FIXED - 2)
        return data[offset + ENTRY_FIXED : offset + ENTRY_FIXED + (flags & NAME_MASK)]

    paths = {os.fsencode(path): content for path, content in changes.items()}  # as pygit2 does
    # Each change: (offset of the entry it replaces or goes before, the new entry or b"" to
    # drop one, whether an entry is there).
    splices: list[tuple[int, bytes, bool]] = []
    replaced: set[int] = set()
    for path in sorted(paths):
        _check_path(path)
        content = paths[path]
        at = bisect_left(offsets, path, key=name_at)
        position = offsets[at] if at < len(offsets) else parsed.end
        exists = at < len(offsets) and name_at(position) == path
        if content is None and not exists:
            continue  # as libgit2: a path not in the index is left alone
        if content is not None:
            _check_collisions(offsets, name_at, path)
            if exists and _mode_at(data, position) not in (REGULAR, EXECUTABLE):
                raise Unhandled("a link or submodule would become a file")
        if parsed.tree is not None:
            parsed.tree.invalidate(path)
        entry = b"" if content is None else _entry(workdir, path, content)
        splices.append((position, entry, exists))
        if exists:
            replaced.add(position)
    odd = [offset for offset in parsed.odd if offset not in replaced]
    for offset in odd:
        _check_racily_clean(data, offset, name_at(offset), workdir)
    count = parsed.count
    for _, entry, exists in splices:
        count += (1 if entry else 0) - (1 if exists else 0)
    pieces: list[bytes | memoryview] = [_HEADER.pack(SIGNATURE, VERSION, count)]
    start = _HEADER.size
    for position, entry, exists in splices:
        pieces.append(view[start:position])
        if entry:
            pieces.append(entry)
        start = position + (_entry_size(data, position) if exists else 0)
    pieces.append(view[start : parsed.end])
    if parsed.tree is not None:
        tree = parsed.tree.to_bytes()
        pieces.append(_EXTENSION.pack(TREE, len(tree)) + tree)
    digest = hashlib.sha1(usedforsecurity=False)
    for piece in pieces:
        digest.update(piece)
    trailer = digest.digest()
    pieces.append(trailer)
    layout = _Layout.after(parsed, splices, odd, data, stamp)
    layout.size = sum(len(piece) for piece in pieces)
    layout.trailer = trailer
    return pieces, layout


@dataclass
class _Parsed:
    count: int
    offsets: Sequence[int]
    end: int  # where the entries end and the extensions begin
    tree: TreeCache | None
    # Entries to look at again: racily clean (as new as the index) or with flags besides the
    # path's length.
    odd: list[int]


# An entry's modification time (seconds and nanoseconds as one number) and flags.
_TIME_AND_FLAGS = struct.Struct(">8xQ44xH")


def _parse(data: bytes, view: memoryview, stamp: os.stat_result) -> _Parsed:
    """Where the entries are, and the cache tree; Unhandled for an index left to libgit2."""
    if len(data) < _HEADER.size + CHECKSUM:
        raise Unhandled("too short")
    signature, version, count = _HEADER.unpack_from(data)
    if signature != SIGNATURE or version != VERSION:
        raise Unhandled(f"index version {version}")
    trailer = data[-CHECKSUM:]
    skipped = trailer == bytes(CHECKSUM)  # an index written with index.skipHash has zeros
    if not skipped and trailer != hashlib.sha1(view[:-CHECKSUM], usedforsecurity=False).digest():
        raise Unhandled("checksum")
    limit = len(data) - CHECKSUM
    # The index's own time, as libgit2 compares it with its entries' (seconds cut to 32 bits).
    since = ((int(stamp.st_mtime) & 0xFFFFFFFF) << 32) | stamp.st_mtime_ns % 1_000_000_000
    offsets = [0] * count
    odd: list[int] = []
    unpack = _TIME_AND_FLAGS.unpack_from
    offset = _HEADER.size
    # One pass with nothing decoded: this loop is most of the time spent here.
    for number in range(count):
        modified, flags = unpack(data, offset)  # past the end: struct.error
        if modified >= since or flags >= NAME_MASK:
            odd.append(offset)
        offsets[number] = offset
        offset += (70 + flags) & -8  # ENTRY_FIXED, the path's NUL, padding to 8 bytes
    if offset > limit:
        raise Unhandled("truncated")
    for at in odd:
        (flags,) = _FLAGS.unpack_from(data, at + ENTRY_FIXED - 2)
        if flags >= NAME_MASK:
            raise Unhandled("flags")  # a stage, assume-valid, extended flags, a long path
    return _Parsed(count, offsets, offset, _extensions(data, offset, limit), odd)


def _extensions(data: bytes, offset: int, limit: int) -> TreeCache | None:
    """The cache tree, the one extension handled here; Unhandled for any other."""
    tree = None
    while offset < limit:
        if offset + _EXTENSION.size > limit:
            raise Unhandled("truncated extension")
        name, size = _EXTENSION.unpack_from(data, offset)
        body = offset + _EXTENSION.size
        if name != TREE or tree is not None or body + size > limit:
            raise Unhandled(f"extension {name!r}")
        tree, stop = _read_tree(data, body, body + size)
        if stop != body + size:
            raise Unhandled("cache tree")
        offset = body + size
    return tree


# The layout of the index file as it was last written here: the offsets of its entries and its
# racily clean ones, for the next write to skip the walk and the checksum (see `_remembered`).
LAYOUT = "gitindex.layout"
_LAYOUT_MAGIC = b"memstore gitindex layout 1\n"
_LAYOUT_HEAD = struct.Struct(">QQQ20sIII")  # size, mtime (ns), inode, checksum, entries, end, odd


def _remembered(memo: Path, data: bytes, stamp: os.stat_result) -> _Parsed | None:
    """The index's layout as the last write here left it, when the file is still that one.

    The file is the one written here when its size, time, inode and checksum are the ones
    noted just after writing it: its entries need no walk, and its checksum no new check (git
    itself does not check it when it reads the index).
    """
    from array import array

    try:
        raw = memo.read_bytes()
    except OSError:
        return None
    head = len(_LAYOUT_MAGIC) + 1 + _LAYOUT_HEAD.size
    if not raw.startswith(_LAYOUT_MAGIC) or len(raw) < head:
        return None
    order = "little" if raw[len(_LAYOUT_MAGIC)] == ord("l") else "big"
    size, mtime, inode, trailer, count, end, nodd = _LAYOUT_HEAD.unpack_from(
        raw, len(_LAYOUT_MAGIC) + 1
    )
    if (
        (size, mtime, inode) != (len(data), stamp.st_mtime_ns, stamp.st_ino)
        or trailer != data[-CHECKSUM:]
        or _HEADER.unpack_from(data) != (SIGNATURE, VERSION, count)
        or len(raw) != head + 4 * (count + nodd)
        or order != sys.byteorder
        or not _HEADER.size <= end <= len(data) - CHECKSUM
    ):
        return None
    numbers = array("I")
    numbers.frombytes(raw[head:])
    if numbers.itemsize != 4:
        return None
    tree = _extensions(data, end, len(data) - CHECKSUM)
    return _Parsed(count, numbers[:count], end, tree, numbers[count:].tolist())


@dataclass
class _Layout:
    """Where the entries of an index about to be written will be."""

    offsets: Sequence[int]
    end: int
    # Entries that may be racily clean once the file is written: (offset, modification time).
    candidates: list[tuple[int, int]]
    since: int  # the time of the index it replaces, as _parse compares them
    size: int = 0
    trailer: bytes = b""

    @classmethod
    def after(
        cls,
        parsed: _Parsed,
        splices: list[tuple[int, bytes, bool]],
        odd: list[int],
        data: bytes,
        stamp: os.stat_result,
    ) -> _Layout:
        from array import array

        old = parsed.offsets
        new = array("I")
        candidates: list[tuple[int, int]] = []
        first = 0  # the next entry of the old file not placed yet
        delta = 0
        for position, entry, exists in splices:
            at = bisect_left(old, position)
            new.extend(_shifted(old[first:at], delta))
            if entry:
                new.append(position + delta)
                candidates.append((position + delta, _TIME.unpack_from(entry, 8)[0]))
                delta += len(entry)
            if exists:
                delta -= _entry_size(data, position)
                at += 1
            first = at
        new.extend(_shifted(old[first:], delta))
        for offset in odd:  # not replaced: the ones after a change moved with it
            moved = offset
            for position, entry, exists in splices:
                if position <= offset:
                    moved += len(entry) - (_entry_size(data, position) if exists else 0)
            candidates.append((moved, _TIME.unpack_from(data, offset + 8)[0]))
        since = ((int(stamp.st_mtime) & 0xFFFFFFFF) << 32) | stamp.st_mtime_ns % 1_000_000_000
        return cls(new, parsed.end + delta, candidates, since)

    def save(self, memo: Path, index_path: Path) -> None:
        """Note this layout for the index file just written (any failure: no note)."""
        try:
            stamp = os.stat(index_path)
            since = ((int(stamp.st_mtime) & 0xFFFFFFFF) << 32) | stamp.st_mtime_ns % 1_000_000_000
            if since < self.since or stamp.st_size != self.size or not memo.parent.is_dir():
                raise OSError("not noted")  # a clock set back, or another writer already
            odd = [offset for offset, modified in self.candidates if modified >= since]
            from array import array

            numbers = array("I", self.offsets)
            numbers.extend(sorted(odd))
            head = _LAYOUT_HEAD.pack(
                self.size,
                stamp.st_mtime_ns,
                stamp.st_ino,
                self.trailer,
                len(self.offsets),
                self.end,
                len(odd),
            )
            order = b"l" if sys.byteorder == "little" else b"b"
            # A cache: not forced to disk (a crash leaves the old note or none, never a part).
            write_atomic(memo, _LAYOUT_MAGIC + order + head + numbers.tobytes(), durable=False)
        except (OSError, OverflowError, struct.error):
            memo.unlink(missing_ok=True)


def _shifted(offsets: Sequence[int], delta: int) -> Sequence[int]:
    from array import array

    return offsets if not delta else array("I", [offset + delta for offset in offsets])


_TIME = struct.Struct(">Q")


def _read_tree(data: bytes, at: int, stop: int) -> tuple[TreeCache, int]:
    """One node of the cache tree at `at`, with its children; and where it ends."""
    nul = data.index(b"\0", at, stop)
    newline = data.index(b"\n", nul, stop)
    numbers = data[nul + 1 : newline].split(b" ")
    if len(numbers) != 2 or not all(_is_decimal(n) for n in numbers):
        raise Unhandled("cache tree")
    count, children = int(numbers[0]), int(numbers[1])
    if count < -1 or children < 0:
        raise Unhandled("cache tree")
    node = TreeCache(data[at:nul], count, b"")
    at = newline + 1
    if count >= 0:
        if at + CHECKSUM > stop:
            raise Unhandled("cache tree")
        node.oid = data[at : at + CHECKSUM]
        at += CHECKSUM
    for _ in range(children):
        child, at = _read_tree(data, at, stop)
        node.children.append(child)
    return node, at


def _is_decimal(text: bytes) -> bool:
    """A number as libgit2 writes it: digits, a '-' at most, no leading zero."""
    digits = text[1:] if text.startswith(b"-") else text
    return digits.isdigit() and (digits == b"0" or not digits.startswith(b"0"))


def _entry_size(data: bytes, offset: int) -> int:
    (flags,) = _FLAGS.unpack_from(data, offset + ENTRY_FIXED - 2)
    return (ENTRY_FIXED + 8 + (flags & NAME_MASK)) & ~7


def _mode_at(data: bytes, offset: int) -> int:
    return int(_STAT.unpack_from(data, offset)[6])


def _file_mode(info: os.stat_result) -> int | None:
    """A work-tree file's mode in the index (libgit2 trusting the file mode); None if it is
    not a regular file."""
    if not stat.S_ISREG(info.st_mode):
        return None
    return EXECUTABLE if info.st_mode & 0o100 else REGULAR


def _entry(workdir: Path, path: bytes, data: bytes) -> bytes:
    """The index entry libgit2's `Index.add(path)` makes for the file at path, which holds
    data."""
    blob = blob_id(data)
    if blob is None or len(path) >= NAME_MASK:
        raise Unhandled("entry")
    full = workdir / os.fsdecode(path)
    info = os.lstat(full)
    mode = _file_mode(info)
    if mode is None or info.st_size != len(data) or full.read_bytes() != data:
        raise Unhandled("not the file given")
    mask = 0xFFFFFFFF
    fields = _STAT.pack(
        int(info.st_ctime) & mask,
        info.st_ctime_ns % 1_000_000_000,
        int(info.st_mtime) & mask,
        info.st_mtime_ns % 1_000_000_000,
        info.st_rdev & mask,  # as libgit2 (git itself takes st_dev)
        info.st_ino & mask,
        mode,
        info.st_uid & mask,
        info.st_gid & mask,
        info.st_size & mask,
    )
    entry = fields + blob + _FLAGS.pack(len(path)) + path
    return entry + bytes(((ENTRY_FIXED + 8 + len(path)) & ~7) - len(entry))


def _check_path(path: bytes) -> None:
    """Paths libgit2 would refuse, or take apart differently, are left to it."""
    for part in path.split(b"/"):
        if not part or part in (b".", b"..") or part.lower() == b".git" or b"\0" in part:
            raise Unhandled("path")


def _check_collisions(offsets: Sequence[int], name_at: Callable[[int], bytes], path: bytes) -> None:
    """A file where a folder of path is, or files below path as a folder: left to libgit2."""
    parts = path.split(b"/")
    for depth in range(1, len(parts)):
        folder = b"/".join(parts[:depth])
        at = bisect_left(offsets, folder, key=name_at)
        if at < len(offsets) and name_at(offsets[at]) == folder:
            raise Unhandled("a file where a folder goes")
    below = path + b"/"
    at = bisect_left(offsets, below, key=name_at)
    if at < len(offsets) and name_at(offsets[at]).startswith(below):
        raise Unhandled("a folder where a file goes")


def _check_racily_clean(data: bytes, offset: int, name: bytes, workdir: Path) -> None:
    """Leave to libgit2 an entry it would smudge: one as new as the index whose file changed.

    libgit2 (truncate_racily_clean) compares such an entry with its file as a diff does: a
    file gone, of another mode, or of another size (unless the entry's is 0) has changed;
    otherwise the file's blob id tells (see `blob_id`).
    """
    fields = _STAT.unpack_from(data, offset)
    mode, size = fields[6], fields[9]
    if mode & 0o170000 == 0o160000:
        return  # a submodule: libgit2 never takes it as racy
    full = workdir / os.fsdecode(name)
    try:
        info = os.lstat(full)
        if _file_mode(info) != mode:
            raise Unhandled("racily clean, another mode")
        if size and size != info.st_size & 0xFFFFFFFF:
            raise Unhandled("racily clean, another size")
        now = blob_id(full.read_bytes())
    except OSError:
        raise Unhandled("racily clean, gone") from None
    if now is None or now != data[offset + 40 : offset + 40 + CHECKSUM]:
        raise Unhandled("racily clean, changed")
