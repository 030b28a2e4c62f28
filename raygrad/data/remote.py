"""Dataset files where they live: any pyarrow filesystem URI (s3://bucket/key.parquet, gs://..., hdfs://...,
an S3-compatible endpoint as `?endpoint_override=host:port&scheme=http`). Credentials come from the environment
as pyarrow reads them (AWS_ACCESS_KEY_ID, ...), never from the URI: a URI is printed and written to configs."""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

from raygrad.errors import DatasetError

SECRET_QUERY_KEYS = ("access_key", "secret_key", "session_token")


def is_uri(path: str | Path) -> bool:
    return isinstance(path, str) and "://" in path


def check_uri(uri: str, field: str) -> None:
    """A URI holds no credentials (they would reach logs and config.yaml); ValueError naming the field."""
    found = sorted(set(parse_qs(urlsplit(uri).query)) & set(SECRET_QUERY_KEYS))
    if found:
        raise ValueError(f"{field}: the URI carries {', '.join(found)}; give credentials in the environment "
                         "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...) instead")


def suffix(path: str | Path) -> str:
    """The file's extension, lower case; of a URI, its object's name without the query."""
    return PurePosixPath(urlsplit(path).path).suffix.lower() if is_uri(path) else Path(path).suffix.lower()


def open_remote(uri: str) -> Any:
    """A random-access pyarrow file (what Parquet readers take); DatasetError when there is none."""
    from pyarrow import fs

    try:
        filesystem, where = fs.FileSystem.from_uri(uri)
        if filesystem.get_file_info(where).type != fs.FileType.File:
            raise DatasetError(f"{uri}: no such dataset file")
        return filesystem.open_input_file(where)
    except (OSError, ValueError) as err:  # unreachable endpoint, refused credentials, an unknown scheme
        raise DatasetError(f"{uri}: cannot read it: {' '.join(str(err).split())[:300]}") from None


@contextmanager
def text_lines(path: str | Path) -> Iterator[io.TextIOBase]:
    """A dataset file's text, line by line, read where it lives."""
    if not is_uri(path):
        with open(path, encoding="utf-8") as handle:
            yield handle
        return
    with open_remote(str(path)) as raw, io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8") as handle:
        yield handle


def count_lines(path: str | Path) -> int:
    """Lines of a file (the last one counted though it has no newline), read in blocks."""
    count, last = 0, b"\n"
    with (open_remote(str(path)) if is_uri(path) else open(path, "rb")) as handle:
        while block := handle.read(1 << 20):
            count, last = count + block.count(b"\n"), block[-1:]
    return count + (last != b"\n")


@contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """The object at `uri` copied to a local temporary file with its extension (a whole-file read)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="raygrad-data-") as folder, open_remote(uri) as remote:
        local = Path(folder) / f"data{suffix(uri)}"
        with open(local, "wb") as out:
            while block := remote.read(1 << 22):
                out.write(block)
        yield local
