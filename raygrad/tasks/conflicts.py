"""ObjectCount with fixes that conflict: a simulated task where the fix found first is a trap.

The rules of raygrad.tasks.simulated hold, with two changes, both properties of the questions and the
task model that no prompt or reply shows:

- Causes have unequal shares. A question's hidden cause is ONLY_ANSWER ("Give only the final
  answer.") with probability 0.30, WORK_THROUGH ("Work through it step by step.") 0.20, READ_ALL
  ("Read the whole question before answering.") 0.20, LEAVE_OUT ("Leave out what the question does not
  ask about.") 0.05, none 0.25.
- ONLY_ANSWER conflicts with WORK_THROUGH and with READ_ALL: a system prompt that holds it and either
  of them takes none of the conflicting ones into account (told to give only the answer and to work
  through the question, the model follows neither).

So the fix the feedback names most often leads to a prompt that fixes at most 0.35 of the questions'
causes (ONLY_ANSWER and LEAVE_OUT), while leaving it out reaches 0.45. A search that only ever builds on
its best prompt keeps the first and cannot add the others without losing it; one that keeps prompts
which are best on some questions can still build the second.
"""
from __future__ import annotations

from typing import Any

from raygrad.tasks import object_count
from raygrad.tasks.simulated import FIXES, answers_right, holds, unit_hash, with_optimizer_roles

READ_ALL, LEAVE_OUT, WORK_THROUGH, ONLY_ANSWER = FIXES
SHARES = ((ONLY_ANSWER, 0.30), (WORK_THROUGH, 0.20), (READ_ALL, 0.20), (LEAVE_OUT, 0.05))
CONFLICTS = {ONLY_ANSWER: (WORK_THROUGH, READ_ALL), WORK_THROUGH: (ONLY_ANSWER,), READ_ALL: (ONLY_ANSWER,)}


def conflicting_cause(key: str) -> str | None:
    """The fix a question needs under this task's shares, or None."""
    draw, reached = unit_hash("conflict cause", key.strip()), 0.0
    for fix, share in SHARES:
        reached += share
        if draw < reached:
            return fix
    return None


def takes_effect(system: str, fix: str) -> bool:
    """Whether the prompt's `fix` is followed: it holds it and none that conflicts with it."""
    return holds(system, fix) and not any(holds(system, other) for other in CONFLICTS.get(fix, ()))


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """The task model's answer to an ObjectCount question under these rules (the right count, or one more)."""
    return object_count.respond(messages, body, right=lambda system, question: answers_right(
        system, question, conflicting_cause, takes_effect))


respond_as_trainer = with_optimizer_roles(respond, conflicting_cause)
