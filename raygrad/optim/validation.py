"""How candidates are validated: two stages, each candidate in turn, the first to pass accepted.

Stage 1 scores a candidate on the step's minibatch (and pooled errors); only one that beats the current
values there has stage 2, a validation-set score that must beat the best so far. Early rejection runs
the samples where the current values fall short first and stops a candidate once it cannot win;
early acceptance (a confidence) stops one once it wins with that confidence.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from raygrad.data import Dataset
from raygrad.optim.evaluate import add_raised
from raygrad.optim.execution import TIE, Executor, SamplesFailed, Stage2Result
from raygrad.optim.state import CandidateRecord, StepRecord, TrainState, note_skipped, shown, values_digest


@dataclass
class Candidate:
    """New values for some parameters, proposed from one minibatch (a lane of the round), which stage 1 scores
    it on: `positions` (pooled errors included), the lane's values' scores there (`current`; None when
    unknown, after an acceptance earlier in the step) and their mean `bar`, which it must beat. The change
    applies to the current values, or to `base` when its lane built on other ones (a pool member); `parents`
    are the pool positions it was built on."""

    change: dict[str, str]
    lane: int
    positions: list[int]
    current: list[float | None] | None
    bar: float
    base: dict[str, str] = field(default_factory=dict)
    parents: list[int] = field(default_factory=list)

    def values(self, current: dict[str, str]) -> dict[str, str]:
        return {**current, **self.base, **self.change}


@dataclass
class Passed:
    """The candidate that passed both stages, its record and its stage-2 result."""

    candidate: Candidate
    record: CandidateRecord
    result: Stage2Result


class TwoStageValidation:
    """Validates candidates in order until one passes: the first to pass is accepted.

    `width` candidates have stage 1 at once; as one is decided the next starts. A candidate's stage 2
    waits for its turn (every candidate before it decided): run ahead, it was paid for nothing whenever
    one before it passed, and the calls that cost (1.17x to 1.78x one at a time's, with 5 and 10 at
    once) outweighed the little wall time it saved. Decisions are taken in order, exactly as one at a
    time takes them (the same candidate accepted, the same values recorded as failed); once one is
    accepted, those after it are stopped. What it costs is their stage-1 calls.
    `stage1` off sends every candidate to stage 2. `stage2_per_group` bounds the stage-2 validations of one
    call's candidates: once that many failed, the gradients were likely noise and the rest are dropped.
    `min_gain`: a candidate must beat the best validation score by more than this to pass stage 2 (a gain
    within a small validation set's noise is then not taken).
    """

    def __init__(self, executor: Executor, *, stage1: bool = True, early_rejection: bool = True,
                 early_acceptance: float | None = None, stage2_per_group: int | None = None, chunk: int = 16,
                 width: int = 1, min_gain: float = 0.0):
        self.executor, self.stage1, self.early_rejection = executor, stage1, early_rejection
        self.min_gain = min_gain
        self.early_acceptance = early_acceptance
        self.stage2_per_group, self.chunk, self.width = stage2_per_group, chunk, width

    async def first_to_pass(self, state: TrainState, records: list[StepRecord], candidates: list[Candidate],
                            values: dict[str, str], train: Dataset, val: Dataset,
                            admit: Callable[[dict[str, str], Stage2Result, list[int]], bool] | None = None
                            ) -> Passed | None:
        """Each candidate (a change to the current `values`) through both stages; rejected ones are recorded in
        `state` (their values as failed) and the one accepted is returned, not applied. `records` are the
        round's steps, by lane. With `admit` (a candidate pool), stage 2 runs to the end and every candidate
        validated in full is offered to it: `admit(values, result, parents)` says whether it joined."""
        trials = [_Trial(c, state, f"step{state.step + c.lane}-{','.join(c.change)}-{number}", c.values(values),
                         admit) for c, number in zip(candidates, _numbers(candidates))]
        ahead: dict[int, asyncio.Task] = {}  # each candidate's stages, as far as they go with the values as they are
        try:
            validations = 0
            for number, trial in enumerate(trials):
                for later in range(number, min(number + self.width, len(trials))):
                    if later not in ahead:
                        ahead[later] = asyncio.ensure_future(self._through(state, trials[later], train, val))
                if validations == self.stage2_per_group:
                    break  # its stage-2 validations this step all failed: the gradients were likely noise
                trial.turn.set()
                await ahead[number]
                state.candidates.append(trial.record)
                known = self._known(state, trial)
                if known is not None:  # proposed again: its score is known
                    trial.reject(f"stage 2 before: at most {known:.3f} <= best {state.best_val:.3f}"
                                 f"{self._gain_text()}")
                    continue
                if self.stage1 and not trial.beats_bar():
                    continue
                validations += 1
                if self._judge(state, records[trial.candidate.lane], trial):
                    return Passed(candidate=trial.candidate, record=trial.record, result=trial.stage2)
            return None
        finally:  # stage 1 run ahead of a decision already taken is not needed: stopped (sent calls are journaled)
            for task in ahead.values():
                task.cancel()
            await asyncio.gather(*ahead.values(), return_exceptions=True)

    async def _through(self, state: TrainState, trial: _Trial, train: Dataset, val: Dataset) -> None:
        """A candidate's stages as far as it gets with the values as they are: none when its score is known,
        stage 2 only if it beats its bar in stage 1, and only once its turn has come."""
        if self._known(state, trial) is not None:
            return
        if self.stage1:
            if trial.stage1 is None:
                await trial.run_stage1(self, train)
            if trial.stage1[0] <= trial.candidate.bar + TIE:
                return
        await trial.turn.wait()
        if self._known(state, trial) is not None:  # the same values, proposed before it, were validated meanwhile
            return
        trial.stage2 = await self._stage2(state, trial.values, val, f"{trial.label}-stage2",
                                          full=trial.admit is not None)

    def _judge(self, state: TrainState, record: StepRecord, trial: _Trial) -> bool:
        """Record a stage 2; True when the candidate beats the best so far."""
        result = trial.stage2
        trial.record.stage2 = result.strict_score  # failed samples count against the candidate
        record.raised = add_raised(record.raised, result.raised)
        if not result.failed:
            state.validated[values_digest(trial.values)] = self._bar(state) if result.stopped_early else \
                result.strict_score
        note_skipped(state, result.skipped)
        pooled = not result.failed and not result.stopped_early and trial.admit is not None and \
            trial.admit(trial.values, result, trial.candidate.parents)
        bar = self._bar(state)
        if result.failed and not result.stopped_early and result.strict_score > bar + TIE:
            raise SamplesFailed(f"{result.failed} of {result.evaluated} validation samples of a candidate for "
                                f"{trial.record.parameter} failed, so it cannot be kept as best (the first: "
                                f"{result.first_error})")
        if result.stopped_early or result.strict_score <= bar + TIE:
            trial.reject(f"stage 2: cannot beat {state.best_val:.3f}{self._gain_text()} after {result.evaluated}/"
                         f"{result.total} samples" if result.stopped_early else
                         f"stage 2: {result.strict_score:.3f} <= best {state.best_val:.3f}{self._gain_text()}"
                         f"{' (kept in the pool)' if pooled else ''}")
            return False
        trial.record.accepted = True
        trial.record.reason = (f"accepted after {result.evaluated}/{result.total} samples (score estimated)"
                               if result.estimated else "accepted")
        return True

    async def _stage2(self, state: TrainState, values: dict[str, str], val: Dataset, label: str,
                      full: bool = False) -> Stage2Result:
        must_beat, first = (self._bar(state), state.val_weak) if self.early_rejection and not full else (None, [])
        return await self.executor.validate(values, val, must_beat=must_beat, chunk=self.chunk, label=label,
                                            first=first, accept_confidence=self.early_acceptance)

    def _known(self, state: TrainState, trial: _Trial) -> float | None:
        """The most the trial's values could score, when they were validated before and cannot pass."""
        known = state.validated.get(values_digest(trial.values))
        return known if known is not None and known <= self._bar(state) + TIE else None

    def _bar(self, state: TrainState) -> float:
        """What a candidate's validation score must exceed to pass stage 2."""
        return state.best_val + self.min_gain

    def _gain_text(self) -> str:
        return f" + min_gain {self.min_gain:g}" if self.min_gain else ""

    async def stage1_score(self, values: dict[str, str], train: Dataset, positions: list[int],
                      current: list[float | None] | None, label: str) -> tuple[float, bool]:
        """A candidate's minibatch score, and whether it was cut short.

        With early rejection and the current value's per-sample scores known (None: a skipped row), the
        samples the current value scored below 1 (metrics score in [0, 1]) run first. A candidate that
        gains nothing on them cannot beat it, so the rest never run; the score returned is then the
        most the candidate could have reached.
        """
        if not self.early_rejection or current is None:
            return await self.executor.score(values, train, positions, label=label), False
        weak = [(p, s) for p, s in zip(positions, current) if s is not None and s < 1.0]
        perfect = [p for p, s in zip(positions, current) if s is not None and s >= 1.0]
        if not weak or not perfect:
            return await self.executor.score(values, train, positions, label=label), False
        gained = len(weak) * await self.executor.score(values, train, [p for p, _ in weak], label=label)
        if gained <= sum(s for _, s in weak) + TIE:
            return (gained + len(perfect)) / (len(weak) + len(perfect)), True
        kept = len(perfect) * await self.executor.score(values, train, perfect, label=label)
        return (gained + kept) / (len(weak) + len(perfect)), False


class _Trial:
    """One candidate on its way through the stages, and their results."""

    def __init__(self, candidate: Candidate, state: TrainState, label: str, values: dict[str, str],
                 admit: Callable[[dict[str, str], Stage2Result, list[int]], bool] | None = None):
        self.candidate, self.state, self.label, self.values, self.admit = candidate, state, label, values, admit
        self.record = CandidateRecord(step=state.step + candidate.lane, parameter=",".join(candidate.change),
                                      value=shown(candidate.change))
        self.stage1: tuple[float, bool] | None = None  # its minibatch score, and whether that was cut short
        self.stage2: Stage2Result | None = None
        self.turn = asyncio.Event()  # set once every candidate before it is decided: its stage 2 may start

    def reject(self, reason: str) -> None:
        self.record.reason = reason
        for parameter, value in self.candidate.change.items():
            self.state.failed.setdefault(parameter, []).append(value)

    async def run_stage1(self, validation: TwoStageValidation, train: Dataset) -> None:
        c = self.candidate
        self.stage1 = await validation.stage1_score(self.values, train, c.positions, c.current, f"{self.label}-stage1")

    def beats_bar(self) -> bool:
        score, cut = self.stage1
        self.record.stage1 = score
        if score <= self.candidate.bar + TIE:
            self.reject(f"stage 1: {'at most ' if cut else ''}{score:.3f} <= current {self.candidate.bar:.3f} "
                        "on the minibatch")
            return False
        return True


def _numbers(candidates: list[Candidate]) -> list[int]:
    """Each candidate's number among its lane's (what its evaluations are labelled with)."""
    seen: dict[int, int] = {}
    numbers = []
    for candidate in candidates:
        numbers.append(seen.get(candidate.lane, 0))
        seen[candidate.lane] = numbers[-1] + 1
    return numbers
