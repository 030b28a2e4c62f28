"""Running the trainer's samples: the plain async functions, and LocalExecutor (this process, no Ray).

The trainer decides (what to propose, what to accept); an executor runs samples for it: a training
minibatch with backward for its errors, a stage-1 score, a stage-2 validation with early rejection.
The plain async functions here are what the Ray actors call too, so the algorithm has one copy.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from statistics import NormalDist
from typing import Any, Protocol

from pydantic import BaseModel, Field

from raygrad.core.backward import Gradient, backward, textual_loss
from raygrad.core.workflow import ChatClient, Trace, Workflow, gather_all
from raygrad.data import Dataset, Example, shard, take
from raygrad.llm.client import Usage
from raygrad.llm.models import ROLES, role_of
from raygrad.optim.demos import Demo, collect_demos, labeled_demos
from raygrad.optim.evaluate import Clients, Raised, SampleResult, add_raised, count_raised, run_sample
from raygrad.optim.metrics import Metric, as_metric


class BackwardCounts(BaseModel):
    """What went wrong with a minibatch's backward-engine calls: replies that did not parse (one shown), calls
    that failed."""

    unparsed: int = 0
    failed: int = 0
    example: str | None = None  # one reply that did not parse, and why


class BatchOutcome(BaseModel):
    """A training minibatch, run: per-sample results, demos from correct samples, gradients of errors."""

    results: list[SampleResult]
    demos: dict[str, list[Demo]] = Field(default_factory=dict)
    gradients: list[Gradient] = Field(default_factory=list)
    backward: BackwardCounts = Field(default_factory=BackwardCounts)


class SamplesFailed(RuntimeError):
    """A validation pass in which samples failed: not a score to keep as best. Nothing is checkpointed
    from it; the same command, once the provider answers, scores them for real."""


# Scores are means of floats summed in different orders: a difference this small is a tie, not a gain.
TIE = 1e-9
MAX_WEAK = 4096  # weak positions kept (the lowest): stage 2 only runs them first, so a cut costs order, not correctness


class Stage2Result(BaseModel):
    score: float  # mean over the samples that completed (what is reported)
    strict_score: float  # failed samples counted as 0: what candidates are compared on, so failing cannot win
    evaluated: int
    total: int
    stopped_early: bool
    failed: int = 0  # samples whose calls never succeeded: not scored, reported apart from wrong answers
    first_error: str | None = None  # why the first failed sample failed
    skipped: list[str] = Field(default_factory=list)  # bad rows of a sharded file, left out (data.skip_bad_rows)
    weak: list[int] = Field(default_factory=list)  # positions that scored below 1 or failed (the first MAX_WEAK)
    estimated: bool = False  # accepted early: the samples not run count at the rate of the run ones like them
    raised: dict[str, Raised] = Field(default_factory=dict)  # error samples whose workflow raised, per type
    first_traceback: str | None = None  # of the first of them


class ScoreSum(BaseModel):
    """Scores of a shard, summed so shards combine: mean = total / completed."""

    total: float = 0.0
    completed: int = 0
    count: int = 0  # samples run, skipped rows included
    skipped: list[str] = Field(default_factory=list)  # bad rows of a sharded file, left out: why each was
    first_error: str | None = None
    samples: list[SampleResult] = Field(default_factory=list)  # only when asked for (the samples table)
    weak: list[int] = Field(default_factory=list)  # positions scored below 1 or failed (when positions were given)
    raised: dict[str, Raised] = Field(default_factory=dict)  # samples whose workflow raised, per exception type
    first_traceback: str | None = None

    def add(self, other: "ScoreSum") -> "ScoreSum":
        return ScoreSum(total=self.total + other.total, completed=self.completed + other.completed,
                        count=self.count + other.count, skipped=self.skipped + other.skipped,
                        first_error=self.first_error or other.first_error,
                        weak=sorted(self.weak + other.weak)[:MAX_WEAK], raised=add_raised(self.raised, other.raised),
                        first_traceback=self.first_traceback or other.first_traceback)

    @property
    def mean(self) -> float:
        return self.total / self.completed if self.completed else 0.0

    @property
    def strict_mean(self) -> float:
        """Failed samples counted as 0: a candidate whose calls fail cannot win on its survivors."""
        return self.total / self.counted if self.counted else 0.0

    @property
    def counted(self) -> int:
        """Samples that count: all but skipped rows."""
        return self.count - len(self.skipped)

    def result(self, size: int) -> Stage2Result:
        return Stage2Result(score=self.mean, strict_score=self.strict_mean, evaluated=self.count, total=size,
                            stopped_early=self.count < size, failed=self.counted - self.completed,
                            first_error=self.first_error, skipped=self.skipped, weak=sorted(self.weak),
                            raised=self.raised, first_traceback=self.first_traceback)


def cannot_win(scored: ScoreSum, remaining: int, must_beat: float | None) -> bool:
    """True once even all remaining samples correct could not lift the strict mean above `must_beat`."""
    if must_beat is None or remaining <= 0:
        return False
    return (scored.total + remaining) / (scored.counted + remaining) <= must_beat


def wilson_lower(successes: float, trials: int, z: float) -> float:
    """The Wilson score interval's lower end for a rate of `successes` in `trials`, `z` standard errors down."""
    if trials <= 0:
        return 0.0
    rate, spread = successes / trials, z * z / trials
    return max(0.0, (rate + spread / 2 - z * math.sqrt(rate * (1 - rate) / trials + spread / (4 * trials)))
               / (1 + spread))


