"""A Whoosh segment written in one go: what a full rebuild of the index writes.

Whoosh's own writer spends most of a rebuild in pure Python for every token: each one becomes a
Token object, then a posting tuple in a pool that is sorted, then a call per posting into the
postings writer. `SegmentBuilder` writes the same segment with a fraction of that work: the
title and body are analyzed once into each term's positions (`analysis.index_positions`), the
postings are kept per term in the order the documents come (so nothing is sorted but the terms),
and the postings file (`.pst`) and term table (`.trm`) are written block by block as Whoosh's
codec (`whoosh.codec.whoosh3`) writes them. Stored fields, field lengths and sortable columns
go through Whoosh's own per-document writer, which costs little.

The files are byte for byte those Whoosh writes for the same documents in the same order
(`tests/test_bulkwrite.py` checks it), so every reader, merge and audit of the index works on
them unchanged. Only the schema of `index.build_schema` is supported: TEXT fields with
positions and the analyzer of `analysis`, ID, KEYWORD, DATETIME and STORED fields.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from array import array
from collections.abc import Callable
from hashlib import md5
from itertools import accumulate, chain
from operator import sub
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memstore.analysis import index_positions

if TYPE_CHECKING:
    from whoosh.codec.whoosh3 import W3Segment
    from whoosh.fields import Schema
    from whoosh.filedb.filestore import FileStorage

# As whoosh.codec.whoosh3 writes them.
_BLOCK_LIMIT = 128  # postings per block
_COMPRESSION = 3  # zlib level of a block's data
_COMPRESSION_MIN_SIZE = 80  # smaller pickled blocks are written as they are
_MAGIC = b"W3Bl"  # before a term's first block
_TERMINFO = struct.Struct("!BfIBBfII")
_INT = struct.Struct("!i")
_UINT = struct.Struct("!I")
_LONG = struct.Struct("!q")
_USHORT = struct.Struct("!H")
# The term table: whoosh.filedb.filetables.OrderedHashWriter.
_HASH_HEADER = b"HSH3" + b"\x00" + b"\x00\x00\x00\x00" * 2
_LENGTHS = struct.Struct("!ii")
_DIR_ENTRY = struct.Struct("!qi")
# Field kinds: text with positions, a whole value as one term (ID), a date, other, not indexed.
_TEXT, _ID, _DATE, _OTHER, _UNINDEXED = 0, 1, 2, 3, 4


class _Field:
    """What the builder needs to know of one schema field."""

    __slots__ = (
        "name",
        "obj",
        "kind",
        "scorable",
        "stored",
        "column",
        "boost",
        "fixed",
        "lengths",
        "postings",
        "memo",
        "words",
        "weights",
    )

    def __init__(self, name: str, obj: Any) -> None:
        from whoosh import fields, formats
        from whoosh.analysis import IDTokenizer

        self.name = name
        self.obj = obj
        fmt = obj.format
        if not obj.indexed:
            self.kind = _UNINDEXED
        elif type(fmt) is formats.Positions:
            self.kind = _TEXT
        elif type(obj) is fields.ID and type(obj.analyzer) is IDTokenizer:
            self.kind = _ID  # the value as it is, with Existence
        elif type(obj) is fields.DATETIME:
            self.kind = _DATE
        elif type(fmt) in (formats.Existence, formats.Frequency):
            self.kind = _OTHER
        else:
            raise TypeError(f"field {name!r}: the bulk writer does not write {fmt!r}")
        # Words split by a pattern, stripped or lowercased (KEYWORD), without a token per word.
        self.words = _words(obj.analyzer) if type(fmt) is formats.Frequency else None
        if obj.vector or obj.separate_spelling():
            raise TypeError(f"field {name!r}: the bulk writer writes no vectors or spelling")
        self.scorable = bool(obj.scorable)
        self.stored = bool(obj.stored)
        self.column = obj.column_type
        self.boost = fmt.field_boost if fmt is not None else 1.0
        # The weights of the first counts of positions, one float object each (memory).
        self.weights = [count * self.boost for count in range(64)]
        # Each posting's value, as the codec keeps it in a block: bytes of a fixed size joined
        # (Frequency), none (Existence), or a tuple of bytes (Positions).
        self.fixed = fmt.fixed_value_size() if fmt is not None else None
        # Each document's length byte (0: none), by document number. The codec keeps the
        # lengths a block's postings read back from these bytes, and writes them as bytes again:
        # the same bytes, as the mapping of bytes to lengths is strictly increasing.
        self.lengths: list[int] = []
        # term -> [docnum, weight, value, docnum, weight, value, ...]
        self.postings: dict[Any, list[Any]] = {}
        # A value's terms, for fields whose values repeat (type, source, tags).
        self.memo: dict[Any, list[tuple[bytes, int, float, bytes]]] = {}


class SegmentBuilder:
    """Documents added in order, written as one new segment of an index's storage."""

    def __init__(
        self, folder: str | Path, schema: Schema, indexname: str = "MAIN", segid: str | None = None
    ) -> None:
        from whoosh.codec import default_codec

        self.schema = schema
        self.codec = default_codec()
        segment = self.codec.new_segment(None, indexname)
        if segid is not None:
            segment.segid = segid
        self.segment: W3Segment = segment
        # Temporary files in a folder of this segment's own, not Whoosh's one per index: two
        # processes may write segments of one index at once.
        self.storage = _storage(folder, f"{segment.segid}.tmp")
        self._fields = {name: _Field(name, schema[name]) for name in schema.names()}
        self._perdoc = self.codec.per_document_writer(self.storage, segment)
        self._docnum = 0
        self.closed = False

    def add(self, doc: dict[str, Any]) -> None:
        """Add a document, as `writer.add_document(**doc)` would."""
        from whoosh.util.numeric import length_to_byte

        perdoc = self._perdoc
        docnum = self._docnum
        names = sorted(name for name in doc if not name.startswith("_"))
        fields = self._fields
        for name in names:
            if name not in fields:
                raise ValueError(f"no field named {name!r} in the schema")
        for name in doc:
            if name.startswith("_") and name.endswith("_boost"):
                raise ValueError(f"{name}: the bulk writer does not weight documents")
        perdoc.start_doc(docnum)
        for name in names:
            value = doc[name]
            if value is None:
                continue
            field = fields[name]
            length = 0
            kind = field.kind
            if kind == _TEXT:
                if not isinstance(value, str):
                    raise ValueError(f"{value!r} is not unicode or sequence")
                length = self._add_text(field, value, docnum)
            elif kind == _ID and isinstance(value, str):
                # What ID.index yields: the whole value, weight the field's boost, no value.
                term = value.encode("utf-8")
                found = field.postings.get(term)
                if found is None:
                    field.postings[term] = [docnum, field.boost, b""]
                else:
                    found += (docnum, field.boost, b"")
            elif kind == _DATE:
                self._add_terms(field, self._date_terms(field, value), docnum)
            elif kind != _UNINDEXED:
                length = self._add_other(field, value, docnum)
            custom = doc.get(f"_stored_{name}", value)
            perdoc.add_field(name, field.obj, custom if field.stored else None, length)
            if field.scorable:
                lengths = field.lengths
                if len(lengths) < docnum:
                    lengths.extend([0] * (docnum - len(lengths)))
                lengths.append(length_to_byte(length))
            if field.column is not None and custom is not None:
                perdoc.add_column_value(name, field.column, field.obj.to_column_value(custom))
        perdoc.finish_doc()
        self._docnum += 1

    def _add_text(self, field: _Field, value: str, docnum: int) -> int:
        boost = field.boost
        postings = field.postings
        get = postings.get
        length = 0
        weights = field.weights
        for term, positions in index_positions(value).items():
            count = len(positions)
            length += count
            # One position is kept as its number (small numbers are shared objects: memory),
            # and encoded as it is written.
            encoded: int | bytes = positions[0] if count == 1 else _positions(positions)
            weight = weights[count] if count < len(weights) else count * boost
            found = get(term)
            if found is None:
                postings[term] = [docnum, weight, encoded]
            else:
                found += (docnum, weight, encoded)
        return length

    def _date_terms(self, field: _Field, value: Any) -> list[tuple[bytes, int, float, bytes]]:
        """What NUMERIC.index yields for a date: its value at each precision (shift)."""
        obj = field.obj
        whole = obj.to_bytes(value)
        if not obj.shift_step:
            return [(whole, 1, 1.0, b"")]
        number = obj._struct.unpack(whole[1:])[0]
        return [(whole, 1, 1.0, b"")] + [
            (obj.sortable_to_bytes(number, shift), 1, 1.0, b"")
            for shift in range(obj.shift_step, obj.bits, obj.shift_step)
        ]

    def _add_other(self, field: _Field, value: Any, docnum: int) -> int:
        if not isinstance(value, str):
            items = list(field.obj.index(value, mode="index"))
        else:
            found = field.memo.get(value)
            if found is None:
                if len(field.memo) > 10_000:
                    field.memo.clear()
                if field.words is not None:
                    found = _frequencies(field.words(value), field.boost)
                else:
                    found = list(field.obj.index(value, mode="index"))
                field.memo[value] = found
            items = found
        return self._add_terms(field, items, docnum)

    def _add_terms(
        self, field: _Field, items: list[tuple[bytes, int, float, bytes]], docnum: int
    ) -> int:
        postings = field.postings
        length = 0
        for term, freq, weight, encoded in items:
            length += freq
            found = postings.get(term)
            if found is None:
                postings[term] = [docnum, weight, encoded]
            else:
                found += (docnum, weight, encoded)
        return length if field.scorable else 0

    def finish(self, advance: Callable[[int], None] | None = None) -> W3Segment:
        """Write the segment's files; return the segment, to be listed in the index's TOC.

        Writing the postings takes about as long as adding the documents did: advance, if
        given, is told of it in steps that add up to the number of documents.
        """
        self.closed = True
        try:
            self._perdoc.close()
            segment = self.segment
            segment.set_doc_count(self._docnum)
            self._write_postings(advance or (lambda step: None))
        finally:
            self.storage.temp_storage().destroy()
        return segment

    def cancel(self) -> None:
        """Give up the segment: close its files (the caller removes the folder)."""
        if not self.closed:
            self.closed = True
            try:
                self._perdoc.close()
            finally:
                self.storage.temp_storage().destroy()

    def _write_postings(self, advance: Callable[[int], None]) -> None:
        # Progress in documents, by the share of the terms written.
        terms_total = sum(len(field.postings) for field in self._fields.values()) or 1
        terms_done = 0
        told = 0
        fieldmap: dict[str, int] = {}
        post = bytearray()  # the postings file
        keys: list[bytes] = []  # the term table's keys and values, in order
        infos: list[bytes] = []
        for name in sorted(self._fields):
            field = self._fields[name]
            if not field.postings:
                continue
            fieldmap[name] = len(fieldmap)
            terms = sorted(field.postings)
            for start in range(0, len(terms), 2048):
                part = terms[start : start + 2048]
                self._write_terms(field, part, _USHORT.pack(fieldmap[name]), post, keys, infos)
                terms_done += len(part)
                now = self._docnum * terms_done // terms_total
                advance(now - told)
                told = now
            field.postings = {}
        advance(self._docnum - told)
        segment = self.segment
        with self.storage.create_file(segment.make_filename(".pst")) as out:
            out.write(post)
        del post
        table = _term_table(keys, infos, fieldmap)
        with self.storage.create_file(segment.make_filename(".trm")) as out:
            out.write(table)

    def _write_terms(
        self,
        field: _Field,
        terms: list[Any],
        prefix: bytes,
        post: bytearray,
        keys: list[bytes],
        infos: list[bytes],
    ) -> None:
        """Write the postings of some terms of a field, in order, as W3FieldWriter does, and
        note each term's key and info (W3TermInfo) for the term table."""
        dumps = pickle.dumps
        compress = zlib.compress
        pack_int = _INT.pack
        pack_info = _TERMINFO.pack
        pack_long = _LONG.pack
        limit = _BLOCK_LIMIT
        postings = field.postings
        scorable = field.scorable
        lengths = field.lengths  # length bytes
        fixed = field.fixed
        joined = fixed is not None and fixed > 0
        textual = field.kind == _TEXT
        f32 = _f32
        for term in terms:
            flat = postings[term]
            keys.append(prefix + (term.encode("utf-8") if textual else term))
            start = len(post)
            if len(flat) == 3:
                # One posting, so one block: the common case (nine terms in ten).
                doc, weight, value = flat
                single = f32.get(weight)
                if single is None:
                    single = f32[weight] = array("f", (weight,))[0]
                if value.__class__ is int:
                    value = _one_position(value)
                if fixed is None or fixed < 0:
                    values: Any = (value,)
                else:
                    values = value if joined else None
                data = dumps(((doc,), None if single == 1.0 else single, values), 2)
                level = _COMPRESSION if len(data) >= _COMPRESSION_MIN_SIZE else 0
                if level:
                    data = compress(data, level)
                top = weight if weight > 0 else 0
                length = lengths[doc] if scorable else 0
                info = dumps((1, doc, top, level, length, length), 2)
                post += _MAGIC + pack_int(-len(info) - len(data)) + info + data
                infos.append(
                    pack_info(0, single, 1, length, length, top, doc, doc)
                    + pack_long(start)
                    + pack_int(len(post) - start)
                )
                continue
            docs = flat[0::3]
            weights = flat[1::3]
            values = flat[2::3]
            count = len(docs)
            post += _MAGIC
            total = 0.0
            maxweight: float = 0
            minlength = 0  # as length bytes; 0: none
            maxlength = 0
            for first in range(0, count, limit):
                if count <= limit:
                    ids, block_values, raw_weights = docs, values, weights
                else:
                    ids = docs[first : first + limit]
                    block_values = values[first : first + limit]
                    raw_weights = weights[first : first + limit]
                size = len(ids)
                block_weights = array("f", raw_weights)
                # The block's largest weight as given, not as the array keeps it.
                block_max = max(raw_weights)
                if not block_max > 0:
                    block_max = 0
                if scorable:
                    doc_lengths = list(map(lengths.__getitem__, ids))
                    block_min_length = min(doc_lengths)
                    block_max_length = max(doc_lengths)
                else:
                    block_min_length = block_max_length = 0
                # As W3PostingsWriter._write_block minifies them.
                deltas = tuple(map(sub, ids, [0, *ids[:-1]]))
                if block_weights.count(1.0) == size:
                    mini_weights: Any = None
                elif block_weights.count(block_weights[0]) == size:
                    mini_weights = block_weights[0]
                else:
                    mini_weights = tuple(block_weights)
                if textual:
                    mini_values: Any = tuple(
                        _one_position(value) if value.__class__ is int else value
                        for value in block_values
                    )
                elif fixed is None or fixed < 0:
                    mini_values = tuple(block_values)
                elif fixed == 0:
                    mini_values = None
                else:
                    mini_values = b"".join(block_values)
                data = dumps((deltas, mini_weights, mini_values), 2)
                level = _COMPRESSION if len(data) >= _COMPRESSION_MIN_SIZE else 0
                if level:
                    data = compress(data, level)
                info = dumps(
                    (size, ids[-1], block_max, level, block_min_length, block_max_length), 2
                )
                block_size = len(info) + len(data)
                last = first + limit >= count
                post += pack_int(-block_size if last else block_size)
                post += info
                post += data
                # As W3TermInfo.add_block gathers them.
                total += sum(block_weights)
                if block_min_length and (not minlength or block_min_length < minlength):
                    minlength = block_min_length
                if block_max_length > maxlength:
                    maxlength = block_max_length
                if block_max > maxweight:
                    maxweight = block_max
            infos.append(
                pack_info(0, total, count, minlength, maxlength, maxweight, docs[0], docs[-1])
                + pack_long(start)
                + pack_int(len(post) - start)
            )


