"""Data: the Example a workflow runs on, dataset files read whole (held packed: PackedRows) or a shard at a time
(RowSource).

Imports nothing of raygrad but its errors; the optimizer and the runtime take datasets from here.
"""
from raygrad.data.examples import Dataset, Example, RowSource, iter_examples, load_examples, parse_range, shard, take
from raygrad.data.packed import PackedRows

__all__ = ["Dataset", "Example", "PackedRows", "RowSource", "iter_examples", "load_examples", "parse_range", "shard",
           "take"]
