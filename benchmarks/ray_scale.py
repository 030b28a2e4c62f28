"""Validation over 10k, 100k and 1M rows on Ray: time, and peak memory per process.

The simulated server (its own process) answers at once with no budget. Two data paths: a sharded
Parquet file (data.shards), whose rows the workers read a shard at a time (the driver holds a path
and a row range, the optimizer actor a generator of shard ranges); and the same rows in memory (a
list read by the driver), put in Ray's object store once, so shard calls carry its reference and
row positions and each worker fetches it once. Peak resident memory is read from each process's
ru_maxrss; each size and path runs from a driver process of its own, with actors of their own.

    python benchmarks/ray_scale.py [--rows 10000 100000 1000000] [--paths sharded in-memory] [--in-memory-up-to N]
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from common import server_requests, simulated_server, write_table

from raygrad.distributed.actors import peak_rss_mb
from raygrad.distributed.runtime import connect, distributed_run
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig
from raygrad.tasks.object_count import generate_object_counting

ROW_GROUP, CHUNK = 10_000, 1_000
DEFAULT_ROWS = [10_000, 100_000, 1_000_000]


def write_parquet(path: Path, rows: int) -> None:
    """Written a row group at a time, so the benchmark's own process never holds the dataset."""
    schema = pa.schema([("input", pa.string()), ("target", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for group, start in enumerate(range(0, rows, ROW_GROUP)):
            examples = generate_object_counting(min(ROW_GROUP, rows - start), seed=group)
            writer.write_table(pa.Table.from_pylist(examples, schema=schema))


def run(rows: int, url: str, folder: Path, path: str, address: str, result: Any) -> None:
    """In a driver process of its own (its peak memory is this size's alone), joined to the benchmark's Ray."""
    connect(address)
    result.put(measure(rows, url, folder, path))


def measure(rows: int, url: str, folder: Path, path: str) -> list[object]:
    data = folder / f"val_{rows}.parquet"
    if not data.exists():
        write_parquet(data, rows)
    config = RunConfig.model_validate({
        "name": f"scale-{rows}-{path}", "output_dir": str(folder),
        "workflow": {"name": "object_count"},
        "data": {"path": str(data), "shards": path == "sharded", "splits": {"val": ":"}},
        "models": {"task": {"model": "openai/simulated", "api_base": url, "max_in_flight": 64}},
        "trainer": {"validation_chunk": CHUNK},
        "runtime": {"workers": 2, "cpus_per_worker": 0.5, "shards_per_worker": 2}})
    calls_before = server_requests(url)[0]
    with distributed_run(config) as ray_run:
        started = time.monotonic()
        result = ray_run.evaluate({}, load_split(config.data, "val"))
        wall = time.monotonic() - started
        peaks = ray_run.stats()["peak_rss_mb"]
    workers = [v for k, v in peaks.items() if k != "optimizer"]
    return [f"{rows:,}", path, result.evaluated, server_requests(url)[0] - calls_before, f"{wall:.0f}",
            f"{rows / wall:.0f}",
            f"{result.score:.3f}", f"{peaks['optimizer']:.0f}", f"{max(workers):.0f}", f"{peak_rss_mb():.0f}",
            f"{data.stat().st_size / 2**20:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=DEFAULT_ROWS)
    parser.add_argument("--paths", nargs="+", default=["sharded", "in-memory"], choices=["sharded", "in-memory"])
    parser.add_argument("--in-memory-up-to", type=int, default=100_000,
                        help="larger sizes run the sharded path only (a driver holding 1M rows is not the use)")
    args = parser.parse_args()
    connect()
    address, context, rows = ray.get_runtime_context().gcs_address, multiprocessing.get_context("spawn"), []
    with simulated_server(latency_s=0.0, responder="object_count") as url, tempfile.TemporaryDirectory() as folder:
        for n in args.rows:
            for path in args.paths:
                if path == "in-memory" and n > args.in_memory_up_to:
                    continue
                result = context.Queue()
                driver = context.Process(target=run, args=(n, url, Path(folder), path, address, result))
                driver.start()
                rows.append(result.get())
                driver.join()
                print(rows[-1], flush=True)
    sizes = [] if args.rows == DEFAULT_ROWS else [f"{max(args.rows)}"]  # a partial run keeps the whole one's file
    write_table("_up_to_".join(["ray_scale", *sizes]), "Validation on Ray (2 workers, zero-latency simulated server)",
                ["rows", "data path", "evaluated", "calls at server", "wall s", "rows/s", "score", "optimizer actor MB",
                 "largest worker MB", "driver MB", "Parquet MB"], rows,
                notes=f"Shards of {CHUNK} rows, row groups of {ROW_GROUP:,}; peak RSS from ru_maxrss. A question "
                      "repeated in the data is answered from the call journal, so calls at server can be fewer "
                      "than rows. One run, same machine; the server shares its 2 cores.")


if __name__ == "__main__":
    main()
