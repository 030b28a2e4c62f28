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
