"""Candidates and steps at once: `parallel_candidates` takes exactly the decisions of one at a time;
`parallel_steps` runs rounds of steps that decide the same whatever finishes first, and resume."""
from __future__ import annotations

import asyncio
import random

import pytest

from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.testing import ScriptedLLM
from raygrad.testing.weak_prompts import TRAINER_RESPONDERS as TASKS
from raygrad.testing.weak_prompts import from_weak_prompts


class Shuffled(ScriptedLLM):
    """Answers after a random delay, so calls made at once finish in any order."""

    def __init__(self, responder: str, seed: int):
        super().__init__(responder)
        self.rng = random.Random(seed)

    async def complete(self, messages, **kwargs):
        await asyncio.sleep(self.rng.random() * 0.002)
        return await super().complete(messages, **kwargs)


def optimize(task: str, seed: int, delays: int | None = None, **setting):
    """The trainer's state and the most stage-1 scores that were in flight at once."""
    workflow, metric, train, val = from_weak_prompts(task)
    clients = {role: ScriptedLLM(TASKS[task]) if delays is None else Shuffled(TASKS[task], delays + n)
               for n, role in enumerate(("task", "backward", "optimizer"))}
    config = TrainerConfig(steps=8, batch_size=4, proposals=5, seed=seed, **setting)
    trainer = Trainer(workflow, metric, clients, config)
    in_flight, most = 0, 0
    score = trainer.executor.score

    async def counted(*args, **kwargs):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await score(*args, **kwargs)
        finally:
            in_flight -= 1

    trainer.executor.score = counted
    state = asyncio.run(trainer.fit(train, val))
    return state, most, sum(len(c.calls) for c in clients.values())


def decisions(state) -> tuple:
    return state.values, state.best_val, state.failed, state.candidates


@pytest.mark.parametrize("task", ["objectcount", "multihop", "agent"])
def test_candidates_validated_at_once_are_decided_exactly_as_one_at_a_time(task):
    one, one_in_flight, one_calls = optimize(task, 0)
    wide, wide_in_flight, wide_calls = optimize(task, 0, delays=1, parallel_candidates=5)
    # The same records (scores, reasons, the accepted), the same failed values shown to the optimizer.
    assert decisions(wide) == decisions(one)
    assert one_in_flight == 1 and wide_in_flight > 1  # several candidates' stage 1 at once
    assert wide_calls >= one_calls  # what it costs: the stage 1 of candidates after an accepted one


def test_steps_run_at_once_are_numbered_in_turn_decide_whatever_finishes_first_and_resume_to_the_same_result(
        tmp_path):
    from raygrad.runs.rundir import CheckpointFile

    wide = {"parallel_steps": 3, "parallel_candidates": 4}
    state, in_flight, _ = optimize("multihop", 1, **wide)
    shuffled, _, _ = optimize("multihop", 1, delays=7, **wide)
    assert [s.step for s in state.steps] == list(range(8)) and state.step == 8  # rounds of 3, 3 and 2 steps
    assert len({tuple(s.batch) for s in state.steps[:3]}) == 3  # each step of a round has its own minibatch
    assert decisions(shuffled) == decisions(state) and in_flight > 1
    assert any(c.accepted and c.step % 3 for c in state.candidates)  # a later step of a round can win
    # Stopped after the first round, then resumed: the result of the uninterrupted run.
    workflow, metric, train, val = from_weak_prompts("multihop")
    path = tmp_path / "checkpoint.json"

    def config(steps: int) -> TrainerConfig:
        return TrainerConfig(steps=steps, batch_size=4, proposals=5, seed=1, **wide)

    clients = {role: ScriptedLLM(TASKS["multihop"]) for role in ("task", "backward", "optimizer")}

    def fit(steps: int):
        return asyncio.run(Trainer(workflow, metric, clients, config(steps), checkpoint=CheckpointFile(path)
                                   ).fit(train, val))

    assert fit(3).step == 3
    resumed = fit(8)
    assert decisions(resumed) == decisions(state)


def accepted_gains(state) -> list[float]:
    """How much each accepted candidate raised the best validation score."""
    best, gains = state.initial_val, []
    for record in state.candidates:
        if record.accepted:
            gains.append(record.stage2 - best)
            best = record.stage2
    return gains


@pytest.mark.parametrize("task", ["objectcount", "multihop"])
def test_a_minimum_gain_accepts_only_candidates_that_beat_the_best_by_more_than_it(task):
    plain, _, _ = optimize(task, 0)
    assert min(accepted_gains(plain)) <= 0.1  # without it, a candidate passes on a gain of a sample or two
    strict, _, _ = optimize(task, 0, min_gain=0.1)
    assert accepted_gains(strict) and all(gain > 0.1 for gain in accepted_gains(strict))
    assert any("+ min_gain 0.1" in record.reason for record in strict.candidates if not record.accepted)