class Stage2Tally:
    """A stage-2 validation as its shards come back, in any order: when it can stop, and what it scored.

    Early rejection (exact): stop once even every remaining sample right could not lift the candidate
    above `must_beat`. Early acceptance (with `accept_confidence`): once the incumbent's misses (`first`)
    have all run, every remaining sample is of the kind run since, the rest of the validation set in
    shards of random order, so the rate on the rest run so far bounds theirs. Stop once the candidate
    would beat `must_beat` with the remaining samples at that rate's one-sided lower bound (Wilson's,
    at the given confidence); its score is then an estimate: the remaining samples at the observed rate.
    """

    def __init__(self, size: int, first: Sequence[int], must_beat: float | None,
                 accept_confidence: float | None = None):
        self.size, self.must_beat, self.first = size, must_beat, set(first)
        self.shuffle = accept_confidence is not None  # the estimate needs the rest in random order
        self.z = NormalDist().inv_cdf(accept_confidence) if accept_confidence and must_beat is not None else None
        self.scored, self.rest = ScoreSum(), ScoreSum()
        self.estimate: float | None = None
        self._waiting: dict[int, tuple[range | list[int], ScoreSum]] = {}
        self._next = 0

    def shards(self, chunk: int) -> Iterator[range | list[int]]:
        """The shards to run, in the order `add` counts them (`validation_shards`)."""
        return validation_shards(self.size, self.first, chunk, shuffle=self.shuffle)

    def add(self, index: int, rows: range | list[int], part: ScoreSum) -> bool:
        """Count the scores of shard number `index` (`rows`: its positions); True once the validation can stop.

        With early acceptance, shards count in the order they were cut, whatever order they come back
        in: the decision, and the samples it rests on, are those of a run in one process (and of a
        resumed run). Early rejection alone is exact, so it counts each shard as it comes.
        """
        if self.z is None:
            return self._count(rows, part)
        self._waiting[index] = (rows, part)
        while self._next in self._waiting:
            rows, part = self._waiting.pop(self._next)
            self._next += 1
            if self._count(rows, part):
                return True
        return False

    def _count(self, rows: range | list[int], part: ScoreSum) -> bool:
        self.scored = self.scored.add(part)
        if self.first.isdisjoint(rows):
            self.rest = self.rest.add(part)
        remaining = self.size - self.scored.count
        if cannot_win(self.scored, remaining, self.must_beat):
            return True
        self.estimate = self._accepted(remaining)
        return self.estimate is not None

    def _accepted(self, remaining: int) -> float | None:
        scored, rest = self.scored, self.rest
        # Counted in cut order, the misses' shards come before any of the rest: a rest sample means all ran.
        if (self.z is None or remaining <= 0 or not rest.counted
                or scored.completed < scored.counted):  # a failed sample: the validation runs to the end
            return None
        counted = scored.counted + remaining
        lowest = (scored.total + remaining * wilson_lower(rest.total, rest.counted, self.z)) / counted
        if lowest <= self.must_beat + TIE:
            return None
        return (scored.total + remaining * rest.total / rest.counted) / counted

    def result(self) -> Stage2Result:
        result = self.scored.result(self.size)
        if self.estimate is None:
            return result
        return result.model_copy(update={"score": self.estimate, "strict_score": self.estimate,
                                         "stopped_early": False, "estimated": True})


