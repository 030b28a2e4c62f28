"""Results tables: each candidate's parent; on a real full disk, a clear error and the tables written before intact."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from raygrad.optim.evaluate import SampleResult
from raygrad.optim.optimizer import ScoredValue
from raygrad.optim.state import CandidateRecord, StepRecord, TrainState
from raygrad.runs.results import SampleTables, candidate_rows, write_tables
from raygrad.runs.rundir import CheckpointError


def test_results_tables_on_a_full_disk_fail_clearly_and_keep_what_was_written(small_disk):
    folder, fill = small_disk
    state = TrainState(values={"p": "v"}, initial_val=0.1, best_val=0.2, history={},
                       steps=[StepRecord(step=0, batch=["0"], batch_score=0.0, errors=1, best_val=0.2)])
    write_tables(folder, state)
    fill()
    bigger = state.model_copy(update={"steps": state.steps * 2000})
    with pytest.raises(CheckpointError, match=r"cannot write .*steps.parquet: .*previous version of it is intact"):
        write_tables(folder, bigger)
    assert pq.read_table(folder / "steps.parquet").num_rows == 1
    samples = SampleTables(folder)
    with pytest.raises(CheckpointError, match="cannot write"):
        for _ in range(200):
            samples.write("val", [SampleResult(id=str(i), prediction="x" * 1000, target="y") for i in range(200)])


def test_a_candidates_parent_is_what_it_replaces_for_one_parameter_or_several_at_once():
    import json

    state = TrainState(values={}, initial_val=0.1, best_val=0.5, history={
        "a": [ScoredValue(value="a0", score=0.1)], "b": [ScoredValue(value="b0", score=0.1)]}, candidates=[
        CandidateRecord(step=0, parameter="a,b", value=json.dumps({"a": "a1", "b": "b1"}), accepted=True),
        CandidateRecord(step=1, parameter="a", value="a2", accepted=True),
        CandidateRecord(step=2, parameter="a,b", value=json.dumps({"a": "a3", "b": "b3"}))])
    parents = [row["parent"] for row in candidate_rows(state)]
    assert [json.loads(parents[0]), parents[1], json.loads(parents[2])] == [
        {"a": "a0", "b": "b0"}, "a1", {"a": "a2", "b": "b1"}]
