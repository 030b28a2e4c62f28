"""An exception in user code is one error sample that teaches: scored 0, its exception the loss's feedback,
counted per type; the run goes on. A workflow that raises on every sample is a bug, stopped with its traceback."""
from __future__ import annotations

import json

import pytest

from raygrad.core.workflow import Function, LLMCall, Parameter, Workflow
from raygrad.errors import WorkflowError
from raygrad.optim.execution import LocalExecutor
from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.tasks.object_count import solve_object_counting
from raygrad.testing import ScriptedLLM, object_count_examples, requested_schema

FORMAT_FIX = "End with 'Answer: N'."


def parse_answer(reply: str) -> int:
    """A strict parser, as real pipelines have: a reply without 'Answer: N' raises."""
    return int(reply.split("Answer:")[1].strip())  # IndexError or ValueError on a malformed reply


class StrictCount(Workflow):
    def __init__(self, instruction: str = "Count the items the question asks about."):
        self.instruction = Parameter(instruction)
        self.count = LLMCall(system=[self.instruction])
        self.parse = Function(parse_answer)

    async def forward(self, question: str) -> int:
        return await self.parse(await self.count(question=question))


def responder(malformed_every: int = 2, backward_asked: list | None = None):
    """Task: right when the prompt holds the format fix; without it every n-th question gets a reply in prose.
    Backward engine: reads the exception in the loss. Optimizer: adds the fix the gradients name."""
    def respond(messages, body):
        schema, user = requested_schema(body), messages[-1]["content"]
        if schema == "FeedbackReply":
            if backward_asked is not None:
                backward_asked.append(user)
            named = "IndexError" in user or "ValueError" in user
            return json.dumps({"feedback": f"Ask the model to {FORMAT_FIX}" if named else "Count more carefully."})
        if schema == "Proposals":
            value = user.split("<VARIABLE", 1)[1].split(">", 1)[1].split("</VARIABLE>")[0].strip()
            fixed = FORMAT_FIX in user.split("<GRADIENTS>")[1].split("</GRADIENTS>")[0]
            return json.dumps({"proposals": [f"{value} {FORMAT_FIX}" if fixed else f"{value} Be careful."]})
        answer = solve_object_counting(user)
        malformed = FORMAT_FIX not in messages[0]["content"] and sum(map(ord, user)) % malformed_every == 0
        return f"I count {answer} of them." if malformed else f"Answer: {answer}"
    return respond


async def test_a_parser_that_raises_makes_error_samples_whose_exception_teaches_the_prompt():
    asked: list[str] = []
    llm = ScriptedLLM(responder(backward_asked=asked))
    clients = {"task": llm, "backward": llm, "optimizer": llm}
    trainer = Trainer(StrictCount(), number_match, clients, TrainerConfig(steps=3, batch_size=4, proposals=1, seed=1))
    state = await trainer.fit(object_count_examples(12, 1), object_count_examples(16, 2))
    raised = {kind: r.count for step in state.steps for kind, r in step.raised.items()}
    assert state.initial_raised and raised  # counted per type, at the start and in the steps
    assert "IndexError" in {**state.initial_raised, **raised}
    assert state.initial_val < 1.0 and state.best_val == 1.0  # learnt from the exceptions: the fix was accepted
    assert FORMAT_FIX in state.values["instruction"]
    assert any("Exception: IndexError" in text and "the prompt's fault" in text for text in asked)


async def test_a_raised_sample_scores_zero_and_is_not_a_failed_sample():
    executor = LocalExecutor(StrictCount(), number_match, {"task": ScriptedLLM(responder(malformed_every=1))})
    result = await executor.validate({}, object_count_examples(6, 3), chunk=3)
    assert result.score == 0.0 and result.failed == 0 and result.evaluated == 6
    assert result.raised["IndexError"].count == 6
    assert result.raised["IndexError"].first.startswith("IndexError: list index out of range")
    assert "parse_answer" in result.first_traceback


async def test_a_workflow_that_raises_on_every_sample_stops_the_run_with_its_traceback():
    llm = ScriptedLLM(responder(malformed_every=1))
    trainer = Trainer(StrictCount(), number_match, {"task": llm, "backward": llm, "optimizer": llm},
                      TrainerConfig(steps=2, batch_size=2))
    with pytest.raises(WorkflowError, match="(?s)raised on every sample.*IndexError x8.*Traceback.*parse_answer"):
        await trainer.fit(object_count_examples(4, 1), object_count_examples(8, 2))
    assert len(llm.calls) == 8


async def test_failed_backward_calls_are_counted():
    from raygrad.llm.client import LLMCallFailed

    task = ScriptedLLM(responder(malformed_every=1))

    class Down(ScriptedLLM):
        async def complete(self, messages, **kwargs):
            raise LLMCallFailed("backward engine down")

    executor = LocalExecutor(StrictCount(), number_match, {"task": task, "backward": Down()})
    outcome = await executor.train_batch({}, object_count_examples(3, 4), [0, 1, 2])
    assert outcome.backward.failed == 3 and outcome.gradients == []


async def test_the_samples_table_shows_which_parameters_each_samples_loss_reached(tmp_path):
    from raygrad.optim.evaluate import evaluate

    report = await evaluate(StrictCount(), object_count_examples(4, 5), ScriptedLLM(responder(malformed_every=2)),
                            number_match)
    rows = {s.id: s.row() for s in report.samples}
    assert all(json.loads(row["reached"]) == {"instruction": "raised in" if row["raised"] else "tag"}
               for row in rows.values())
    assert any(row["raised"] for row in rows.values()) and not all(row["raised"] for row in rows.values())
    report.write_parquet(tmp_path / "s.parquet")
