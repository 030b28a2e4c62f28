"""A run's results: RunResult (result.json), and Parquet tables (pyarrow, pandas and duckdb read them):

steps.parquet       per step: batch score, errors, best validation, accepted, calls/tokens/cost per role,
                    backward and optimizer replies that did not parse
candidates.parquet  every proposal: parameter, value, parent (the value it replaced), stage scores, why
samples/            per sample per evaluation (one file per evaluation, `evaluation` column)
calls.parquet       per paid LLM call (from the call journal): role, model, tokens, cost, latency;
                    reply text only when asked, prompt text never (the journal does not keep it)
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from raygrad.errors import DamagedFile
from raygrad.llm.client import Usage
from raygrad.llm.models import ROLES
from raygrad.optim.evaluate import SAMPLE_COLUMNS, Raised, SampleResult, add_raised, raised_text
from raygrad.optim.state import TrainState, shown
from raygrad.runs.rundir import (
    CALLS,
    CANDIDATES,
    JOURNAL,
    RESULT,
    SAMPLES,
    STEPS,
    CheckpointError,
    CheckpointFile,
    read_json,
    rewritten_by_resume,
)


class RunResult(BaseModel):
    """What a finished (or budget-stopped) run reports; written as result.json in its directory."""

    name: str
    workflow: str
    steps: int
    accepted: int
    candidates: int
    initial_val: float
    best_val: float
    val_size: int
    best_val_samples: int | None = None  # trainer.early_acceptance: best_val is estimated from this many samples
    test_before: float | None  # None when data.splits has no test split
    test_after: float | None  # None when the run stopped at a budget before the end
    test_size: int
    failed_samples: int
    values: dict[str, str]
    start_values: dict[str, str]
    usage: dict[str, Usage]
    wall_s: float
    stopped: str | None = None
    stalled: str | None = None  # why the run finished before its steps: trainer.patience
    skipped_rows: int = 0  # bad rows left out (data.skip_bad_rows), listed in skipped_rows.json
    resumed_from: str | None = None  # the checkpoint's location, when the run continued from one
    ray: dict[str, Any] = Field(default_factory=dict)
    raised: dict[str, Raised] = Field(default_factory=dict)  # samples whose workflow raised, over the whole run
    failed_gradients: int = 0  # backward-engine calls that failed
    failed_proposals: int = 0  # optimizer calls that failed
    unparsed_gradients: int = 0  # backward-engine replies that did not parse
    unparsed_proposals: int = 0  # optimizer replies that did not parse
    unparsed_example: str | None = None  # one of them
    no_gradient: list[str] = Field(default_factory=list)  # trained parameters no error sample's gradient reached

    @property
    def cost(self) -> float:
        return sum(u.cost for u in self.usage.values())

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage.values())


SAMPLES_SCHEMA = pa.schema([("evaluation", pa.string())] + [(c, pa.float64() if c == "score" else pa.string())
                                                             for c in SAMPLE_COLUMNS])


def read_result(run_dir: Path) -> RunResult:
    """A finished run's result.json; DamagedFile naming it and what to do when it cannot be read."""
    path = run_dir / RESULT
    remedy = rewritten_by_resume(run_dir)
    saved = read_json(path, remedy)
    try:
        return RunResult.model_validate(saved)
    except ValidationError as err:
        raise DamagedFile(f"{path} is not a raygrad result ({err.errors()[0]['msg']}); {remedy}") from None


def run_raised(state: TrainState, *evaluations: Any) -> dict[str, Raised]:
    """Samples that raised over a run: the initial validation, every step, and the given evaluations."""
    raised = state.initial_raised
    for part in [*(step.raised for step in state.steps), *(e.raised for e in evaluations if e is not None)]:
        raised = add_raised(raised, part)
    return raised


def no_gradient(state: TrainState, trained: list[str]) -> list[str]:
    """Trained text parameters that no step's error samples gave a gradient (demos never get one)."""
    reached = {name for step in state.steps for name in step.gradient_samples}
    return [name for name in trained if name not in reached]


def write_tables(run_dir: Path, state: TrainState, journal: Path | None = None, reply_text: bool = False) -> None:
    write_step_tables(run_dir, state)
    journal = journal or run_dir / JOURNAL
    if journal.exists():
        _write(run_dir / CALLS, call_rows(journal, reply_text))


def write_step_tables(run_dir: Path, state: TrainState) -> None:
    """steps.parquet and candidates.parquet as of this state: rewritten after every checkpoint, so a killed
    run's tables hold every step it finished."""
    _write(run_dir / STEPS, step_rows(state))
    _write(run_dir / CANDIDATES, candidate_rows(state), schema=pa.schema([
        ("step", pa.int64()), ("parameter", pa.string()), ("value", pa.string()), ("parent", pa.string()),
        ("stage1", pa.float64()), ("stage2", pa.float64()), ("accepted", pa.bool_()), ("reason", pa.string())]))


