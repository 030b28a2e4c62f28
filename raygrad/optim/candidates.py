"""How a step's candidates are formed from the optimizers' proposals (trainer.candidates).

- `joint` (the default): the text parameters' proposals are asked for in turn, each optimizer seeing the
  earlier ones' first proposal as its peers' values; the i-th candidate holds each one's i-th proposal,
  so one stage-2 validation can accept changes to all of them. A demos parameter's candidates stay its own.
- `per_parameter`: one parameter at a time, as in the paper.

Each group of parameters is proposed for and validated before the next is asked, so a later group's
optimizer sees an accepted change of an earlier one. Proposing never changes the workflow's values: a
round's steps propose at once from the same ones.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from raygrad.core.workflow import Parameter
from raygrad.optim.optimizer import Proposed

CandidateMode = Literal["joint", "per_parameter"]


class Candidates(Protocol):
    """Which parameters' proposals are combined into one candidate."""

    def groups(self, names: list[str], parameters: dict[str, Parameter]) -> list[list[str]]: ...


class PerParameter:
    def groups(self, names: list[str], parameters: dict[str, Parameter]) -> list[list[str]]:
        return [[name] for name in names]


class Joint:
    def groups(self, names: list[str], parameters: dict[str, Parameter]) -> list[list[str]]:
        text = [name for name in names if parameters[name].role != "demos"]
        return [text] * bool(text) + [[name] for name in names if name not in text]


def candidates_of(mode: CandidateMode) -> Candidates:
    return {"joint": Joint, "per_parameter": PerParameter}[mode]()


@dataclass
class ProposalCounts:
    """What came of a group's optimizer calls besides candidates: replies that did not parse (one shown), and
    calls that failed."""

    unparsed: int = 0
    failed: int = 0
    unparsed_example: str | None = None  # the first


async def propose(group: list[str], ask: Callable[[str, dict[str, str]], Awaitable[Proposed]]
                  ) -> tuple[list[dict[str, str]], ProposalCounts]:
    """The group's candidates (the i-th holds each parameter's i-th proposal, where it has one) from asking
    each parameter's optimizer in turn: `ask(name, peer_values)`, where peer_values are the earlier
    parameters' first proposals, which its optimizer sees as their values."""
    proposed: dict[str, list[str]] = {}
    counts = ProposalCounts()
    for name in group:
        outcome = await ask(name, {n: c[0] for n, c in proposed.items()} if len(group) > 1 else {})
        unparsed = [f"unparseable reply: {e.text}" for e in outcome.errors if e.kind == "unparsed"]
        counts.unparsed += len(unparsed)
        counts.failed += len(outcome.errors) - len(unparsed)
        counts.unparsed_example = counts.unparsed_example or next(iter(unparsed), None)
        if outcome.candidates:
            proposed[name] = outcome.candidates
    return [{n: c[i] for n, c in proposed.items() if i < len(c)}
            for i in range(max(map(len, proposed.values()), default=0))], counts
