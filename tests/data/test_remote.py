"""Datasets read where they live: a filesystem URI as data.path, whole or a shard at a time, on the S3 API
on loopback (moto); bad rows named by URI and row, and credentials never taken from a URI."""
from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs

from raygrad.errors import DatasetError
from raygrad.runs.assemble import load_split
from raygrad.runs.config import ConfigError, DataConfig, load_config

ROWS = [{"question": f"I have {n} apples. How many apples do I have?", "answer": str(n)} for n in range(40)]


def upload(uri: str, data: bytes) -> None:
    filesystem, where = fs.FileSystem.from_uri(uri)
    filesystem.create_dir(where.split("/", 1)[0])  # the bucket
    with filesystem.open_output_stream(where) as out:
        out.write(data)


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def parquet(rows: list) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=8)
    return sink.getvalue().to_pybytes()


def config(path: str, shards: bool) -> DataConfig:
    return DataConfig(path=path, input_field="question", target_field="answer", shards=shards,
                      splits={"train": "0:10", "val": "10:40"})


@pytest.mark.parametrize("name, encode", [("questions.jsonl", jsonl), ("questions.parquet", parquet)])
@pytest.mark.parametrize("shards", [False, True])
def test_a_dataset_on_s3_reads_as_the_same_file_on_disk(s3_storage, tmp_path, name, encode, shards):
    uri = s3_storage(f"data/{name}")
    upload(uri, encode(ROWS))
    (tmp_path / name).write_bytes(encode(ROWS))
    for split in ("train", "val"):
        remote, local = load_split(config(uri, shards), split), load_split(config(str(tmp_path / name), shards), split)
        assert len(remote) == len(local) == {"train": 10, "val": 30}[split]
        if shards:  # a RowSource: the workers read their shards from the URI
            assert remote.path == uri
            remote, local = remote.rows(5, 25 if split == "val" else 10), local.rows(5, 25 if split == "val" else 10)
        assert [(e.id, e.input, e.target) for e in remote] == [(e.id, e.input, e.target) for e in local]


@pytest.mark.parametrize("shards", [False, True])
def test_a_bad_row_on_s3_is_named_by_uri_and_row(s3_storage, shards):
    uri = s3_storage("data/bad.jsonl")
    rows = [*ROWS[:27], {"question": "a row with no answer"}, *ROWS[28:]]
    upload(uri, jsonl(rows))
    with pytest.raises(DatasetError, match=rf"^{re.escape(uri)}: row 27: missing field 'answer'"):
        split = load_split(config(uri, shards), "val")
        if shards:
            split.rows(0, 30)
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_split(config(uri.replace("bad.jsonl", "gone.jsonl"), shards), "train")


def test_a_data_uri_with_credentials_is_refused_and_a_uri_is_not_taken_for_a_path_beside_the_config(tmp_path):
    with pytest.raises(ValueError, match="data.path: the URI carries secret_key"):
        DataConfig(path="s3://bucket/q.jsonl?secret_key=abc")
    path = tmp_path / "run.yaml"
    path.write_text("data: {path: 's3://bucket/q.jsonl?region=us-east-1'}\n")
    assert load_config(path).data.path == "s3://bucket/q.jsonl?region=us-east-1"
    with pytest.raises(ConfigError, match="data.path: .*secret_key"):
        path.write_text("data: {path: 's3://bucket/q.jsonl?secret_key=abc'}\n")
        load_config(path)