def validation_shards(size: int, first: Sequence[int], chunk: int, shuffle: bool = False
                      ) -> Iterator[range | list[int]]:
    """Stage 2's shards, lazily: the positions in `first` (the incumbent's samples below 1), then the rest
    in contiguous ranges (a list where a range would hold a `first` position); with `shuffle`, those
    ranges in a fixed random order.

    Only where the incumbent is wrong can a candidate gain; elsewhere it can only lose. Run first, a
    candidate that gains nothing there is out after those samples (`cannot_win`), and one that gains a
    little is out as soon as it loses as much: the rest of the validation set is not paid for.
    Early acceptance estimates the rest from the part run first: shuffled, a file sorted by (say)
    category or difficulty still gives it a fair sample.
    """
    ahead = sorted(set(first))
    for index in range(0, len(ahead), chunk):
        yield ahead[index:index + chunk]
    done = set(ahead)
    starts = list(range(0, size, chunk))
    if shuffle:
        random.Random(size).shuffle(starts)
    for start in starts:
        span = range(start, min(start + chunk, size))
        if done.isdisjoint(span):
            yield span
        elif rest := [p for p in span if p not in done]:
            yield rest


# -- the plain async functions an executor (or a Ray worker) runs -----------------------------
async def forward_samples(workflow: Workflow, values: dict[str, str], examples: list[Example], clients: Clients,
                          metric: Metric, error_threshold: float, demo_parameters: list[str]
                          ) -> tuple[list[SampleResult], dict[str, list[Demo]], list[tuple[SampleResult, Trace]]]:
    """Run a minibatch: results, demos (bootstrapped from correct samples, labeled from wrong ones), and
    the (result, trace) of error samples."""
    outcomes = await gather_all(*(run_sample(workflow, ex, clients, metric, values) for ex in examples))
    demos: dict[str, list[Demo]] = {name: [] for name in demo_parameters}
    errors = []
    for example, (result, trace) in zip(examples, outcomes):
        if result.score is None or trace is None:
            continue
        correct = result.score >= error_threshold
        for name in demo_parameters:
            demos[name] += collect_demos(trace, result.id, name) if correct else labeled_demos(trace, example, name)
        if not correct:
            errors.append((result, trace))
    return [r for r, _ in outcomes], demos, errors


async def backward_errors(workflow: Workflow, errors: list[tuple[SampleResult, Trace]], engine: ChatClient,
                          eval_name: str) -> tuple[list[Gradient], BackwardCounts]:
    """Textual gradients of error samples only (a correct sample never reaches this function), and what
    went wrong with the backward engine's calls."""
    parameters, unparsed, failed = workflow.parameters(), [], []
    grads = await gather_all(*(backward(
        trace, r.id, r.score or 0.0, textual_loss(r.prediction or "", r.target, r.score or 0.0, eval_name, r.feedback,
                                                  raised=r.raised),
        parameters, engine, unparsed, failed) for r, trace in errors))
    counts = BackwardCounts(unparsed=len(unparsed), failed=len(failed), example=unparsed[0] if unparsed else None)
    return [g for sample in grads for g in sample], counts


async def score_samples(workflow: Workflow, values: dict[str, str], examples: list[Example], clients: Clients,
                        metric: Metric, keep_samples: bool = False, positions: Sequence[int] = ()) -> ScoreSum:
    """The examples' summed scores; with their `positions`, which of them scored below 1 or failed."""
    results = await gather_all(*(run_sample(workflow, ex, clients, metric, values) for ex in examples))
    scores = [r.score for r, _ in results if r.score is not None]
    return ScoreSum(total=sum(scores), completed=len(scores), count=len(examples),
                    skipped=[r.error or "" for r, _ in results if r.skipped],
                    first_error=next((r.error for r, _ in results if r.failed), None),
                    raised=count_raised([r for r, _ in results]),
                    first_traceback=next((r.traceback for r, _ in results if r.raised), None),
                    samples=[r for r, _ in results] if keep_samples else [],
                    weak=[p for p, (r, _) in zip(positions, results) if not r.skipped and (r.score or 0.0) < 1.0])