def run_checkpoint(checkpoint: Path, storage: Any, journal: Path) -> CheckpointFile:
    """A run's checkpoint file: after each save, the step tables beside it and, with storage, the journal
    and the checkpoint copied there."""
    copy = storage.after_checkpoint(journal) if storage is not None else None

    def after_save(path: Path) -> None:
        write_step_tables(path.parent, TrainState.model_validate_json(path.read_text(encoding="utf-8")))
        if copy is not None:
            copy(path)
    return CheckpointFile(checkpoint, after_save=after_save)


def step_rows(state: TrainState) -> list[dict]:
    rows, before = [], {}
    for step in state.steps:
        row = {"step": step.step, "batch_score": step.batch_score, "errors": step.errors, "best_val": step.best_val,
               "accepted": ",".join(step.accepted), "unparsed_gradients": step.unparsed_gradients,
               "unparsed_proposals": step.unparsed_proposals, "failed_gradients": step.failed_gradients,
               "failed_proposals": step.failed_proposals,
               "raised": sum(r.count for r in step.raised.values()), "raised_types": raised_text(step.raised),
               "parent": step.parent, "merged": ",".join(map(str, step.merged))}
        for role in ROLES:  # spent during this step: the running totals' difference
            now, then = step.usage.get(role), before.get(role)
            for counter in ("calls", "prompt_tokens", "completion_tokens", "cost"):
                value = getattr(now, counter, 0) - getattr(then, counter, 0) if now else None
                row[f"{role}_{counter}"] = value
        before = step.usage or before
        rows.append(row)
    return rows


def candidate_rows(state: TrainState) -> list[dict]:
    """Each candidate with its parent: the parameter's value when it was proposed (for a joint candidate, the
    values of its parameters, as a JSON object like its value); with a Pareto pool, the value of the member
    its step built on when that was not the best."""
    current = {name: history[0].value for name, history in state.history.items() if history}
    steps = {record.step: record for record in state.steps}
    rows, moved = [], set()  # steps whose values became the best: their later candidates build on the best
    for candidate in state.candidates:
        changes, record = candidate.changes(), steps.get(candidate.step)
        built_on = current if record is None or record.parent is None or candidate.step in moved else \
            {**current, **{n: v for n, v in state.pool[record.parent].values.items() if n in current}}
        rows.append({**candidate.model_dump(), "parent": shown({name: built_on.get(name) for name in changes})})
        if candidate.accepted:
            current = {**built_on, **changes}
            moved.add(candidate.step)
    return rows


def call_rows(journal: Path, reply_text: bool = False) -> list[dict]:
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT key, model, response, created_at FROM calls ORDER BY created_at").fetchall()
    finally:
        connection.close()
    out = []
    for key, model, blob, created_at in rows:
        reply = json.loads(blob)
        row = {"key": key, "role": reply.get("role"), "model": model, "created_at": created_at,
               "prompt_tokens": reply.get("prompt_tokens", 0), "completion_tokens": reply.get("completion_tokens", 0),
               "cost": reply.get("cost"), "latency_s": reply.get("latency_s"), "attempts": reply.get("attempts")}
        if reply_text:
            row["reply"] = reply.get("text")
        out.append(row)
    return out


class SampleTables:
    """Per-sample results, one Parquet file per evaluation, written shard by shard (never all in memory).

    A file appears under its name only when its evaluation finished; one cut short (a crash) is redone
    from the journal on resume and written again.
    """

    def __init__(self, run_dir: Path):
        self.folder = run_dir / SAMPLES
        self._label: str | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, label: str, samples: Iterable[SampleResult]) -> None:
        try:
            if label != self._label:
                self.close()
                self.folder.mkdir(parents=True, exist_ok=True)
                self._label = label
                self._writer = pq.ParquetWriter(self._partial(label), SAMPLES_SCHEMA)
            rows = [{"evaluation": label, **s.row()} for s in samples]
            self._writer.write_table(pa.Table.from_pylist(rows, schema=SAMPLES_SCHEMA))
        except (OSError, pa.ArrowException) as err:  # disk full: finished evaluations' files are intact
            raise CheckpointError(f"cannot write {self._partial(label)}: {err}") from None

    def close(self) -> None:
        if self._writer is not None and self._label is not None:
            self._writer.close()
            self._partial(self._label).replace(self.folder / f"{self._label}.parquet")
        self._writer, self._label = None, None

    def _partial(self, label: str) -> Path:
        return self.folder / f"_{label}.parquet.partial"  # readers of the folder skip "_" files


def _write(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema else pa.table({})
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    except (OSError, pa.ArrowException) as err:  # disk full: the previous table (if any) is intact
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {err}; the previous version of it is intact") from None