def _words(analyzer: Any) -> Callable[[str], list[str]] | None:
    """What an analyzer of a regular expression and strip or lowercase filters yields, as a
    function of the text; None for any other analyzer."""
    from whoosh.analysis import LowercaseFilter, RegexTokenizer, StripFilter
    from whoosh.analysis.analyzers import CompositeAnalyzer

    if type(analyzer) is not CompositeAnalyzer or not analyzer.items:
        return None
    tokenizer, *filters = analyzer.items
    if type(tokenizer) is not RegexTokenizer or tokenizer.gaps or tokenizer.expression.groups:
        return None
    steps: list[Callable[[str], str]] = []
    for step in filters:
        if type(step) is StripFilter:
            steps.append(lambda word: word.strip())
        elif type(step) is LowercaseFilter:
            steps.append(str.lower)
        else:
            return None
    findall = tokenizer.expression.findall

    def words(text: str) -> list[str]:
        found = findall(text)
        for step in steps:
            found = list(map(step, found))
        return found

    return words


def _frequencies(words: list[str], boost: float) -> list[tuple[bytes, int, float, bytes]]:
    """What formats.Frequency.word_values yields for the words, encoded as field.index does."""
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return [
        (word.encode("utf-8"), count, float(count) * boost, _UINT.pack(count))
        for word, count in counts.items()
    ]


