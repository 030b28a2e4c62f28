"""Deterministic answers for the simulated provider and the scripted LLM, by name.

Each task's own answers live in its module (raygrad.tasks.*); the shared rules in
raygrad.tasks.simulated. A `*_trainer` responder also plays the backward engine and the optimizer;
`conflicts_trainer` is ObjectCount under raygrad.tasks.conflicts' rules;
`object_count_noise_trainer` is object_count_trainer with the backward engine's feedback replaced by noise.
"""
from __future__ import annotations

from raygrad.tasks import conflicts, item_kind, multihop, object_count, react_agent, trec
from raygrad.tasks.simulated import Responder, echo, hidden_cause, with_optimizer_roles


def _shipped_cause(text: str) -> str | None:
    found = multihop.shipped_question(text)
    return hidden_cause(found[0]["input"] if found else text)


RESPONDERS: dict[str, Responder] = {
    "echo": echo, "object_count": object_count.respond, "object_count_exact": object_count.respond_exactly,
    "trec": trec.respond, "multihop": multihop.respond, "react_agent": react_agent.respond,
    "item_kind": item_kind.respond}
RESPONDERS.update({f"{name}_trainer": with_optimizer_roles(RESPONDERS[name],
                                                           _shipped_cause if name in ("multihop", "react_agent") else hidden_cause)
                   for name in ("object_count", "trec", "multihop", "react_agent", "item_kind")})
RESPONDERS["conflicts_trainer"] = conflicts.respond_as_trainer
RESPONDERS["object_count_noise_trainer"] = with_optimizer_roles(object_count.respond, gradient_noise=True)
