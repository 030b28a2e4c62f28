"""Examples and the dataset files they come from: JSON (BIG-Bench Hard style), JSONL, CSV and Parquet."""
from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, Field, model_validator

from raygrad.data.remote import count_lines, is_uri, local_copy, open_remote, suffix, text_lines
from raygrad.errors import DatasetError

if TYPE_CHECKING:
    from raygrad.data.packed import PackedRows

InputFields = Union[str, list[str]]  # one field: passed to forward() positionally; a list: as keyword arguments


class Example(BaseModel):
    """One sample: its inputs by field name and its target (any JSON value: a label, a list, an object)."""

    id: str
    inputs: dict[str, Any]
    target: Any
    keywords: bool = Field(False, description="forward(**inputs) (several input fields) rather than forward(input)")
    skipped: str | None = Field(None, description="why a bad row of a sharded file is left out (data.skip_bad_rows)")

    @model_validator(mode="before")
    @classmethod
    def _one_input(cls, data: Any) -> Any:
        if isinstance(data, dict) and "input" in data and "inputs" not in data:  # Example(id=, input=, target=)
            data = {**data, "inputs": {"input": data["input"]}}
            data.pop("input")
        return data

    @property
    def input(self) -> Any:
        """The single input's value; with several input fields, all of them by name."""
        return next(iter(self.inputs.values())) if not self.keywords and len(self.inputs) == 1 else self.inputs

    def text(self) -> str:
        """The inputs as one text (for demos, logs and the simulated provider)."""
        if not self.keywords and len(self.inputs) == 1:
            return str(self.input)
        return "\n\n".join(f"{name}:\n{value}" for name, value in self.inputs.items())


_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _read_rows(path: Path, fmt: str, skipping: list[str] | None = None) -> Iterable[Any]:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=10_000)
            for batch in batches:  # a batch of rows as dicts at a time, not the whole file's
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise DatasetError(f"{path}: not a readable Parquet file ({err})") from None
        return
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if fmt == "csv":
                yield from csv.DictReader(handle)
            elif fmt == "jsonl":
                for number, line in enumerate(handle):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as err:
                            bad = DatasetError(f"{path}: row {number}: not valid JSON ({err.msg})")
                            if skipping is None:
                                raise bad from None
                            yield bad
            else:
                try:
                    data = json.load(handle)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
                rows = data.get("examples") if isinstance(data, dict) else data
                if not isinstance(rows, list):
                    raise DatasetError(f"{path}: expected a list of rows or {{\"examples\": [...]}}")
                yield from rows
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text ({utf8_error(path)})") from None


