"""Deterministic answers for the simulated provider and the scripted LLM.

A responder maps (messages, request body) to reply text. `object_count` makes prompts better or
worse on purpose: it answers a question correctly when a hash of (system prompt, question) falls
under a quality that grows with how many helpful phrases the system prompt holds.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
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


def helpful_proposals(value: str, k: int) -> list[str]:
    """Deterministic 'improvements': each adds one helpful phrase the value lacks (or rewords it)."""
    missing = [p for p in HELPFUL_PHRASES if p not in value.lower()]
    additions = {"step by step": "Think step by step.", "count each": "Count each item separately.",
                 "ignore": "Ignore items of other categories.", "only": "Give only the number.",
                 "total": "Add them up to a total.", "answer:": "End with 'Answer: N'."}
    proposals = [f"{value} {additions[p]}" for p in missing]
    return (proposals + [f"{value} Be careful."])[:k]


def object_count_exact(messages: list[dict], body: dict[str, Any]) -> str:
    """Always the right count, in the format the prompt asks for: DSPy's field markers when it shows
    them, else 'Answer: N'. For comparing frameworks: a sample scored wrong was lost, not misanswered."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    truth = solve_object_counting(text[text.find("I have "):])
    if truth is None:
        return "I do not know."
    if "[[ ## answer ## ]]" in text:
        return f"[[ ## answer ## ]]\n{truth}\n\n[[ ## completed ## ]]"
    return f"Answer: {truth}"


def with_optimizer_roles(task: Responder) -> Responder:
    """Task, backward engine and optimizer in one: answers by the role its system prompt shows."""
    def respond(messages: list[dict], body: dict[str, Any]) -> str:
        from raygrad import prompts

        system, user = _last(messages, "system"), _last(messages, "user")
        if system == prompts.BACKWARD_SYSTEM:
            return json.dumps({"feedback": "The count was off; say to count each item of the asked category only."})
        if system == prompts.OPTIMIZER_SYSTEM:
            value = re.search(r"<VARIABLE[^>]*>\n(.*?)\n</VARIABLE>", user, re.S)
            k = int(re.search(r"Propose (\d+) different", user).group(1))  # type: ignore[union-attr]
            return json.dumps({"proposals": helpful_proposals(value.group(1) if value else "", k)})
        return task(messages, body)
    return respond


@functools.cache
def _trec_key() -> dict[str, str]:
    from raygrad.retrieval import trec_questions

    return {row["input"]: row["target"] for row in trec_questions()}


def trec(messages: list[dict], body: dict[str, Any]) -> str:
    """TREC-style classes of the shipped questions, right as often as the system prompt is good."""
    from raygrad.workflows import TREC_CLASSES

    system, question = _last(messages, "system"), _last(messages, "user")
    truth = _trec_key().get(question.strip())
    if truth is None:
        return "I do not know."
    labels = sorted(TREC_CLASSES)
    wrong = labels[(labels.index(truth) + 1) % len(labels)]
    return f"Class: {truth if unit_hash(system, question) < prompt_quality(system) else wrong}"


@functools.cache
@functools.cache
def _multihop_key() -> tuple[dict[str, dict], dict[str, str]]:
    from raygrad.retrieval import multihop_corpus, multihop_questions

    return {q["input"]: q for q in multihop_questions()}, {p.id: p.text for p in multihop_corpus()}


def _multihop_question(user: str) -> tuple[dict, str, str] | None:
    """The shipped question a prompt is about, with its bridge and answer passages' texts."""
    questions, passages = _multihop_key()
    asked = user.split("question:\n", 1)[-1].split("\n\n", 1)[0].strip()
    if asked not in questions:
        return None
    bridge, answer = (passages[i] for i in questions[asked]["supporting"])
    return questions[asked], bridge, answer


def multihop(messages: list[dict], body: dict[str, Any]) -> str:
    """MultiHopQA's calls: queries name the bridge once it was retrieved; answers are terse only when told 'only'."""
    system, user = _last(messages, "system"), _last(messages, "user")
    found = _multihop_question(user)
    if found is None:
        return "unknown"
    question, bridge, answer_passage = found
    if system.startswith("Write a search query"):
        return bridge if bridge in user else question["input"]
    answer = question["target"] if answer_passage in user else "unknown"
    return answer if "only" in system.lower() else f"From what I read, I believe it is {answer}."


def react_agent(messages: list[dict], body: dict[str, Any]) -> str:
    """ReActAgent's turns: search the question, then the bridge, then finish (right as often as the prompt is good)."""
    system, user = _last(messages, "system"), _last(messages, "user")
    found = _multihop_question(user)
    if found is None:
        return "finish[unknown]"
    question, bridge, answer_passage = found
    if answer_passage in user:
        good = unit_hash(system, question["input"]) < prompt_quality(system)
        return f"Thought: I have it.\nAction: finish[{question['target'] if good else 'not sure'}]"
    if bridge in user:
        return f"Thought: now the second fact.\nAction: search[{bridge}]"
    return f"Thought: first the bridge.\nAction: search[{question['input']}]"


object_count_trainer = with_optimizer_roles(object_count)

# By name, for `python -m raygrad.testing.server --responder NAME`; *_trainer ones also play backward and optimizer.
RESPONDERS: dict[str, Responder] = {
    "echo": echo, "object_count": object_count, "object_count_exact": object_count_exact, "trec": trec,
    "multihop": multihop, "react_agent": react_agent, "object_count_trainer": object_count_trainer,
    "trec_trainer": with_optimizer_roles(trec), "multihop_trainer": with_optimizer_roles(multihop),
    "react_agent_trainer": with_optimizer_roles(react_agent)}
