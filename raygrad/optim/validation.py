"""How candidates are validated: two stages, each candidate in turn, the first to pass accepted.

Stage 1 scores a candidate on the step's minibatch (and pooled errors); only one that beats the current
values there has stage 2, a validation-set score that must beat the best so far. Early rejection runs
the samples where the current values fall short first and stops a candidate once it cannot win;
early acceptance (a confidence) stops one once it wins with that confidence.
"""
from __future__ import annotations

from dataclasses import dataclass

from raygrad.core.workflow import gather_all
from raygrad.data import Dataset
from raygrad.optim.evaluate import add_raised
from raygrad.optim.execution import TIE, Executor, SamplesFailed, Stage2Result
from raygrad.optim.state import CandidateRecord, StepRecord, TrainState, note_skipped, shown, values_digest


@dataclass
class Passed:
    """The candidate that passed both stages, its record and its stage-2 result."""

    change: dict[str, str]
    record: CandidateRecord
    result: Stage2Result


class TwoStageValidation:
    """Validates a group's candidates in turn until one passes.

    `stage1` off sends every candidate to stage 2. `concurrent_stage1` scores all the group's candidates on
    the minibatch at once (one round trip; those after the first to pass are scored for nothing).
    `stage2_per_group` bounds the stage-2 validations a group may have per step: once that many failed,
    the gradients were likely noise and the rest are dropped.
    """

    def __init__(self, executor: Executor, *, stage1: bool = True, early_rejection: bool = True,
                 early_acceptance: float | None = None, concurrent_stage1: bool = False,
                 stage2_per_group: int | None = None, chunk: int = 16):
        self.executor, self.stage1, self.early_rejection = executor, stage1, early_rejection
        self.early_acceptance, self.concurrent_stage1 = early_acceptance, concurrent_stage1
        self.stage2_per_group, self.chunk = stage2_per_group, chunk

    async def first_to_pass(self, state: TrainState, record: StepRecord, changes: list[dict[str, str]],
                            values: dict[str, str], positions: list[int], current: list[float | None] | None,
                            batch_score: float, train: Dataset, val: Dataset) -> Passed | None:
        """Each candidate (`changes` to the current `values`) through both stages in turn; rejected ones are
        recorded in `state` (their values as failed), the first to pass is returned, not applied.

        `positions` are the minibatch's (pooled errors included); `current` holds the current values' scores
        there (None: unknown after an acceptance earlier in the step) and `batch_score` their mean, which a
        candidate must beat in stage 1."""
        validations = 0
        candidate_values = [{**values, **change} for change in changes]
        names = [",".join(change) for change in changes]
        labels = [f"step{state.step}-{name}-{number}" for number, name in enumerate(names)]
        first_stage = None
        if self.stage1 and self.concurrent_stage1:
            first_stage = await gather_all(*(self._stage1(candidate, train, positions, current, f"{label}-stage1")
                                             for candidate, label in zip(candidate_values, labels)))
        for number, (change, candidate, name, label) in enumerate(zip(changes, candidate_values, names, labels)):
            if validations == self.stage2_per_group:
                break
            candidate_record = CandidateRecord(step=state.step, parameter=name, value=shown(change))
            state.candidates.append(candidate_record)

            def reject(reason: str) -> None:
                candidate_record.reason = reason
                for parameter, value in change.items():
                    state.failed.setdefault(parameter, []).append(value)

            known = state.validated.get(values_digest(candidate))
            if known is not None and known <= state.best_val + TIE:  # proposed again: its score is known
                reject(f"stage 2 before: at most {known:.3f} <= best {state.best_val:.3f}")
                continue
            if self.stage1:
                candidate_record.stage1, cut = first_stage[number] if first_stage else await self._stage1(
                    candidate, train, positions, current, f"{label}-stage1")
                if candidate_record.stage1 <= batch_score + TIE:
                    reject(f"stage 1: {'at most ' if cut else ''}{candidate_record.stage1:.3f} <= "
                           f"current {batch_score:.3f} on the minibatch")
                    continue
            validations += 1
            result = await self._stage2(state, candidate, val, f"{label}-stage2")
            candidate_record.stage2 = result.strict_score  # failed samples count against the candidate
            record.raised = add_raised(record.raised, result.raised)
            if not result.failed:
                state.validated[values_digest(candidate)] = \
                    state.best_val if result.stopped_early else result.strict_score
            note_skipped(state, result.skipped)
            if result.failed and not result.stopped_early and result.strict_score > state.best_val + TIE:
                raise SamplesFailed(f"{result.failed} of {result.evaluated} validation samples of a candidate for "
                                    f"{name} failed, so it cannot be kept as best (the first: {result.first_error})")
            if result.stopped_early or result.strict_score <= state.best_val + TIE:
                reject(f"stage 2: cannot beat {state.best_val:.3f} after {result.evaluated}/{result.total} samples"
                       if result.stopped_early else f"stage 2: {result.strict_score:.3f} <= best {state.best_val:.3f}")
                continue
            candidate_record.accepted = True
            candidate_record.reason = (f"accepted after {result.evaluated}/{result.total} samples (score estimated)"
                                       if result.estimated else "accepted")
            return Passed(change=change, record=candidate_record, result=result)
        return None

    async def _stage2(self, state: TrainState, values: dict[str, str], val: Dataset, label: str) -> Stage2Result:
        must_beat, first = (state.best_val, state.val_weak) if self.early_rejection else (None, [])
        return await self.executor.validate(values, val, must_beat=must_beat, chunk=self.chunk, label=label,
                                            first=first, accept_confidence=self.early_acceptance)

    async def _stage1(self, values: dict[str, str], train: Dataset, positions: list[int],
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
