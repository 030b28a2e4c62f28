"""The generic workflow: one LLM call for any input/target dataset."""
from __future__ import annotations

from raygrad.core.workflow import LLMCall, Parameter, Workflow


class SingleCall(Workflow):
    """One LLM call whose system prompt has three trainable parts: instruction, demos, output format."""

    default_instruction = "Answer the question."
    default_output_format = "Reply with the answer only."
    default_eval = "exact"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, demos: str = ""):
        self.instruction = Parameter(instruction or self.default_instruction, role="instruction",
                                     description="what the model is asked to do with each input")
        self.demos = Parameter(demos, role="demos",  # empty until the demo optimizer finds good ones
                               description="worked examples of inputs and correct outputs")
        self.output_format = Parameter(output_format or self.default_output_format, role="output format",
                                       description="how the reply must be written so the answer can be read off")
        self.answer = LLMCall(system=[self.instruction, self.demos, self.output_format])

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.answer(question=input)