def utf8_error(path: Path) -> str:
    """Where a file stops being UTF-8, as a byte offset in the whole file (a text reader's offset is
    within its 8 KiB buffer)."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return f"byte {err.start}: {err.reason}"
    return "it decodes as a whole"


def _text(value: Any, path: str | Path, row: int, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DatasetError(f"{path}: row {row}: field {field!r} must be text or a number, "
                           f"not {type(value).__name__}")
    return str(value)


def _json_row(line: str, path: str | Path, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: row {number}: not valid JSON ({err.msg})") from None


def make_example(row: Any, number: int, path: str | Path, input_fields: InputFields, target_field: str) -> Example:
    """A row as an Example; DatasetError naming file, row and field for a missing or unusable field.

    One input field must be text or a number (it is an LLM's input); several may hold any JSON
    value, as may the target.
    """
    if not isinstance(row, dict):
        raise DatasetError(f"{path}: row {number}: expected an object with fields, got {type(row).__name__}")
    names = [input_fields] if isinstance(input_fields, str) else list(input_fields)
    for field in (*names, target_field):
        if field not in row or row[field] is None:
            raise DatasetError(f"{path}: row {number}: missing field {field!r}")
    if isinstance(input_fields, str):
        return Example(id=str(number), inputs={input_fields: _text(row[input_fields], path, number, input_fields)},
                       target=row[target_field])
    return Example(id=str(number), inputs={name: row[name] for name in names}, target=row[target_field],
                   keywords=True)


def load_examples(path: str | Path, input_field: InputFields = "input", target_field: str = "target",
                  fmt: str | None = None, skipped: list[str] | None = None) -> list[Example]:
    """Read every row of a dataset file (a path, or a filesystem URI: see raygrad.data.remote); the first bad
    row raises DatasetError naming file and row.

    With `skipped` (a list), a bad row is left out and its error appended there instead; a file
    that cannot be read at all (not UTF-8, not JSON) still raises.
    """
    return list(iter_examples(path, input_field, target_field, fmt, skipped))


def iter_examples(path: str | Path, input_field: InputFields = "input", target_field: str = "target",
                  fmt: str | None = None, skipped: list[str] | None = None) -> Iterator[Example]:
    """load_examples's rows one at a time, as the file is read."""
    if is_uri(path):
        yield from _remote_examples(str(path), input_field, target_field, fmt, skipped)
        return
    path = Path(path)
    fmt = fmt or _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(f"{path}: unknown dataset format; use .json, .jsonl, .csv or .parquet, or set data.format")
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    for row_number, row in enumerate(_read_rows(path, fmt, skipped)):
        try:
            yield _checked(row, row_number, path, input_field, target_field)
        except DatasetError as err:
            if skipped is None:
                raise
            skipped.append(str(err))


def _remote_examples(uri: str, input_field: InputFields, target_field: str, fmt: str | None,
                     skipped: list[str] | None) -> Iterator[Example]:
    """Read from a local copy; every message names the URI, not the copy."""
    with local_copy(uri) as local:
        mine: list[str] | None = [] if skipped is not None else None
        try:
            yield from iter_examples(local, input_field, target_field, fmt or _FORMATS.get(suffix(uri)), mine)
        except DatasetError as err:
            raise DatasetError(str(err).replace(str(local), uri)) from None
        if skipped is not None:
            skipped.extend(message.replace(str(local), uri) for message in mine or [])


def _checked(row: Any, row_number: int, path: Path, input_field: InputFields, target_field: str) -> Example:
    if isinstance(row, DatasetError):  # a JSONL line that did not parse, kept to be skipped
        raise row
    return make_example(row, row_number, path, input_field, target_field)


def parse_range(spec: str, size: int) -> slice:
    """'0:50', '150:', ':100' -> a slice of rows that exist; ValueError on anything else (a negative or
    reversed range, or one that ends past the data: '0:50' of 10 rows is a mistake, not 10 rows)."""
    parts = spec.split(":")
    if len(parts) != 2:
        raise ValueError(f"split {spec!r} is not a range like '0:50'")
    try:
        start = int(parts[0]) if parts[0].strip() else 0
        stop = int(parts[1]) if parts[1].strip() else size
    except ValueError:
        raise ValueError(f"split {spec!r} is not a range like '0:50'") from None
    if start < 0 or stop < 0:
        raise ValueError(f"split {spec!r}: rows are counted from 0; a range cannot be negative")
    if stop > size:
        raise ValueError(f"split {spec!r} ends at row {stop}, but the data has {size} rows")
    if start >= stop:
        raise ValueError(f"split {spec!r} selects no rows of the {size} there are")
    return slice(start, stop)


class RowSource(BaseModel):
    """Rows [start, stop) of a Parquet or JSONL file, read a shard at a time and never all at once.

    Workers read their own shards; the driver only knows the path and the row range.
    """

    path: str
    format: Literal["parquet", "jsonl"]
    input_field: InputFields = "input"
    target_field: str = "target"
    start: int = 0
    stop: int
    total: int = 0  # rows in the whole file
    skip_bad_rows: bool = False  # a bad row becomes an Example that says why it is skipped, read by a worker

    @property
    def columns(self) -> list[str]:
        inputs = [self.input_field] if isinstance(self.input_field, str) else list(self.input_field)
        return [*inputs, self.target_field]

    @classmethod
    def open(cls, path: str | Path, input_field: InputFields = "input", target_field: str = "target",
             rows: str = ":", skip_bad_rows: bool = False) -> "RowSource":
        path = path if is_uri(path) else Path(path)
        fmt = _FORMATS.get(suffix(path))
        if fmt not in ("parquet", "jsonl"):
            raise DatasetError(f"{path}: only Parquet and JSONL files are read in shards")
        if not is_uri(path) and not path.is_file():
            raise DatasetError(f"{path}: no such dataset file")
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                meta = pq.ParquetFile(open_remote(path) if is_uri(path) else path)
            except (pa.ArrowException, OSError) as err:
                raise DatasetError(f"{path}: not a readable Parquet file ({err})") from None
            names = set(meta.schema_arrow.names)
            inputs = [input_field] if isinstance(input_field, str) else list(input_field)
            for field in (*inputs, target_field):
                if field not in names:
                    raise DatasetError(f"{path}: no column {field!r} (have: {', '.join(sorted(names))})")
            total = meta.metadata.num_rows
        else:
            total = count_lines(path)
        chosen = parse_range(rows, total)
        start, stop = chosen.start or 0, min(chosen.stop if chosen.stop is not None else total, total)
        return cls(path=str(path), format=fmt, input_field=input_field, target_field=target_field,
                   start=start, stop=stop, total=total, skip_bad_rows=skip_bad_rows)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def rows(self, start: int, stop: int) -> list[Example]:
        """Examples at positions [start, stop) of this source (ids are the file's row numbers)."""
        first, last = self.start + start, min(self.start + stop, self.stop)
        if self.format == "parquet":
            return self._parquet_rows(first, last)
        import itertools

        with text_lines(self.path) as handle:
            lines = itertools.islice(handle, first, last)
            return [self._example(line, first + i) for i, line in enumerate(lines)]

    def take(self, positions: list[int]) -> list[Example]:
        return [self.rows(p, p + 1)[0] for p in positions]

    def _parquet_rows(self, first: int, last: int) -> list[Example]:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(open_remote(self.path) if is_uri(self.path) else self.path)
        examples, offset = [], 0
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            if offset + size > first and offset < last:  # read only the row groups holding the shard
                table = parquet.read_row_group(group, columns=self.columns)
                lo, hi = max(first - offset, 0), min(last - offset, size)
                for i, row in enumerate(table.slice(lo, hi - lo).to_pylist()):
                    examples.append(self._example(row, offset + lo + i))
            offset += size
            if offset >= last:
                break
        return examples

    def _example(self, row: dict | str, number: int) -> Example:
        try:
            row = _json_row(row, self.path, number) if isinstance(row, str) else row
            return make_example(row, number, self.path, self.input_field, self.target_field)
        except DatasetError as err:
            if not self.skip_bad_rows:
                raise
            return Example(id=str(number), inputs={}, target=None, skipped=str(err))


Dataset = Union[list[Example], RowSource, "PackedRows"]  # a list, or anything with rows() and take()


def take(dataset: Dataset, positions: list[int]) -> list[Example]:
    return [dataset[p] for p in positions] if isinstance(dataset, list) else dataset.take(positions)


def shard(dataset: Dataset, start: int, stop: int) -> list[Example]:
    return dataset[start:stop] if isinstance(dataset, list) else dataset.rows(start, stop)
