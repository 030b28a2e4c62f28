"""Running the trainer's samples: the plain async functions, and LocalExecutor (this process, no Ray).

The trainer decides (what to propose, what to accept); an executor runs samples for it: a training
minibatch with backward for its errors, a stage-1 score, a stage-2 validation with early rejection.
The plain async functions here are what the Ray actors call too, so the algorithm has one copy.
"""
from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from raygrad.core.backward import Gradient, backward, textual_loss
from raygrad.core.graph import ChatClient, Trace, Workflow, gather_all
from raygrad.data import Dataset, Example, shard, take
from raygrad.llm.client import Usage
from raygrad.llm.models import ROLES
from raygrad.optim.demos import Demo, collect_demos
from raygrad.optim.evaluate import SampleResult, run_sample
from raygrad.optim.metrics import EvalFn


class BatchOutcome(BaseModel):
    """A training minibatch, run: per-sample results, demos from correct samples, gradients of errors."""

    results: list[SampleResult]
    demos: dict[str, list[Demo]] = Field(default_factory=dict)
    gradients: list[Gradient] = Field(default_factory=list)


class Stage2Result(BaseModel):
    score: float  # mean over the samples evaluated (failed samples excluded)
    evaluated: int
    total: int
    stopped_early: bool
    failed: int = 0  # samples whose calls never succeeded: not scored, not counted as wrong


class ScoreSum(BaseModel):
    """Scores of a shard, summed so shards combine: mean = total / completed."""

    total: float = 0.0
    completed: int = 0
    count: int = 0
    samples: list[SampleResult] = Field(default_factory=list)  # only when asked for (the samples table)

    def add(self, other: "ScoreSum") -> "ScoreSum":
        return ScoreSum(total=self.total + other.total, completed=self.completed + other.completed,
                        count=self.count + other.count)

    @property
    def mean(self) -> float:
        return self.total / self.completed if self.completed else 0.0

    def result(self, size: int) -> Stage2Result:
        return Stage2Result(score=self.mean, evaluated=self.count, total=size, stopped_early=self.count < size,
                            failed=self.count - self.completed)


def cannot_win(scored: ScoreSum, remaining: int, must_beat: float | None) -> bool:
    """True once even all remaining samples correct could not lift the mean above `must_beat`."""
    if must_beat is None or remaining <= 0:
        return False
    return (scored.total + remaining) / (scored.completed + remaining) <= must_beat


# -- the plain async functions an executor (or a Ray worker) runs -----------------------------
async def forward_samples(workflow: Workflow, values: dict[str, str], examples: list[Example], client: ChatClient,
                          eval_fn: EvalFn, error_threshold: float, demo_parameters: list[str]
                          ) -> tuple[list[SampleResult], dict[str, list[Demo]], list[tuple[SampleResult, Trace]]]:
    """Run a minibatch: results, demos of correct samples, and the (result, trace) of error samples."""
    outcomes = await gather_all(*(run_sample(workflow, ex, client, eval_fn, values) for ex in examples))
    demos: dict[str, list[Demo]] = {name: [] for name in demo_parameters}
    errors = []
    for result, trace in outcomes:
        if result.score is None or trace is None:
            continue
        if result.score >= error_threshold:
            for name in demo_parameters:
                demos[name] += collect_demos(trace, result.id, name)
        else:
            errors.append((result, trace))
    return [r for r, _ in outcomes], demos, errors


async def backward_errors(workflow: Workflow, errors: list[tuple[SampleResult, Trace]], engine: ChatClient,
                          eval_name: str) -> list[Gradient]:
    """Textual gradients of error samples only: a correct sample never reaches this function."""
    parameters = workflow.parameters()
    grads = await gather_all(*(backward(
        trace, r.id, r.score or 0.0, textual_loss(r.prediction or "", r.target, r.score or 0.0, eval_name),
        parameters, engine) for r, trace in errors))
    return [g for sample in grads for g in sample]


async def score_samples(workflow: Workflow, values: dict[str, str], examples: list[Example], client: ChatClient,
                        eval_fn: EvalFn, keep_samples: bool = False) -> ScoreSum:
    results = await gather_all(*(run_sample(workflow, ex, client, eval_fn, values) for ex in examples))
    scores = [r.score for r, _ in results if r.score is not None]
    return ScoreSum(total=sum(scores), completed=len(scores), count=len(examples),
                    samples=[r for r, _ in results] if keep_samples else [])


class Executor(Protocol):
    """Runs samples for the trainer. `label` names the evaluation in the samples table, if one is kept."""

    async def train_batch(self, values: dict[str, str], train: Dataset, positions: list[int],
                          label: str = "") -> BatchOutcome: ...

    async def score(self, values: dict[str, str], train: Dataset, positions: list[int], label: str = "") -> float: ...

    async def validate(self, values: dict[str, str], val: Dataset, must_beat: float | None = None,
                       chunk: int = 16, label: str = "") -> Stage2Result: ...

    def usage(self) -> dict[str, Usage]: ...


def demo_parameters(workflow: Workflow) -> list[str]:
    """The trainable few-shot demo parameters, whose candidates come from correct samples' traces."""
    return sorted(n for n, p in workflow.parameters().items() if p.trainable and p.role == "demos")


class LocalExecutor:
    """Everything in this process and event loop: the engine with no Ray at all."""

    budget_guard = None  # budgets are enforced by the clients themselves here

    def __init__(self, workflow: Workflow, eval_fn: EvalFn, clients: dict[str, ChatClient], *,
                 error_threshold: float = 1.0, eval_name: str = "eval"):
        self.workflow, self.eval_fn, self.clients = workflow, eval_fn, clients
        self.error_threshold, self.eval_name = error_threshold, eval_name

    async def train_batch(self, values: dict[str, str], train: Dataset, positions: list[int],
                          label: str = "") -> BatchOutcome:
        results, demos, errors = await forward_samples(self.workflow, values, take(train, positions),
                                                       self.clients["task"], self.eval_fn, self.error_threshold,
                                                       demo_parameters(self.workflow))
        gradients = await backward_errors(self.workflow, errors, self.clients["backward"], self.eval_name)
        return BatchOutcome(results=results, demos=demos, gradients=gradients)

    async def score(self, values: dict[str, str], train: Dataset, positions: list[int], label: str = "") -> float:
        return (await score_samples(self.workflow, values, take(train, positions), self.clients["task"],
                                    self.eval_fn)).mean

    async def validate(self, values: dict[str, str], val: Dataset, must_beat: float | None = None,
                       chunk: int = 16, label: str = "") -> Stage2Result:
        """Chunk by chunk; stops (the rest never run) once the candidate cannot beat `must_beat`."""
        scored, size = ScoreSum(), len(val)
        for start in range(0, size, chunk):
            scored = scored.add(await score_samples(self.workflow, values, shard(val, start, start + chunk),
                                                    self.clients["task"], self.eval_fn))
            if cannot_win(scored, size - scored.count, must_beat):
                break
        return scored.result(size)

    def usage(self) -> dict[str, Usage]:
        return {role: getattr(self.clients.get(role), "usage", Usage()) for role in ROLES}
