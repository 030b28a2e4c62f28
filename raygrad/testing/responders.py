"""Deterministic answers for the simulated provider and the scripted LLM.

A responder maps (messages, request body) to reply text. `object_count` makes prompts better or
worse on purpose: it answers a question correctly when a hash of (system prompt, question) falls
under a quality that grows with how many helpful phrases the system prompt holds.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from raygrad.objectcount import solve_object_counting

Responder = Callable[[list[dict], dict[str, Any]], str]

HELPFUL_PHRASES = ("step by step", "count each", "ignore", "only", "total", "answer:")


def _last(messages: list[dict], role: str) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == role), "")


def echo(messages: list[dict], body: dict[str, Any]) -> str:
    return _last(messages, "user")


def prompt_quality(system: str) -> float:
    """0.2 for a bare prompt, up to 0.95 with every helpful phrase."""
    hits = sum(phrase in system.lower() for phrase in HELPFUL_PHRASES)
    return min(0.95, 0.2 + 0.15 * hits)


def unit_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def object_count(messages: list[dict], body: dict[str, Any]) -> str:
    system, question = _last(messages, "system"), _last(messages, "user")
    truth = solve_object_counting(question)
    if truth is None:
        return "I do not know."
    correct = unit_hash(system, question) < prompt_quality(system)
    return f"Let me count.\nAnswer: {truth if correct else truth + 1}"


RESPONDERS: dict[str, Responder] = {"echo": echo, "object_count": object_count}


def _proposals_for(value: str, k: int) -> list[str]:
    """Deterministic 'improvements': each adds one helpful phrase the value lacks (or rewords it)."""
    missing = [p for p in HELPFUL_PHRASES if p not in value.lower()]
    additions = {"step by step": "Think step by step.", "count each": "Count each item separately.",
                 "ignore": "Ignore items of other categories.", "only": "Give only the number.",
                 "total": "Add them up to a total.", "answer:": "End with 'Answer: N'."}
    proposals = [f"{value} {additions[p]}" for p in missing]
    return (proposals + [f"{value} Be careful."])[:k]


def object_count_trainer(messages: list[dict], body: dict[str, Any]) -> str:
    """Task, backward engine and optimizer in one: answers by the role its system prompt shows."""
    import json
    import re

    from raygrad import prompts

    system, user = _last(messages, "system"), _last(messages, "user")
    if system == prompts.BACKWARD_SYSTEM:
        return json.dumps({"feedback": "The count was off; say to count each item of the asked category only."})
    if system == prompts.OPTIMIZER_SYSTEM:
        value = re.search(r"<VARIABLE[^>]*>\n(.*?)\n</VARIABLE>", user, re.S)
        k = int(re.search(r"Propose (\d+) different", user).group(1))  # type: ignore[union-attr]
        return json.dumps({"proposals": _proposals_for(value.group(1) if value else "", k)})
    return object_count(messages, body)


RESPONDERS["object_count_trainer"] = object_count_trainer