def rows_of(data: Dataset, positions: range | list[int]) -> list[Example]:
    """The examples of a shard: a contiguous range read as one, scattered positions one by one."""
    return shard(data, positions.start, positions.stop) if isinstance(positions, range) else take(data, positions)


class Executor(Protocol):
    """Runs samples for the trainer. `label` names the evaluation in the samples table, if one is kept."""

    async def train_batch(self, values: dict[str, str], train: Dataset, positions: list[int],
                          label: str = "") -> BatchOutcome: ...

    async def score(self, values: dict[str, str], train: Dataset, positions: list[int], label: str = "") -> float: ...

    async def validate(self, values: dict[str, str], val: Dataset, must_beat: float | None = None,
                       chunk: int = 16, label: str = "", first: Sequence[int] = (),
                       accept_confidence: float | None = None) -> Stage2Result: ...

    def usage(self) -> dict[str, Usage]: ...


def demo_parameters(workflow: Workflow) -> list[str]:
    """The trainable few-shot demo parameters, whose candidates come from correct samples' traces."""
    return sorted(n for n, p in workflow.parameters().items() if p.trainable and p.role == "demos")


class LocalExecutor:
    """Everything in this process and event loop: the engine with no Ray at all.

    `clients` holds the task client (and those of models that LLMCalls name) and the backward
    engine's; `sample_sink(label, samples)` receives the samples of labelled evaluations.
    """

    budget_guard = None  # budgets are enforced by the clients themselves here

    def __init__(self, workflow: Workflow, metric: Metric | Any, clients: Mapping[str, ChatClient], *,
                 error_threshold: float = 1.0, eval_name: str = "",
                 sample_sink: Callable[[str, list[SampleResult]], None] | None = None):
        self.workflow, self.metric, self.clients = workflow, as_metric(metric), clients
        self.error_threshold, self.eval_name = error_threshold, eval_name or self.metric.name
        self.sample_sink = sample_sink

    async def train_batch(self, values: dict[str, str], train: Dataset, positions: list[int],
                          label: str = "") -> BatchOutcome:
        results, demos, errors = await forward_samples(self.workflow, values, take(train, positions), self.clients,
                                                       self.metric, self.error_threshold,
                                                       demo_parameters(self.workflow))
        gradients, counts = await backward_errors(self.workflow, errors, self.clients["backward"], self.eval_name)
        self._sink(label, results)
        return BatchOutcome(results=results, demos=demos, gradients=gradients, backward=counts)

    async def score(self, values: dict[str, str], train: Dataset, positions: list[int], label: str = "") -> float:
        scored = await score_samples(self.workflow, values, take(train, positions), self.clients, self.metric,
                                     keep_samples=bool(label))
        self._sink(label, scored.samples)
        return scored.strict_mean

    async def validate(self, values: dict[str, str], val: Dataset, must_beat: float | None = None,
                       chunk: int = 16, label: str = "", first: Sequence[int] = (),
                       accept_confidence: float | None = None) -> Stage2Result:
        """Chunk by chunk, `first` first; stops (the rest never run) once the candidate cannot beat
        `must_beat`, or, with `accept_confidence`, once it beats it with that confidence (Stage2Tally)."""
        tally = Stage2Tally(len(val), first, must_beat, accept_confidence)
        for index, positions in enumerate(tally.shards(chunk)):
            part = await score_samples(self.workflow, values, rows_of(val, positions), self.clients,
                                       self.metric, keep_samples=bool(label), positions=positions)
            self._sink(label, part.samples)
            if tally.add(index, positions, part):
                break
        return tally.result()

    def _sink(self, label: str, samples: list[SampleResult]) -> None:
        if label and samples and self.sample_sink is not None:
            self.sample_sink(label, samples)

    def usage(self) -> dict[str, Usage]:
        """Per role; calls of models that LLMCalls name count as task calls."""
        spent = {role: Usage() for role in ROLES}
        for name, client in self.clients.items():
            spent[role_of(name)] = spent[role_of(name)].add(getattr(client, "usage", Usage()))
        return spent
