"""Textual gradient descent (the paper's GDPO): k candidate values for one parameter per call."""
from __future__ import annotations

from pydantic import BaseModel, Field

from raygrad.core import prompts
from raygrad.core.workflow import ChatClient, Parameter
from raygrad.llm.client import InvalidReply, LLMCallFailed
from raygrad.optim.optimizer import ProposalContext, ProposalError, Proposed, ScoredValue


class Proposals(BaseModel):
    proposals: list[str] = Field(min_length=1)


class TextualGradientDescent:
    """Instructions and output formats: k candidates per parameter from one optimizer-LLM call, guided
    by the parameter's aggregated gradients. A parameter without gradients costs no call."""

    def __init__(self, engine: ChatClient):
        self.engine = engine

    def handles(self, parameter: Parameter) -> bool:
        return parameter.role != "demos"

    async def propose(self, context: ProposalContext) -> Proposed:
        if not context.gradients:
            return Proposed()
        return await propose(context.parameter, context.peers, context.gradients, context.history, context.failed[-5:],
                             context.k, self.engine, journal_tag=f"step{context.step}/{context.parameter.name}")


def leaked(candidate: str, meta_prompt: str) -> bool:
    """True when a proposal carries text of the meta-prompt (tags, or the gradients themselves)."""
    if any(tag in candidate for tag in prompts.META_PROMPT_TAGS):
        return True
    # A long verbatim run of the gradients section copied into the proposal is a leak too.
    gradients = meta_prompt.split("<GRADIENTS>", 1)[-1].split("</GRADIENTS>", 1)[0]
    words = candidate.split()
    return any(" ".join(words[i:i + 12]) in gradients for i in range(0, max(0, len(words) - 11)))


async def propose(parameter: Parameter, peers: list[Parameter], gradients: str, history: list[ScoredValue],
                  failed: list[str], k: int, engine: ChatClient, journal_tag: str | None = None) -> Proposed:
    """Ask for k new values. A reply that does not validate is an error, never a new prompt."""
    user = prompts.OPTIMIZER_USER.format(
        attributes=prompts.attributes(parameter), name=parameter.name, value=parameter.value,
        peers=prompts.peers_block([(p, p.value) for p in peers]),
        gradients=gradients or "(no feedback)",
        history="\n".join(f"score {h.score:.3f}: {h.value}" for h in history) or "(none yet)",
        failed="\n".join(f"- {f}" for f in failed) or "(none)", k=k)
    messages = [{"role": "system", "content": prompts.OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]
    try:
        reply = await engine.complete_structured(messages, Proposals, journal_tag=journal_tag)
    except InvalidReply as err:
        return Proposed(errors=[ProposalError(kind="unparsed", text=err.text[:200])])
    except LLMCallFailed as err:
        return Proposed(errors=[ProposalError(kind="call_failed", text=str(err))])
    good, unusable = [], []
    for candidate in (c.strip() for c in reply.proposals[:k]):
        if not candidate:
            unusable.append("empty proposal")
        elif leaked(candidate, user):
            unusable.append(f"leaked meta-prompt text: {candidate[:200]}")
        elif candidate == parameter.value or candidate in good:
            unusable.append(f"repeats a value: {candidate[:200]}")
        else:
            good.append(candidate)
    return Proposed(candidates=good, unusable=unusable)
