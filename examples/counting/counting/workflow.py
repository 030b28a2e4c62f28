"""Count, then answer: two LLM calls, a tool between them, and a retry loop.

The first call lists the items of the asked category with their quantities, a plain function adds the
quantities up, and the second call writes the answer from the question and the tool's total. When the
tool finds no quantity in the list, the workflow asks for the list again (at most `attempts` times).
"""
from __future__ import annotations

import re

from raygrad import Function, LLMCall, Parameter, Workflow

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def add_up(listing: str) -> int | None:
    """The sum of the quantities at the start of each line ('2 pianos'), or None if there is none."""
    found = []
    for line in listing.splitlines():
        match = re.match(r"\s*[-*]?\s*(\d+|" + "|".join(NUMBER_WORDS) + r")\b", line.lower())
        if match:
            word = match.group(1)
            found.append(int(word) if word.isdigit() else NUMBER_WORDS.index(word))
    return sum(found) if found else None


class CountThenAnswer(Workflow):
    default_eval = "counting.metrics:count_with_feedback"

    def __init__(self, attempts: int = 2):
        self.list_instruction = Parameter(
            "List the items of the category the question asks about, one per line, each with its quantity.",
            description="tells the first call which items to list and how")
        self.answer_instruction = Parameter(
            "Answer the question using the total.", description="tells the second call how to use the tool's total")
        self.answer_format = Parameter("Reply with the number.", role="output format",
                                       description="the form of the final answer, which the metric reads")
        self.list_items = LLMCall(system=[self.list_instruction])
        self.add_up = Function(add_up)
        self.answer = LLMCall(system=[self.answer_instruction, self.answer_format])
        self.attempts = attempts

    async def forward(self, question: str) -> str:
        total = None
        for _ in range(self.attempts):  # a loop: each attempt is its own node in the trace
            listing = await self.list_items(question=question)
            total = await self.add_up(listing)
            if total is not None:
                break
        return await self.answer(question=question, total=total)


class CountInOneCall(Workflow):
    """The baseline to compare with: one call answers directly."""

    default_eval = "counting.metrics:count_with_feedback"

    def __init__(self):
        self.instruction = Parameter("Count the items of the category the question asks about.",
                                     description="tells the model what to count")
        self.answer_format = Parameter("Reply with the number.", role="output format")
        self.answer = LLMCall(system=[self.instruction, self.answer_format])

    async def forward(self, question: str) -> str:
        return await self.answer(question=question)
