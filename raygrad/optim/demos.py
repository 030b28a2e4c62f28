"""Few-shot demos: the (input, output) of an LLM call in samples the workflow got right, and the
(input, target) of samples it got wrong.

A "demos" parameter is trained without gradients: every correct sample of a minibatch adds the calls
that used the parameter to a bounded pool (bootstrapped demos), and so does every wrong sample whose
one call of the parameter was given the sample's own inputs, with the target as the output that call
owed (labeled demos: AdalFlow's raw shots, DSPy's LabeledFewShot; trainer.labeled_demos, off by
default). Labeled demos let a model that gets nothing right yet learn from demos. Candidates are fresh
draws from the pool, and go through the same two-stage validation as any other proposal.
"""
from __future__ import annotations

import random

from pydantic import BaseModel

from raygrad.core import prompts
from raygrad.core.messages import as_text, message_text
from raygrad.core.workflow import Parameter, Trace
from raygrad.data import Example
from raygrad.optim.metrics import render
from raygrad.optim.optimizer import ProposalContext, Proposed


class Demo(BaseModel):
    sample_id: str
    input: str
    output: str
    labeled: bool = False  # the output is the sample's target, not what the model said


def _calls_using(trace: Trace, parameter: str) -> list:
    return [node for node in trace.nodes if node.kind == "llm" and parameter in node.parameters and node.messages]


def _asked(node) -> str:
    """The text of the call's (last) user message: what a demo shows as its input."""
    return message_text(next(m for m in reversed(node.messages) if m["role"] == "user"))


def collect_demos(trace: Trace, sample_id: str, parameter: str) -> list[Demo]:
    """The calls of one (correct) sample that used the demos parameter, in call order."""
    return [Demo(sample_id=sample_id, input=_asked(node), output=as_text(node.output))
            for node in _calls_using(trace, parameter)]


def labeled_demos(trace: Trace, example: Example, parameter: str) -> list[Demo]:
    """(input, target) of a sample answered wrong, when the parameter's one call was given the sample's
    inputs as they are: the target is then what that call owed. Otherwise (several calls, or inputs
    another step made) nothing, since the output a middle call owed is unknown."""
    calls = _calls_using(trace, parameter)
    if len(calls) != 1 or [str(v) for v in calls[0].inputs.values()] != [str(v) for v in example.inputs.values()]:
        return []
    return [Demo(sample_id=example.id, input=_asked(calls[0]), output=render(example.target),
                 labeled=True)]


def add_to_pool(pool: list[Demo], demos: list[Demo], max_size: int) -> None:
    """First come, first kept, one entry per (sample, input): the pool never grows past max_size."""
    seen = {(d.sample_id, d.input) for d in pool}
    for demo in demos:
        if len(pool) >= max_size:
            return
        if (demo.sample_id, demo.input) not in seen:
            pool.append(demo)
            seen.add((demo.sample_id, demo.input))


def render_demos(demos: list[Demo]) -> str:
    if not demos:
        return ""
    return "\n".join([prompts.DEMOS_HEADER] + [prompts.DEMO.format(input=d.input, output=d.output) for d in demos])


def propose_demos(pool: list[Demo], current: str, k: int, per_candidate: int, rng: random.Random,
                  exclude_samples: set[str]) -> list[str]:
    """Up to k distinct renderings of `per_candidate` demos, each from a different sample.

    Demos of the minibatch being validated are left out, or stage 1 would score answers the
    candidate already shows.
    """
    by_sample: dict[str, Demo] = {}
    for demo in pool:
        if demo.sample_id not in exclude_samples:
            by_sample.setdefault(demo.sample_id, demo)
    choices = sorted(by_sample)
    size = min(per_candidate, len(choices))
    candidates: list[str] = []
    for _ in range(4 * k):  # a few draws more than needed: small pools repeat themselves
        if len(candidates) == k or size == 0:
            break
        value = render_demos([by_sample[s] for s in sorted(rng.sample(choices, size))])
        if value != current and value not in candidates:
            candidates.append(value)
    return candidates


class BootstrapDemos:
    """Few-shot demos parameters: candidates drawn from the pool of correct calls, no LLM call."""

    def __init__(self, per_candidate: int):
        self.per_candidate = per_candidate

    def handles(self, parameter: Parameter) -> bool:
        return parameter.role == "demos"

    async def propose(self, context: ProposalContext) -> Proposed:
        return Proposed(candidates=propose_demos(context.demo_pool, context.parameter.value, context.k,
                                                 self.per_candidate, context.rng, context.batch))
