"""What every optimizer of text parameters implements, and what the trainer hands it each step."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from raygrad.core.workflow import Parameter

if TYPE_CHECKING:
    from raygrad.optim.demos import Demo


class ScoredValue(BaseModel):
    value: str
    score: float


@dataclass
class ProposalContext:
    """One parameter at one step: what an optimizer may base its candidates on."""

    parameter: Parameter
    peers: list[Parameter]
    gradients: str  # the minibatch's aggregated feedback for this parameter; "" when it got none
    history: list[ScoredValue]  # best past values first
    failed: list[str]  # recent proposals that did not pass validation
    k: int  # candidates wanted
    step: int
    batch: set[str]  # sample ids of the minibatch the candidates will be tested on
    rng: random.Random
    demo_pool: list[Demo] = field(default_factory=list)  # correct calls that used this parameter


class Optimizer(Protocol):
    """Proposes candidate values for the parameters it handles; the trainer validates them."""

    def handles(self, parameter: Parameter) -> bool: ...

    async def propose(self, context: ProposalContext) -> tuple[list[str], list[str]]:
        """(candidates, rejected replies with why); both empty when it has nothing to go on."""
        ...
