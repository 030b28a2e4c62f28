"""Run a workflow over examples with every call in flight (the client's limits bound them)."""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from raygrad.core.workflow import ChatClient, Trace, Workflow, gather_all, run_forward
from raygrad.data import Example
from raygrad.errors import last_line
from raygrad.llm.client import LLMCallFailed
from raygrad.optim.metrics import Metric, as_metric, render

SAMPLE_COLUMNS = ("id", "prediction", "target", "score", "feedback", "error")  # all text but score


class SampleResult(BaseModel):
    id: str
    prediction: str | None = None  # as text (JSON for a prediction that is not a str)
    target: Any = None
    score: float | None = None  # None when the sample failed: a failure is not a wrong answer
    feedback: str | None = None  # the metric's feedback, when it gave one
    error: str | None = None
    skipped: bool = False  # a bad row of a sharded file, left out (data.skip_bad_rows): neither scored nor failed

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.skipped

    def row(self) -> dict[str, Any]:
        """For a table: every column text, but the score."""
        return {**self.model_dump(include=set(SAMPLE_COLUMNS)), "target": render(self.target)}


class EvalReport(BaseModel):
    split: str = ""
    score: float  # mean over completed samples
    completed: int
    failed: int
    wall_time_s: float
    samples: list[SampleResult]

    def write_parquet(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([(c, pa.float64() if c == "score" else pa.string()) for c in SAMPLE_COLUMNS])
        table = pa.Table.from_pylist([s.row() for s in self.samples], schema=schema)
        pq.write_table(table, path)
        return path


Clients = Mapping[str, ChatClient] | ChatClient  # by model name, or one for every call


async def run_sample(workflow: Workflow, example: Example, clients: Clients, metric: Metric | Any,
                     values: dict[str, str] | None = None) -> tuple[SampleResult, Trace | None]:
    """Forward one example and score it. A call that finally failed, or a metric that raised, makes a
    failed sample, never a 0."""
    metric = as_metric(metric)
    if example.skipped:
        return SampleResult(id=example.id, error=example.skipped, skipped=True), None
    try:
        prediction, trace = await run_forward(workflow, example, clients, values)
    except LLMCallFailed as err:
        return SampleResult(id=example.id, target=example.target, error=str(err)), None
    try:
        score, feedback = await metric(prediction, example)
    except Exception as err:  # the user's metric may raise anything: the sample failed, it is not wrong
        return SampleResult(id=example.id, prediction=render(prediction), target=example.target,
                            error=f"metric {metric.name} failed: {last_line(err)}"), None
    trace.record_loss(prediction, example.target, score)
    return SampleResult(id=example.id, prediction=render(prediction), target=example.target, score=score,
                        feedback=feedback), trace


async def evaluate(workflow: Workflow, examples: list[Example], clients: Clients, metric: Metric | Any,
                   split: str = "", values: dict[str, str] | None = None) -> EvalReport:
    started = time.monotonic()
    metric = as_metric(metric)
    results = await gather_all(*(run_sample(workflow, ex, clients, metric, values) for ex in examples))
    samples = [result for result, _ in results]
    scores = [s.score for s in samples if s.score is not None]
    return EvalReport(split=split, score=sum(scores) / len(scores) if scores else 0.0, completed=len(scores),
                      failed=sum(s.failed for s in samples), wall_time_s=time.monotonic() - started,
                      samples=samples)
