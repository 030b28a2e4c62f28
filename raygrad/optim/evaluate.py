"""Run a workflow over examples with every call in flight (the client's limits bound them)."""
from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from raygrad.core.graph import ChatClient, Trace, Workflow, gather_all, run_forward
from raygrad.data import Example
from raygrad.llm.client import LLMCallFailed
from raygrad.optim.metrics import EvalFn


class SampleResult(BaseModel):
    id: str
    prediction: str | None = None
    target: str
    score: float | None = None  # None when the sample failed: a failure is not a wrong answer
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


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
        table = pa.Table.from_pylist([s.model_dump() for s in self.samples],
                                     schema=pa.schema([("id", pa.string()), ("prediction", pa.string()),
                                                       ("target", pa.string()), ("score", pa.float64()),
                                                       ("error", pa.string())]))
        pq.write_table(table, path)
        return path


async def run_sample(workflow: Workflow, example: Example, client: ChatClient, eval_fn: EvalFn,
                     values: dict[str, str] | None = None) -> tuple[SampleResult, Trace | None]:
    """Forward one example and score it; a call that finally failed makes a failed sample, never a 0."""
    try:
        prediction, trace = await run_forward(workflow, example.input, client, values)
    except LLMCallFailed as err:
        return SampleResult(id=example.id, target=example.target, error=str(err)), None
    score = eval_fn(prediction, example.target)
    trace.record_loss(prediction, example.target, score)
    return SampleResult(id=example.id, prediction=prediction, target=example.target, score=score), trace


async def evaluate(workflow: Workflow, examples: list[Example], client: ChatClient, eval_fn: EvalFn,
                   split: str = "", values: dict[str, str] | None = None) -> EvalReport:
    started = time.monotonic()
    results = await gather_all(*(run_sample(workflow, ex, client, eval_fn, values) for ex in examples))
    samples = [result for result, _ in results]
    scores = [s.score for s in samples if s.score is not None]
    return EvalReport(split=split, score=sum(scores) / len(scores) if scores else 0.0, completed=len(scores),
                      failed=len(samples) - len(scores), wall_time_s=time.monotonic() - started, samples=samples)
