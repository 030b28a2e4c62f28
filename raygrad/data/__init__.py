"""Data: the Example a workflow runs on, dataset files read whole or a shard at a time (RowSource).

Imports nothing of raygrad but its errors; the optimizer and the runtime take datasets from here.
"""
from raygrad.data.examples import Dataset, Example, RowSource, load_examples, parse_range, shard, take

__all__ = ["Dataset", "Example", "RowSource", "load_examples", "parse_range", "shard", "take"]
