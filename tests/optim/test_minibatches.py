"""Where a step's samples come from: running the coming steps' minibatches ahead."""
from __future__ import annotations

from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.tasks import ObjectCount
from raygrad.testing import RESPONDERS, ScriptedLLM, object_count_examples


async def run(lookahead: int) -> tuple:
    clients = {role: ScriptedLLM(RESPONDERS["object_count_trainer"]) for role in ("task", "backward", "optimizer")}
    trainer = Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                      TrainerConfig(steps=8, batch_size=4, proposals=3, seed=3, lookahead=lookahead))
    state = await trainer.fit(object_count_examples(40, 10), object_count_examples(30, 11))
    task_calls = len(clients["task"].calls)
    return state, trainer.minibatches, task_calls, len(clients["backward"].calls)


async def test_running_ahead_takes_the_same_decisions_and_pays_only_for_minibatches_no_step_took():
    plain, _, plain_task, plain_backward = await run(0)
    ahead, minibatches, ahead_task, ahead_backward = await run(2)
    assert [s.accepted for s in plain.steps].count([]) >= 2  # steps that kept the values, whose minibatch can be taken
    assert any(s.accepted for s in plain.steps)  # and steps after which the runs ahead were of old values
    assert ahead.values == plain.values and ahead.candidates == plain.candidates
    assert [(s.batch, s.errors, s.accepted) for s in ahead.steps] == [(s.batch, s.errors, s.accepted)
                                                                       for s in plain.steps]
    assert minibatches.taken >= 2 and minibatches.wasted >= 1
    # Every call beyond the plain run's belongs to a minibatch run ahead that no step took (4 samples, and
    # one backward call per error sample).
    assert 0 < ahead_task - plain_task <= 4 * minibatches.wasted
    assert 0 <= ahead_backward - plain_backward <= 4 * minibatches.wasted