# A weight as the codec keeps it in a block: a float32.
_f32: dict[float, float] = {}


def _positions(positions: list[int]) -> bytes:
    """A posting's positions as formats.Positions.encode writes them."""
    deltas = []
    base = 0
    for pos in positions:
        deltas.append(pos - base)
        base = pos
    return _UINT.pack(len(deltas)) + pickle.dumps(deltas, 2)


# A posting of one position, as formats.Positions.encode writes it, less the pickle's final
# STOP byte: the posting is this plus b".", a new object each time, as the pickle of a block must
# not meet the same object twice (it would write a reference to the first instead).
_ONE = [_positions([pos])[:-1] for pos in range(1024)]


def _one_position(pos: int) -> bytes:
    """A new bytes object of a posting of one position (see _ONE)."""
    return _ONE[pos] + b"." if pos < len(_ONE) else _positions([pos])


# GrowableArray's types, by the bound of the numbers each holds.
_INDEX_TYPES = (("H", 2**16), ("i", 2**31), ("I", 2**32), ("q", 2**64))


def _term_table(keys: list[bytes], values: list[bytes], fieldmap: dict[str, int]) -> bytes:
    """The term table (`.trm`) as whoosh.filedb.filetables.OrderedHashWriter writes it."""
    pack_lengths = _LENGTHS.pack
    records = [
        pack_lengths(len(key), len(value)) + key + value
        for key, value in zip(keys, values, strict=True)
    ]
    positions = list(accumulate(map(len, records), initial=len(_HASH_HEADER)))
    pos = positions.pop()  # where the records end
    # filetables.md5_hash: the low 32 bits of the MD5 digest.
    digests = [int.from_bytes(md5(key, usedforsecurity=False).digest()[12:], "big") for key in keys]
    buckets: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    for digest, at in zip(digests, positions, strict=True):
        buckets[digest & 255].append((digest, at))
    out = [_HASH_HEADER, *records]
    directory = []
    null = (0, 0)
    for entries in buckets:
        slots = 2 * len(entries)
        directory.append((pos, slots))
        if not slots:
            continue
        table = [null] * slots
        for digest, at in entries:
            slot = (digest >> 8) % slots
            while table[slot] is not null:
                slot = (slot + 1) % slots
            table[slot] = (digest, at)
        packed = struct.pack("!" + "Iq" * slots, *chain.from_iterable(table))
        out.append(packed)
        pos += len(packed)
    out.extend(_DIR_ENTRY.pack(at, slots) for at, slots in directory)
    # The extras: the field numbers, then the positions of the keys in the smallest array type
    # that holds them (GrowableArray), big-endian.
    largest = positions[-1] if positions else 0
    typecode = next(code for code, bound in _INDEX_TYPES if largest < bound)
    index = array(typecode, positions)
    if struct.pack("=H", 1) != struct.pack("!H", 1):
        index.byteswap()
    extras = pickle.dumps(
        {"fieldmap": fieldmap, "indextype": typecode, "indexlen": len(positions)}, -1
    )
    out.append(extras)
    out.append(index.tobytes())
    out.append(_INT.pack(len(extras) + len(index) * index.itemsize))
    return b"".join(out)


def _storage(folder: str | Path, temporary: str) -> FileStorage:
    from whoosh.filedb.filestore import FileStorage

    class SegmentStorage(FileStorage):
        def temp_storage(self, name: str | None = None) -> FileStorage:
            return super().temp_storage(temporary)

    return SegmentStorage(str(folder))


def write_toc(
    folder: str | Path, schema: Schema, segments: list[W3Segment], indexname: str = "MAIN"
) -> None:
    """List the segments in the index's next table of contents, as a writer's commit does."""
    from whoosh.filedb.filestore import FileStorage
    from whoosh.index import TOC, clean_files

    storage = FileStorage(str(folder))
    lock = storage.lock(f"{indexname}_WRITELOCK")
    if not lock.acquire():
        raise RuntimeError("another writer holds the index")
    try:
        generation = TOC._latest_generation(storage, indexname) + 1
        TOC(schema, segments, generation).write(storage, indexname)
        clean_files(storage, indexname, generation, segments)
    finally:
        lock.release()
