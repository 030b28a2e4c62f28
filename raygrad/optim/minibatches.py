"""Where a step's training samples come from: a minibatch of a shuffled pass over the training set, and the
error pool of earlier minibatches.

The pool (trainer.error_pool) keeps error samples of the current values until a candidate is accepted:
until then their scores and gradients still hold, so later steps learn from them without paying for them
again. Stage 1 scores them beside the minibatch.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from raygrad.core.backward import Gradient
from raygrad.core.workflow import gather_all
from raygrad.data import Dataset
from raygrad.optim.execution import BatchOutcome, Executor
from raygrad.optim.state import PooledError, TrainState, note_skipped


@dataclass
class Minibatch:
    """A step's training samples under the current values: what proposals learn from and stage 1 scores."""

    outcome: BatchOutcome  # the drawn minibatch, run: results, demos, gradients
    positions: list[int]  # the drawn minibatch's positions, then the pooled errors'
    current: list[float | None]  # the current values' score at each position (None: a skipped row)
    gradients: list[Gradient]  # of the drawn minibatch's errors and the pooled ones
    score: float  # the current values' mean over `positions`, failed samples counted as 0
    drawn_score: float  # the same over the drawn minibatch alone (what the step records)
    errors: int  # error samples in the drawn minibatch
    pooled: int  # pooled errors of earlier minibatches added


class Minibatches:
    """Draws `batch_size` positions a step, reshuffling at the end of each pass; with `batches_until_error`
    above 1, draws again (up to that many) until a minibatch holds an error sample."""

    def __init__(self, batch_size: int, batches_until_error: int = 1, error_pool: int = 0,
                 error_threshold: float = 1.0):
        self.batch_size, self.batches_until_error = batch_size, batches_until_error
        self.error_pool, self.error_threshold = error_pool, error_threshold

    async def draw(self, state: TrainState, rng: random.Random, train: Dataset, executor: Executor,
                   values: list[dict[str, str]], pooling: list[int]) -> list[Minibatch]:
        """Run the next minibatch of each lane (a step of the round, under its `values`) at once, with backward
        for their errors. The pool holds the best values' errors: only the lanes in `pooling` (those running
        them) add to it, and the pooled errors of earlier steps join the first of them. None pools when only
        demos are trained (their candidates come from the demo pool, not from gradients)."""
        lanes = len(values)
        positions: list[list[int]] = [[] for _ in range(lanes)]
        outcomes: list[BatchOutcome] = [BatchOutcome(results=[]) for _ in range(lanes)]
        waiting = list(range(lanes))
        for attempt in range(self.batches_until_error):  # a minibatch with no error sample teaches nothing
            for lane in waiting:  # drawn in lane order, run at once: the same draws whatever finishes first
                positions[lane] = self._next_positions(state, rng, len(train))
            runs = await gather_all(*(executor.train_batch(values[lane], train, positions[lane],
                                                           label=f"step{state.step + lane}-batch{attempt or ''}")
                                      for lane in waiting))
            for lane, outcome in zip(waiting, runs):
                outcomes[lane] = outcome
            waiting = [lane for lane in waiting if not any(self._is_error(r.score) for r in outcomes[lane].results)]
            if not waiting:
                break
        pooled = self._pool(state, [positions[lane] for lane in pooling], [outcomes[lane] for lane in pooling]) \
            if pooling else []
        first = pooling[0] if pooling else None
        return [self._minibatch(state, positions[lane], outcomes[lane], pooled if lane == first else [])
                for lane in range(lanes)]

    def _minibatch(self, state: TrainState, positions: list[int], outcome: BatchOutcome,
                   pooled: list[PooledError]) -> Minibatch:
        note_skipped(state, [r.error or "" for r in outcome.results if r.skipped])
        counted = [r for r in outcome.results if not r.skipped]
        score = sum(r.score for r in outcome.results if r.score is not None) / len(counted) if counted else 0.0
        current: list[float | None] = [None if r.skipped else r.score or 0.0 for r in outcome.results]
        with_pooled = (score * len(counted) + sum(e.score for e in pooled)) / (len(counted) + len(pooled)) \
            if pooled else score
        return Minibatch(outcome=outcome, positions=positions + [e.position for e in pooled],
                         current=current + [e.score for e in pooled],
                         gradients=outcome.gradients + [g for e in pooled for g in e.gradients],
                         score=with_pooled, drawn_score=score,
                         errors=sum(self._is_error(r.score) for r in outcome.results), pooled=len(pooled))

    def _is_error(self, score: float | None) -> bool:
        return score is not None and score < self.error_threshold

    def _next_positions(self, state: TrainState, rng: random.Random, size: int) -> list[int]:
        batch = []
        while len(batch) < self.batch_size:
            if state.cursor >= len(state.order):
                state.order, state.cursor = rng.sample(range(size), size), 0
            batch.append(state.order[state.cursor])
            state.cursor += 1
        return batch

    def _pool(self, state: TrainState, positions: list[list[int]], outcomes: list[BatchOutcome]
              ) -> list[PooledError]:
        """Add the minibatches' errors to the pool; return the pooled errors of earlier steps (those drawn
        again were just run again, so their fresh results stand)."""
        if not self.error_pool:
            return []
        fresh = {p for lane in positions for p in lane}
        state.error_pool = [e for e in state.error_pool if e.position not in fresh] + [
            PooledError(position=p, score=r.score or 0.0,
                        gradients=[g for g in outcome.gradients if g.sample_id == r.id])
            for lane, outcome in zip(positions, outcomes)
            for p, r in zip(lane, outcome.results) if self._is_error(r.score)]
        state.error_pool = state.error_pool[-self.error_pool:]
        return [e for e in state.error_pool if e.position not in fresh]
