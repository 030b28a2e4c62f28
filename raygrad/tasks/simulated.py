"""The rules of the simulated provider that plays task model, backward engine and optimizer.

A responder maps (messages, request body) to reply text; raygrad.testing serves them over HTTP.
The rules are built so that an optimization can improve a prompt only by information: nothing in
them rewards a prompt for wording, and the optimizer does not know which instruction helps.

- Hidden causes. Each question (its key: a task's question text) has a hidden cause of failure,
  drawn from a hash of the key: one of the four FIXES with probability CAUSED, or none. The cause is
  written nowhere in the question.
- Task model. A question gets a fixed draw u in [0, 1) (a hash of its key). It is answered right
  when u < LUCKY, or when u < CAPABLE and the system prompt holds the instruction that fixes its
  cause (or it has none). Apart from that, one answer in ten (SAMPLING_NOISE, a hash of prompt and
  question) is a coin flip, as a model sampled at a temperature: a bare prompt scores about 0.35 and a
  prompt with all four fixes about 0.86, and rewording alone moves a score only by that noise, which
  is what the two-stage validation is there to see through.
- Instructions match as words: "only" is found in "give only the number", not in "commonly".
- Backward engine (a request whose JSON schema is FeedbackReply). It reads the input of the call in
  its request, as a model reading the error sample would, and names the fix of that question's
  cause, with probability 1 - BACKWARD_NOISE. Otherwise, or when the question has no cause, it names
  an instruction drawn from the whole CATALOG (the four fixes among twelve decoys that fix nothing).
- Optimizer (schema Proposals). It reads only its request: the value, its PEERS and the GRADIENTS.
  It adds to the value the catalog instructions the gradients name most often that neither the
  value nor a peer holds, never making a value its request lists as failed (a guess, also none its
  failed proposals held);
  each proposal is, with probability OPTIMIZER_NOISE, a random catalog instruction instead. Gradients
  that name nothing leave it guessing from the catalog, one fix in four.
- `gradient_noise=True` replaces the backward engine's feedback by a random catalog instruction,
  whatever the sample: the ablation that shows what the gradients are worth.

Every random choice is a hash of the request, so a run replays exactly.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from raygrad.llm.client import JSON_IN_PROMPT

# A reply is its text, or {"content": text or None, "tool_calls": [{"name": ..., "arguments": {...}}]}.
Responder = Callable[[list[dict], dict[str, Any]], "str | dict[str, Any]"]


def reply_parts(reply: str | dict[str, Any], turn: int = 0) -> tuple[str, list[dict[str, Any]] | None]:
    """A responder's reply as (text, tool calls in OpenAI's shape or None); a call's id is made of `turn` (the
    request's message count) and its position, so replies replay exactly."""
    if isinstance(reply, str):
        return reply, None
    calls = [{"id": f"call_{turn}_{index}", "type": "function",
              "function": {"name": call["name"], "arguments": json.dumps(call.get("arguments", {}))}}
             for index, call in enumerate(reply.get("tool_calls") or [])]
    return reply.get("content") or "", calls or None

FIXES = ("Read the whole question before answering.", "Leave out what the question does not ask about.",
         "Work through it step by step.", "Give only the final answer.")
DECOYS = ("Be polite.", "Use a formal tone.", "Avoid jargon.", "Write in plain English.", "Keep sentences short.",
          "Do not apologize.", "Mention your confidence.", "Restate the question first.", "Use bullet points.",
          "Cite sources when you can.", "Prefer common words.", "Stay neutral.")
CATALOG = FIXES + DECOYS
CAUSED = 0.75
LUCKY, CAPABLE = 0.15, 0.90
SAMPLING_NOISE = 0.1
BACKWARD_NOISE = 0.3
OPTIMIZER_NOISE = 0.25


def last(messages: list[dict], role: str) -> str:
    """The content of the last message of a role."""
    for message in reversed(messages):
        if message.get("role") == role:
            content = message.get("content") or ""
            return "".join(p.get("text", "") for p in content if isinstance(p, dict)) if isinstance(content, list) \
                else str(content)
    return ""


def requested_schema(body: dict[str, Any], messages: list[dict] | None = None) -> str | None:
    """The name of the JSON schema a request asks for: OpenAI's json_schema, json_object + schema, or (with
    `messages`) the schema written into the prompt for a model without structured output."""
    response_format = body.get("response_format")
    found = None
    if isinstance(response_format, dict):
        named = response_format.get("json_schema") or {}
        found = named.get("name") or (response_format.get("schema") or {}).get("title")
    if found or not messages:
        return found
    marker = JSON_IN_PROMPT.split("{schema}")[0].strip()
    text = last(messages, "user")
    if marker not in text:
        return None
    try:
        return json.loads(text.rsplit(marker, 1)[1].strip()).get("title")
    except (ValueError, AttributeError):
        return None


