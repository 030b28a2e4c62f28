"""What every optimizer of text parameters implements, and what the trainer hands it each step."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

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
    failed: list[str]  # recent values that did not pass validation (values only: no error text)
    k: int  # candidates wanted
    step: int
    batch: set[str]  # sample ids of the minibatch the candidates will be tested on
    rng: random.Random
    demo_pool: list[Demo] = field(default_factory=list)  # correct calls that used this parameter


class ProposalError(BaseModel):
    """No candidate came of an optimizer's call: it failed, or its reply did not parse. Counted and shown to the
    user; never shown to the optimizer as a failed proposal (it is not a value that was tried)."""

    kind: Literal["unparsed", "call_failed"]
    text: str


class Proposed(BaseModel):
    """What an optimizer returns for one parameter: new values to validate, values it proposed that cannot be
    used (empty, leaked prompt text, the current value again) with why, and errors."""

    candidates: list[str] = []
    unusable: list[str] = []
    errors: list[ProposalError] = []


class Optimizer(Protocol):
    """Proposes candidate values for the parameters it handles; the trainer validates them."""

    def handles(self, parameter: Parameter) -> bool: ...

    async def propose(self, context: ProposalContext) -> Proposed:
        """Nothing proposed when it has nothing to go on."""
        ...
