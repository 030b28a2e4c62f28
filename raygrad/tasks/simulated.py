"""Rules shared by the built-in tasks' simulated answers (raygrad.testing serves them over HTTP).

A responder maps (messages, request body) to reply text. A task's responder answers its questions
correctly when a hash of (system prompt, question) falls under a quality that grows with how many
helpful phrases the system prompt holds, so prompts can be made better or worse. Backward-engine
and optimizer calls are told apart by the JSON schema their request asks for, not by prompt wording.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

Responder = Callable[[list[dict], dict[str, Any]], str]

HELPFUL_PHRASES = ("step by step", "count each", "ignore", "only", "total", "answer:")


def last(messages: list[dict], role: str) -> str:
    """The content of the last message of a role."""
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == role), "")


def requested_schema(body: dict[str, Any]) -> str | None:
    """The name of the JSON schema a request asks for (OpenAI's json_schema, or json_object + schema)."""
    response_format = body.get("response_format") or {}
    if not isinstance(response_format, dict):
        return None
    named = response_format.get("json_schema") or {}
    return named.get("name") or (response_format.get("schema") or {}).get("title")


def echo(messages: list[dict], body: dict[str, Any]) -> str:
    return last(messages, "user")


def prompt_quality(system: str) -> float:
    """0.2 for a bare prompt, up to 0.95 with every helpful phrase."""
    hits = sum(phrase in system.lower() for phrase in HELPFUL_PHRASES)
    return min(0.95, 0.2 + 0.15 * hits)


def unit_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def helpful_proposals(value: str, k: int) -> list[str]:
    """Deterministic 'improvements': each adds one helpful phrase the value lacks (or rewords it)."""
    missing = [p for p in HELPFUL_PHRASES if p not in value.lower()]
    additions = {"step by step": "Think step by step.", "count each": "Count each item separately.",
                 "ignore": "Ignore items of other categories.", "only": "Give only the number.",
                 "total": "Add them up to a total.", "answer:": "End with 'Answer: N'."}
    proposals = [f"{value} {additions[p]}" for p in missing]
    return (proposals + [f"{value} Be careful."])[:k]


def with_optimizer_roles(task: Responder) -> Responder:
    """Task, backward engine and optimizer in one: answers by the schema the request asks for."""
    def respond(messages: list[dict], body: dict[str, Any]) -> str:
        schema, user = requested_schema(body), last(messages, "user")
        if schema == "FeedbackReply":
            return json.dumps({"feedback": "The count was off; say to count each item of the asked category only."})
        if schema == "Proposals":
            value = re.search(r"<VARIABLE[^>]*>\n(.*?)\n</VARIABLE>", user, re.S)
            k = re.search(r"Propose (\d+) different", user)
            return json.dumps({"proposals": helpful_proposals(value.group(1) if value else "",
                                                              int(k.group(1)) if k else 1)})
        return task(messages, body)
    return respond
