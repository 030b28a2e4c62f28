"""Two-stage validation of a candidate value, with early rejection in stage 2."""
from __future__ import annotations

import copy

from pydantic import BaseModel

from raygrad.data import Example
from raygrad.engine import ChatClient, Workflow
from raygrad.evals import EvalFn
from raygrad.evaluate import evaluate


class Stage2Result(BaseModel):
    score: float  # mean over the samples evaluated (failed samples excluded)
    evaluated: int
    total: int
    stopped_early: bool


def with_value(workflow: Workflow, name: str, value: str) -> Workflow:
    """A copy of the workflow with one parameter changed; the original is untouched."""
    candidate = copy.deepcopy(workflow)
    candidate.load_state({name: value})
    return candidate


async def minibatch_score(workflow: Workflow, batch: list[Example], client: ChatClient, eval_fn: EvalFn) -> float:
    """Stage 1: the candidate's mean score on the minibatch it was made from."""
    return (await evaluate(workflow, batch, client, eval_fn)).score


async def validate(workflow: Workflow, examples: list[Example], client: ChatClient, eval_fn: EvalFn,
                   must_beat: float | None = None, chunk: int = 16) -> Stage2Result:
    """Stage 2: score on the validation set, chunk by chunk, stopping once it cannot beat `must_beat`.

    After each chunk, the best the candidate could still reach is its score if every remaining
    sample were correct; when that is not above `must_beat`, the remaining samples are never run.
    """
    total, completed = 0.0, 0
    for start in range(0, len(examples), chunk):
        report = await evaluate(workflow, examples[start:start + chunk], client, eval_fn)
        total += report.score * report.completed
        completed += report.completed
        remaining = len(examples) - start - chunk
        if must_beat is not None and remaining > 0 and (total + remaining) / (completed + remaining) <= must_beat:
            return Stage2Result(score=total / max(completed, 1), evaluated=start + chunk, total=len(examples),
                                stopped_early=True)
    return Stage2Result(score=total / max(completed, 1), evaluated=len(examples), total=len(examples),
                        stopped_early=False)