def echo(messages: list[dict], body: dict[str, Any]) -> str:
    return last(messages, "user")


def unit_hash(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9']+", text.lower())) + " "


def holds(text: str, phrase: str) -> bool:
    """Whether `text` holds `phrase` as whole words, case and punctuation aside."""
    return _words(phrase) in _words(text)


def hidden_cause(key: str) -> str | None:
    """The fix a question needs, or None: a property of the question no prompt or reply shows."""
    draw = unit_hash("cause", key.strip())
    return FIXES[int(draw / CAUSED * len(FIXES))] if draw < CAUSED else None


def answers_right(system: str, key: str, cause_of: Callable[[str], str | None] = hidden_cause,
                  applies: Callable[[str, str], bool] = holds) -> bool:
    """Whether the simulated task model answers the question `key` right under this system prompt; a task
    with rules of its own gives the question's cause (`cause_of`) and whether a prompt's fix takes effect
    (`applies(system, fix)`; by default, when the prompt holds it)."""
    if unit_hash("sampling", system, key.strip()) < SAMPLING_NOISE:  # as a model sampled at temperature
        return unit_hash("coin", system, key.strip()) < 0.5
    draw = unit_hash("answer", key.strip())
    cause = cause_of(key)
    return draw < LUCKY or (draw < CAPABLE and (cause is None or applies(system, cause)))


def feedback(call_input: str, rng: random.Random, cause_of: Callable[[str], str | None] = hidden_cause) -> str:
    """The backward engine's diagnosis of an error sample whose call had this input."""
    cause = cause_of(call_input)
    named = cause if cause is not None and rng.random() >= BACKWARD_NOISE else rng.choice(CATALOG)
    return f'The answer was wrong. The prompt should tell the model: "{named}"'


def proposals(value: str, gradients: str, k: int, rng: random.Random, peers: str = "", failed: str = "") -> list[str]:
    """The optimizer's k proposals: the value plus the instructions the gradients name most, noisily;
    never one the value or its peers (the other parts of the prompt, shown in the request) hold, never
    a value its request lists as failed, and a guess never one its failed proposals held."""
    counts = Counter()
    for line in gradients.splitlines():  # one vote per sample's feedback
        counts.update(instruction for instruction in CATALOG if holds(line, instruction))
    present = f"{value}\n{peers}"
    wanted = [i for i, _ in sorted(counts.items(), key=lambda item: (-item[1], rng.random()))
              if not holds(present, i) and not holds(failed, f"{value} {i}".strip())]
    absent = [i for i in CATALOG if not holds(present, i) and not holds(failed, i)] or list(CATALOG)
    chosen = []
    for _ in range(k):
        pick = wanted.pop(0) if wanted and rng.random() >= OPTIMIZER_NOISE else rng.choice(absent)
        chosen.append(f"{value} {pick}".strip())
    return chosen


def _section(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.S)
    return found.group(1) if found else ""


def with_optimizer_roles(task: Responder, cause_of: Callable[[str], str | None] = hidden_cause,
                         gradient_noise: bool = False) -> Responder:
    """Task, backward engine and optimizer in one, told apart by the JSON schema a request asks for.

    `cause_of` finds the hidden cause of the question in a call's input (for tasks whose prompts hold
    more than the question, or rules of their own).
    """
    def respond(messages: list[dict], body: dict[str, Any]) -> str:
        schema, user = requested_schema(body, messages), last(messages, "user")
        rng = random.Random(hashlib.sha256(user.encode()).digest())
        if schema == "FeedbackReply":
            if gradient_noise:
                return json.dumps({"feedback": f'The prompt should tell the model: "{rng.choice(CATALOG)}"'})
            call_input = _section(user, r"Input of the LLM call:\n(.*?)\nOutput of the LLM call:")
            return json.dumps({"feedback": feedback(call_input, rng, cause_of)})
        if schema == "Proposals":
            value = _section(user, r"<VARIABLE[^>]*>\n(.*?)\n</VARIABLE>")
            k = int(_section(user, r"Propose (\d+) different") or 1)
            gradients, peers = _section(user, r"<GRADIENTS>(.*?)</GRADIENTS>"), _section(user, r"<PEERS>(.*?)</PEERS>")
            failed = _section(user, r"<FAILED_PROPOSALS>(.*?)</FAILED_PROPOSALS>")
            return json.dumps({"proposals": proposals(value, gradients, k, rng, peers, failed)})
        return task(messages, body)
    return respond
