"""Examples held packed: each row's fields pickled into one Arrow binary column (PackedRows).

A split read from a file into memory is held so, by the process that reads it and in Ray's object store.
As Example objects, 100,000 rows take ~94 MB of a process; packed, the size of their pickled fields. Ray
puts a packed split as a few buffers (a pickled list kept every object in the pickler's memo: 86 MB more
peak memory at 100,000 rows), and a worker maps those buffers and unpacks only its shards' rows.
"""
from __future__ import annotations

import bisect
import pickle
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from raygrad.data.examples import Example

EXAMPLE_FIELDS = tuple(Example.model_fields)
CHUNK_ROWS = 10_000  # rows packed at a time: the unpacked objects a reader holds at once


class PackedRows(Sequence[Example]):
    """A read-only sequence of examples, unpacked as they are read (a slice with step 1 is a packed view)."""

    def __init__(self, column: pa.ChunkedArray):
        self.column = column

    @classmethod
    def pack(cls, examples: Iterable[Example], chunk_rows: int = CHUNK_ROWS) -> PackedRows:
        """Packs examples as they come (a file's reader, say), holding at most `chunk_rows` unpacked."""
        chunks, pending = [], []
        for example in examples:
            pending.append(pickle.dumps(tuple(getattr(example, name) for name in EXAMPLE_FIELDS), protocol=5))
            if len(pending) == chunk_rows:
                chunks.append(pa.array(pending, pa.large_binary()))
                pending = []
        if pending or not chunks:
            chunks.append(pa.array(pending, pa.large_binary()))
        return cls(pa.chunked_array(chunks, pa.large_binary()))

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[p] for p in range(start, stop, step)]
            return PackedRows(self.column.slice(start, max(0, stop - start)))
        if index < 0:
            index += len(self)
        return _unpack(self.column[index].as_py())

    def rows(self, start: int, stop: int) -> list[Example]:
        """Examples at positions [start, stop): one slice of the column, unpacked."""
        return [_unpack(blob) for blob in self.column.slice(start, max(0, stop - start)).to_pylist()]

    def take(self, positions: list[int]) -> list[Example]:
        return [self[p] for p in positions]

    def compacted(self) -> PackedRows:
        """A copy of only these rows' bytes: a slice shares (and would keep, and send) its whole column's."""
        return PackedRows(pa.chunked_array([self.column.combine_chunks()], pa.large_binary()))

    def between_ids(self, first: int, stop: int) -> PackedRows:
        """The rows whose ids (row numbers of a file, increasing) are in [first, stop)."""
        number = lambda example: int(example.id)  # noqa: E731
        return self[bisect.bisect_left(self, first, key=number):bisect.bisect_left(self, stop, key=number)]


def _unpack(blob: bytes) -> Example:
    return Example.model_construct(**dict(zip(EXAMPLE_FIELDS, pickle.loads(blob))))
