"""Run a workflow over examples with every call in flight (the client's limits bound them)."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from traceback import format_exception
from typing import Any

from pydantic import BaseModel

from raygrad.core.workflow import ChatClient, Trace, Workflow, gather_all, run_forward
from raygrad.data import Example
from raygrad.errors import ConfigError, last_line, short_error
from raygrad.llm.client import BudgetExhausted, LLMCallFailed
from raygrad.llm.journal import JournalError
from raygrad.optim.metrics import Metric, as_metric, render

SAMPLE_COLUMNS = ("id", "prediction", "target", "score", "feedback", "error", "raised",
                  "reached")  # all text but score

# Raised by user code, these stop the run instead of making an error sample: a budget, a provider that
# never answered (the sample failed), a missing key or model, a journal that cannot be written.
RUN_ERRORS = (BudgetExhausted, LLMCallFailed, ConfigError, JournalError)


class SampleResult(BaseModel):
    id: str
    prediction: str | None = None  # as text (JSON for a prediction that is not a str)
    target: Any = None
    score: float | None = None  # None when the sample failed: a failure is not a wrong answer
    feedback: str | None = None  # the metric's feedback, when it gave one
    error: str | None = None
    skipped: bool = False  # a bad row of a sharded file, left out (data.skip_bad_rows): neither scored nor failed
    raised: str | None = None  # "Type: message" when the workflow raised: an error sample, scored 0
    traceback: str | None = None  # of what was raised (not in the tables: the run shows the first)
    reached: dict[str, str] | None = None  # parameters the loss reached, and how the first edge was found (debug)

    @property
    def failed(self) -> bool:
        return self.error is not None and not self.skipped

    def row(self) -> dict[str, Any]:
        """For a table: every column text, but the score."""
        return {**self.model_dump(include=set(SAMPLE_COLUMNS)), "target": render(self.target),
                "reached": None if self.reached is None else json.dumps(self.reached)}


class Raised(BaseModel):
    """Samples whose workflow raised one type of exception: how many, and the first one's message."""

    count: int
    first: str


def count_raised(samples: list[SampleResult]) -> dict[str, Raised]:
    counted: dict[str, Raised] = {}
    for sample in samples:
        if sample.raised:
            kind = sample.raised.split(":")[0]
            counted[kind] = Raised(count=counted[kind].count + 1, first=counted[kind].first) if kind in counted \
                else Raised(count=1, first=sample.raised)
    return counted


def add_raised(a: dict[str, Raised], b: dict[str, Raised]) -> dict[str, Raised]:
    return {kind: Raised(count=(a[kind].count if kind in a else 0) + (b[kind].count if kind in b else 0),
                         first=a[kind].first if kind in a else b[kind].first) for kind in {**a, **b}}


def raised_text(raised: dict[str, Raised]) -> str:
    """`ValueError x3 (the first: ValueError: ...)`, each type, most first."""
    return "; ".join(f"{kind} x{r.count} (the first: {r.first[:200]})"
                     for kind, r in sorted(raised.items(), key=lambda item: -item[1].count))


class EvalReport(BaseModel):
    split: str = ""
    score: float | None  # mean over completed samples; None when none completed (not 0: nothing was scored)
    completed: int
    failed: int
    wall_time_s: float
    samples: list[SampleResult]

    @property
    def raised(self) -> dict[str, Raised]:
        return count_raised(self.samples)

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
    failed sample, never a 0. An exception the workflow raised makes an error sample: scored 0, its
    trace closed by a loss that carries the exception to the backward engine."""
    metric = as_metric(metric)
    if example.skipped:
        return SampleResult(id=example.id, error=example.skipped, skipped=True), None
    trace = Trace()
    try:
        prediction, trace = await run_forward(workflow, example, clients, values, trace=trace)
    except LLMCallFailed as err:
        return SampleResult(id=example.id, target=example.target, error=str(err)), None
    except RUN_ERRORS:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code (a parser, a tool, a typed output) raised: an error sample
        trace.record_raised(err, example.target)
        stack = "".join(format_exception(type(err), err, err.__traceback__))[-4000:]
        return SampleResult(id=example.id, target=example.target, score=0.0, raised=short_error(err),
                            reached=trace.reached(), traceback=stack), trace
    try:
        score, feedback = await metric(prediction, example)
    except Exception as err:  # the user's metric may raise anything: the sample failed, it is not wrong
        return SampleResult(id=example.id, prediction=render(prediction), target=example.target,
                            error=f"metric {metric.name} failed: {last_line(err)}"), None
    trace.record_loss(prediction, example.target, score)
    return SampleResult(id=example.id, prediction=render(prediction), target=example.target, score=score,
                        feedback=feedback, reached=trace.reached()), trace


async def evaluate(workflow: Workflow, examples: list[Example], clients: Clients, metric: Metric | Any,
                   split: str = "", values: dict[str, str] | None = None) -> EvalReport:
    started = time.monotonic()
    metric = as_metric(metric)
    results = await gather_all(*(run_sample(workflow, ex, clients, metric, values) for ex in examples))
    samples = [result for result, _ in results]
    scores = [s.score for s in samples if s.score is not None]
    return EvalReport(split=split, score=sum(scores) / len(scores) if scores else None, completed=len(scores),
                      failed=sum(s.failed for s in samples), wall_time_s=time.monotonic() - started,
                      samples=samples)
