"""Built-in workflows."""
from __future__ import annotations

from raygrad.config import WorkflowConfig
from raygrad.engine import LLMCall, Parameter, Workflow
from raygrad.evals import EVALS, EvalFn


class SingleCall(Workflow):
    """The generic workflow for any input/target dataset: one LLM call, a system prompt of trainable parts."""

    default_instruction = "Answer the question."
    default_output_format = "Reply with the answer only."
    default_eval = "exact"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, demos: str = ""):
        self.instruction = Parameter(instruction or self.default_instruction, role="instruction")
        self.demos = Parameter(demos, role="demos")  # empty until the demo optimizer finds good ones
        self.output_format = Parameter(output_format or self.default_output_format, role="output format")
        self.answer = LLMCall(system=[self.instruction, self.demos, self.output_format])

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.answer(question=input)


class ObjectCount(SingleCall):
    """BIG-Bench Hard object counting (the paper's ObjectCount), scored by the last number in the reply."""

    default_instruction = "You will answer a reasoning question. Think step by step."
    default_output_format = "Respond with the final answer as a number on the last line, like 'Answer: 5'."
    default_eval = "number"


WORKFLOWS: dict[str, type[SingleCall]] = {"generic": SingleCall, "object_count": ObjectCount}


def build_workflow(config: WorkflowConfig) -> tuple[Workflow, EvalFn]:
    """The workflow and eval function a config names."""
    cls = WORKFLOWS[config.name]
    workflow = cls(instruction=config.instruction, output_format=config.output_format)
    return workflow, EVALS[config.eval or cls.default_eval]
