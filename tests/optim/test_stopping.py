"""When a run ends: its steps done, or stalled (trainer.patience)."""
from __future__ import annotations

from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.runs.rundir import CheckpointFile
from raygrad.tasks import ObjectCount
from raygrad.testing import RESPONDERS, ScriptedLLM, object_count_examples


async def run(patience: int | None, checkpoint: CheckpointFile | None = None) -> tuple:
    clients = {role: ScriptedLLM(RESPONDERS["object_count_trainer"]) for role in ("task", "backward", "optimizer")}
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                          TrainerConfig(steps=40, batch_size=4, proposals=3, seed=2, patience=patience),
                          checkpoint=checkpoint).fit(object_count_examples(40, 10), object_count_examples(30, 11))
    return state, sum(len(c.calls) for c in clients.values())


async def test_a_run_with_patience_finishes_once_that_many_steps_in_a_row_accepted_nothing(tmp_path):
    every, every_calls = await run(None)
    assert len(every.steps) == 40  # without it, the steps run out: the control
    accepted = [bool(s.accepted) for s in every.steps]
    # The first stretch of 5 steps that accepted nothing ends where a patience of 5 stops the run.
    stall = next(i for i in range(5, 41) if not any(accepted[i - 5:i]))
    assert stall < 40 and any(accepted[stall:])  # it stops a run that would still have gained later
    patient, patient_calls = await run(5, CheckpointFile(tmp_path / "run.json"))
    assert len(patient.steps) == stall and patient.stopped is None
    assert [s.accepted for s in patient.steps] == [s.accepted for s in every.steps[:stall]]
    assert patient_calls < every_calls
    # Finished, not stopped: resumed, it takes no step and pays no call.
    resumed, resumed_calls = await run(5, CheckpointFile(tmp_path / "run.json"))
    assert len(resumed.steps) == stall and resumed_calls == 0
