"""Dataset loading: four formats, splits, and clear errors for bad rows."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raygrad.data import load_examples
from raygrad.errors import DatasetError
from raygrad.runs.assemble import load_split
from raygrad.runs.config import DataConfig

ROWS = [{"question": "How many?", "answer": 3}, {"question": "And now?", "answer": 4}]


def write_all_formats(tmp_path, rows):
    (tmp_path / "d.json").write_text(json.dumps({"examples": rows}))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    keys = list(rows[0])
    (tmp_path / "d.csv").write_text(",".join(keys) + "\n" + "\n".join(",".join(str(r.get(k, "")) for k in keys)
                                                                      for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    return [tmp_path / f"d.{ext}" for ext in ("json", "jsonl", "csv", "parquet")]


def test_every_format_loads_the_same_examples(tmp_path):
    for path in write_all_formats(tmp_path, ROWS):
        examples = load_examples(path, "question", "answer")
        # CSV holds text only: a number target arrives as its text there, as a number elsewhere
        assert [(e.input, str(e.target)) for e in examples] == [("How many?", "3"), ("And now?", "4")], path


@pytest.mark.parametrize("ext", ["json", "jsonl", "parquet"])
def test_a_missing_field_names_file_and_row(tmp_path, ext):
    rows = ROWS + [{"question": "Third?", "answer": 1}, {"question": "No answer"}]
    path = [p for p in write_all_formats(tmp_path, rows) if p.suffix == f".{ext}"][0]
    with pytest.raises(DatasetError) as err:
        load_examples(path, "question", "answer")
    assert str(path) in str(err.value) and "row 3" in str(err.value) and "'answer'" in str(err.value)


def test_several_input_fields_and_any_json_target(tmp_path):
    rows = [{"question": "Who?", "context": ["p1", "p2"], "label": {"name": "Ada", "tags": ["x"]}}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    [example] = load_examples(tmp_path / "m.jsonl", ["question", "context"], "label")
    assert example.keywords and example.inputs == {"question": "Who?", "context": ["p1", "p2"]}
    assert example.target == {"name": "Ada", "tags": ["x"]}
    with pytest.raises(DatasetError, match="row 0: missing field 'passages'"):
        load_examples(tmp_path / "m.jsonl", ["question", "passages"], "label")


def test_wrong_type_bad_json_and_non_utf8(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"input": "a", "target": "1"}\n{"input": ["a"], "target": "2"}\n')
    with pytest.raises(DatasetError, match="row 1: field 'input' must be text"):
        load_examples(tmp_path / "t.jsonl")
    (tmp_path / "b.jsonl").write_text('{"input": "a", "target": "1"}\n{"input": \n')
    with pytest.raises(DatasetError, match="row 1: not valid JSON"):
        load_examples(tmp_path / "b.jsonl")
    (tmp_path / "l.csv").write_bytes(b"input,target\ncaf\xe9,1\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_examples(tmp_path / "l.csv")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_examples(tmp_path / "data.xlsx")


def test_splits_and_empty_split(tmp_path):
    config = DataConfig(splits={"train": "0:50", "val": "50:150", "test": "150:", "none": "300:"})
    assert [len(load_split(config, s)) for s in ("train", "val", "test")] == [50, 100, 100]
    with pytest.raises(DatasetError, match="selects no rows"):
        load_split(config, "none")
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_split(config, "dev")


def test_bbh_object_counting_with_the_papers_split(bbh_object_counting):
    config = DataConfig(path=str(bbh_object_counting))
    train, val, test = (load_split(config, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (50, 100, 100)
    assert train[0].input.startswith("I have") and train[0].target.isdigit()


def test_builtin_multihop_questions_load_as_a_dataset():
    from raygrad.runs.assemble import build_workflow
    from raygrad.runs.config import load_config
    from raygrad.tasks import MultiHopQA

    config = load_config(Path(__file__).resolve().parents[2] / "raygrad" / "configs" / "multihop_local.yaml")
    splits = {name: load_split(config.data, name) for name in ("train", "val", "test")}
    assert [len(s) for s in splits.values()] == [12, 12, 16]
    assert splits["test"][-1].input.startswith("Who heads the agency")
    workflow, metric = build_workflow(config.workflow)
    assert isinstance(workflow, MultiHopQA) and metric.name == "f1" and metric.fn("the Kessel", "Kessel") == 1.0


def test_row_source_reads_only_the_shard_asked_for(tmp_path):
    from raygrad.data import RowSource, shard, take

    rows = [{"input": f"q{i}", "target": str(i)} for i in range(1000)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=100)
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("big.parquet", "big.jsonl"):
        config = DataConfig(path=str(tmp_path / name), shards=True, splits={"val": "200:700"})
        source = load_split(config, "val")
        assert isinstance(source, RowSource) and len(source) == 500
        assert [ex.id for ex in shard(source, 95, 105)] == [str(i) for i in range(295, 305)]
        assert take(source, [0, 499]) == [ex for ex in (shard(source, 0, 1) + shard(source, 499, 500))]
        assert shard(source, 490, 600)[-1].input == "q699"  # clipped at the split's end
    with pytest.raises(DatasetError, match="no column 'answer'"):
        RowSource.open(tmp_path / "big.parquet", target_field="answer")


def test_bad_rows_are_skipped_and_listed_when_the_config_asks(tmp_path):
    rows = ['{"input": "a", "target": "1"}', '{"input": "b"}', '{"input": ', '{"input": "c", "target": "3"}',
            '["not", "an", "object"]']
    (tmp_path / "mixed.jsonl").write_text("\n".join(rows) + "\n")
    config = DataConfig(path=str(tmp_path / "mixed.jsonl"), skip_bad_rows=True, splits={"all": ":"})
    skipped: list[str] = []
    examples = load_split(config, "all", skipped)
    assert [(e.id, e.input) for e in examples] == [("0", "a"), ("3", "c")]  # ids stay the file's row numbers
    assert [s.split(": ", 1)[1] for s in skipped] == ["row 1: missing field 'target'", "row 2: not valid JSON "
                                                      "(Expecting value)", "row 4: expected an object with fields, got list"]
    with pytest.raises(DatasetError, match="row 1: missing field 'target'"):  # by default: the first bad row stops
        load_split(config.model_copy(update={"skip_bad_rows": False}), "all")
    sharded = load_split(config.model_copy(update={"shards": True}), "all")  # read by workers, a shard at a time
    assert [(e.id, e.skipped) for e in sharded.rows(0, 5)] == [
        ("0", None), ("1", f"{tmp_path / 'mixed.jsonl'}: row 1: missing field 'target'"),
        ("2", f"{tmp_path / 'mixed.jsonl'}: row 2: not valid JSON (Expecting value)"), ("3", None),
        ("4", f"{tmp_path / 'mixed.jsonl'}: row 4: expected an object with fields, got list")]


def test_splits_that_overlap_run_past_the_data_or_go_negative_are_errors():
    config = DataConfig(generator={"size": 10}, splits={"train": "0:6", "val": "4:10"})
    with pytest.raises(DatasetError, match=r"data.splits.train \('0:6'\) and data.splits.val \('4:10'\) share rows 4:6"):
        load_split(config, "train")
    assert len(load_split(config.model_copy(update={"allow_overlap": True}), "val")) == 6
    for spec, says in (("0:50", "ends at row 50, but the data has 10 rows"), ("-3:", "cannot be negative"),
                       ("5:2", "selects no rows")):
        with pytest.raises(DatasetError, match=says):
            load_split(DataConfig(generator={"size": 10}, splits={"train": spec}), "train")


def test_a_skipped_row_leaves_every_other_row_in_its_split(tmp_path):
    good = [json.dumps({"input": f"q{i}", "target": str(i)}) for i in range(10)]
    broken = [*good[:2], '{"input": "no target"}', *good[3:]]  # row 2 (of train) is bad
    (tmp_path / "good.jsonl").write_text("\n".join(good) + "\n")
    (tmp_path / "broken.jsonl").write_text("\n".join(broken) + "\n")
    splits = {"train": "0:5", "val": "5:10"}
    clean = DataConfig(path=str(tmp_path / "good.jsonl"), splits=splits)
    skipping = DataConfig(path=str(tmp_path / "broken.jsonl"), splits=splits, skip_bad_rows=True)
    assert [e.id for e in load_split(skipping, "val")] == [e.id for e in load_split(clean, "val")] == \
        ["5", "6", "7", "8", "9"]
    assert [e.id for e in load_split(skipping, "train")] == ["0", "1", "3", "4"]


def test_a_file_split_in_memory_is_held_packed_and_never_as_every_row_at_once(tmp_path):
    """A driver reading 100,000 rows held them as objects (~94 MB) before packing them for Ray: read packed,
    it holds at most one chunk of rows as objects, and a split keeps only its own rows' bytes."""
    import pickle
    import tracemalloc

    from raygrad.data import PackedRows

    rows = [{"input": f"question {i} " + "x" * 200, "target": str(i)} for i in range(30_000)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=5_000)
    config = DataConfig(path=str(tmp_path / "big.parquet"), splits={"train": ":3000", "val": "3000:"})
    load_split(config, "train")  # the readers' modules imported before measuring

    def peak(load) -> tuple[object, int]:
        tracemalloc.start()
        try:
            return load(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    val, packed_peak = peak(lambda: load_split(config, "val"))
    listed, list_peak = peak(lambda: load_examples(tmp_path / "big.parquet"))
    assert isinstance(val, PackedRows) and len(val) == 27_000
    assert val[0].id == "3000" and val[-1].input == listed[-1].input
    assert packed_peak < list_peak / 2
    train = load_split(config, "train")
    assert [e.id for e in train] == [str(i) for i in range(3000)]
    assert len(pickle.dumps(train)) < len(pickle.dumps(val)) / 5  # its own rows, not the file's
