"""TREC-style question classification (the paper's TREC task): its workflow with a parser node, the
60 questions shipped with raygrad, and the simulated provider's answers."""
from __future__ import annotations

import functools
import re
from typing import Any

from raygrad.core.workflow import Function
from raygrad.tasks.generic import SingleCall
from raygrad.tasks.retrieval import shipped_rows
from raygrad.tasks.simulated import answers_right, last

TREC_CLASSES = {"ABBR": "abbreviation", "ENTY": "entity", "DESC": "description", "HUM": "human",
                "LOC": "location", "NUM": "numeric value"}


def trec_questions() -> list[dict]:
    """60 TREC-style questions (input, target: one of the six coarse classes) shipped with raygrad."""
    return shipped_rows("trec", "questions.jsonl")


def parse_label(reply: str) -> str:
    """The last TREC class named in a reply ('... so the class is LOC.' -> 'LOC'), else the reply itself."""
    found = re.findall(r"\b(" + "|".join(TREC_CLASSES) + r")\b", reply, re.I)
    return found[-1].upper() if found else reply.strip()


class QuestionClassification(SingleCall):
    """TREC-style question classification into six coarse classes; a parser node reads the label."""

    default_instruction = ("Classify the question by the kind of answer it asks for: "
                           + ", ".join(f"{label} ({meaning})" for label, meaning in TREC_CLASSES.items()) + ".")
    default_output_format = "Reply with the class label."
    default_eval = "exact"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, demos: str = ""):
        super().__init__(instruction, output_format, demos)
        self.parse = Function(parse_label, name="parse_label")

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.parse(await self.answer(question=input))


@functools.cache
def _answer_key() -> dict[str, str]:
    return {row["input"]: row["target"] for row in trec_questions()}


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """Simulated answers: the shipped question's class when the system prompt fixes its hidden cause
    (raygrad.tasks.simulated), else the next class."""
    system, question = last(messages, "system"), last(messages, "user")
    truth = _answer_key().get(question.strip())
    if truth is None:
        return "I do not know."
    labels = sorted(TREC_CLASSES)
    wrong = labels[(labels.index(truth) + 1) % len(labels)]
    return f"Class: {truth if answers_right(system, question) else wrong}"
