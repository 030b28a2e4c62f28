"""What a run's checkpoint holds: the trainer's state between steps, and its records of steps and candidates."""
from __future__ import annotations

import hashlib
import json
from typing import Protocol

from pydantic import BaseModel, Field

from raygrad.core.backward import Gradient
from raygrad.llm.client import Usage
from raygrad.optim.demos import Demo
from raygrad.optim.evaluate import Raised
from raygrad.optim.optimizer import ScoredValue


class CandidateRecord(BaseModel):
    step: int
    parameter: str  # with joint candidates (trainer.candidates), the parameters it changes, comma-separated
    value: str  # with several parameters, their values as a JSON object
    stage1: float | None = None
    stage2: float | None = None
    accepted: bool = False
    reason: str = ""

    def changes(self) -> dict[str, str]:
        """The new value of each parameter this candidate changes: the inverse of shown()."""
        names = self.parameter.split(",")
        return json.loads(self.value) if len(names) > 1 else {names[0]: self.value}


class StepRecord(BaseModel):
    step: int
    batch: list[str]
    batch_score: float
    errors: int
    best_val: float
    accepted: list[str] = Field(default_factory=list)
    usage: dict[str, Usage] = Field(default_factory=dict)  # per role, spent by the end of this step
    unparsed_gradients: int = 0  # backward-engine replies that did not parse (no gradient from them)
    unparsed_proposals: int = 0  # optimizer replies that did not parse (no candidate from them)
    failed_gradients: int = 0  # backward-engine calls that failed (no gradient from them)
    failed_proposals: int = 0  # optimizer calls that failed (no candidate from them)
    unparsed_example: str | None = None  # one backward or optimizer reply of this step that did not parse
    raised: dict[str, Raised] = Field(default_factory=dict)  # samples whose workflow raised: minibatch and stage 2
    gradient_samples: dict[str, int] = Field(default_factory=dict)  # per parameter: error samples that gave it one
    parent: int | None = None  # trainer.parents: pareto: the pool position it built on, when not the best values
    merged: list[int] = Field(default_factory=list)  # trainer.merges: the pool pair whose merge this step validated


class PooledError(BaseModel):
    """An error sample of the current values, kept until a candidate is accepted: until then its score and
    gradients still hold, so later steps learn from it without paying for it again."""

    position: int
    score: float
    gradients: list[Gradient]


class PoolMember(BaseModel):
    """A fully validated set of values in the candidate pool (trainer.parents: pareto)."""

    values: dict[str, str]
    score: float
    missed: list[int]  # validation positions it scored below 1 or failed (Stage2Result.weak)
    parents: list[int] = Field(default_factory=list)  # pool positions it was built on (two for a merge)


class TrainState(BaseModel):
    """Everything needed to continue a run; written atomically after every step."""

    step: int = 0
    values: dict[str, str]
    initial_val: float
    best_val: float
    history: dict[str, list[ScoredValue]]
    failed: dict[str, list[str]] = Field(default_factory=dict)  # per parameter: values validation rejected
    demo_pool: dict[str, list[Demo]] = Field(default_factory=dict)
    order: list[int] = Field(default_factory=list)
    cursor: int = 0
    rng_state: list = Field(default_factory=list)
    usage: dict[str, Usage] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    candidates: list[CandidateRecord] = Field(default_factory=list)
    stopped: str | None = None
    elapsed_s: float = 0.0  # wall time spent in fit() over every session of this run
    skipped_rows: list[str] = Field(default_factory=list)  # bad rows of sharded files met so far (data.skip_bad_rows)
    error_pool: list[PooledError] = Field(default_factory=list)  # trainer.error_pool: errors since the last acceptance
    # The most each set of values validated so far could score (digest of all values -> strict score, or the
    # best it could not beat when stopped early): the same prompt is never paid for twice in stage 2.
    validated: dict[str, float] = Field(default_factory=dict)
    # Validation positions the current values score below 1 (or fail): stage 2 runs them first, where a
    # candidate can gain, so one that gains nothing is rejected before the rest are paid for.
    val_weak: list[int] = Field(default_factory=list)
    # trainer.early_acceptance: the samples best_val was measured on when it is an estimate (None: all of them).
    best_val_samples: int | None = None
    initial_raised: dict[str, Raised] = Field(default_factory=dict)  # samples of the initial validation that raised
    pool: list[PoolMember] = Field(default_factory=list)  # trainer.parents: pareto; the initial values first
    merges: list[list[int]] = Field(default_factory=list)  # trainer.merges: the pool pairs whose merge was tried


class CheckpointStore(Protocol):
    """Where the trainer keeps its state between steps (raygrad.runs.rundir.CheckpointFile is one)."""

    def load(self) -> str | None: ...

    def save(self, text: str) -> None: ...


def shown(change: dict[str, str | None]) -> str | None:
    """A candidate's value (or parent) as recorded: the value itself, or each parameter's under its name when joint."""
    return next(iter(change.values())) if len(change) == 1 else json.dumps(change, ensure_ascii=False)


def values_digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:32]


def note_skipped(state: TrainState, reasons: list[str]) -> None:
    """Remember bad rows left out of sharded files, each once (there are as many as the file has)."""
    known = set(state.skipped_rows)
    state.skipped_rows += [reason for reason in dict.fromkeys(reasons) if reason not in known]
