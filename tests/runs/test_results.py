"""Results tables: each candidate's parent; on a real full disk, a clear error and the tables written before intact."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from raygrad.optim.evaluate import SampleResult
from raygrad.optim.optimizer import ScoredValue
from raygrad.optim.state import CandidateRecord, PoolMember, StepRecord, TrainState
from raygrad.runs.results import SampleTables, candidate_rows, step_rows, write_tables
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


def test_a_candidate_built_on_a_pool_member_shows_that_members_value_as_its_parent():
    def step(number: int, parent: int | None = None) -> StepRecord:
        return StepRecord(step=number, batch=[], batch_score=0.5, errors=1, best_val=0.5, parent=parent)

    state = TrainState(values={}, initial_val=0.1, best_val=0.5, history={
        "a": [ScoredValue(value="a0", score=0.1)], "b": [ScoredValue(value="b0", score=0.1)]},
        pool=[PoolMember(values={"a": "a0", "b": "b0"}, score=0.1, missed=[]),
              PoolMember(values={"a": "aP", "b": "bP"}, score=0.3, missed=[], parents=[0])],
        steps=[step(0, parent=1), step(1)], candidates=[
            CandidateRecord(step=0, parameter="a", value="a1"),
            CandidateRecord(step=0, parameter="a", value="a2", accepted=True),
            CandidateRecord(step=0, parameter="b", value="b3"),  # after the acceptance: on the new best
            CandidateRecord(step=1, parameter="a", value="a4")])
    rows = candidate_rows(state)
    assert [row["parent"] for row in rows] == ["aP", "aP", "bP", "a2"]
    assert [row["parent"] for row in step_rows(state)] == [1, None]


def test_a_killed_runs_tables_hold_every_step_it_finished(sim_server, tmp_path, simulated_run_config):
    """The step tables are rewritten with every checkpoint: kill -9 after a step, and they hold it."""
    import json
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    server = sim_server(responder="object_count_trainer", latency_s=0.05)
    config = simulated_run_config(tmp_path, server, "killed",
                                  workflow='{name: object_count, instruction: "Answer.", output_format: "Reply."}',
                                  data='{generator: {size: 60, seed: 4}, splits: {train: "0:20", val: "20:60"}}',
                                  trainer="{steps: 50, batch_size: 4, proposals: 2}")
    process = subprocess.Popen([sys.executable, "-m", "raygrad", "optimize", str(config), "--local"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "killed"
    deadline = time.monotonic() + 120
    checkpoint = run_dir / "checkpoint.json"
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text())["step"] >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    done = json.loads((run_dir / "checkpoint.json").read_text())["step"]
    assert done >= 2 and not (run_dir / "result.json").exists()
    steps = [row["step"] for row in pq.read_table(run_dir / "steps.parquet").to_pylist()]
    # Killed between a checkpoint and its tables, they may lag it by that one step, never more.
    assert steps in (list(range(done)), list(range(done - 1)))
