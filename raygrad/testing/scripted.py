"""A scripted in-process LLM for unit tests of the algorithm (no HTTP, no litellm)."""
from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel

from raygrad.llm.client import Completion, LLMCallFailed, Usage, check_budget, parse_structured
from raygrad.tasks.simulated import Responder, reply_parts
from raygrad.testing.responders import RESPONDERS

T = TypeVar("T", bound=BaseModel)


class ScriptedLLM:
    """Answers with a responder; records every call. `fail_when(messages)` makes a call fail."""

    def __init__(self, responder: Responder | str = "echo", *, fail_when=None, delay_s: float = 0.0,
                 model: str = "scripted"):
        self.responder = RESPONDERS[responder] if isinstance(responder, str) else responder
        self.fail_when = fail_when
        self.delay_s = delay_s
        self.model = model
        self.calls: list[list[dict[str, str]]] = []
        self.usage = Usage()
        self.budget_guard = None

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        check_budget(self.budget_guard)
        self.calls.append(messages)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_when is not None and self.fail_when(messages):
            self.usage.failed_calls += 1
            raise LLMCallFailed("scripted failure")
        reply = self.responder(messages, kwargs)
        text, tool_calls = reply_parts(reply, len(messages))
        self.usage.calls += 1
        self.usage.prompt_tokens += sum(len(str(m.get("content") or "").split()) for m in messages)  # words, as the server
        self.usage.completion_tokens += len(text.split())
        return Completion(text=text, model=self.model, tool_calls=tool_calls)

    async def complete_structured(self, messages: list[dict[str, str]], schema: type[T], **kwargs: Any) -> T:
        response_format = {"type": "json_schema",  # as LLMClient asks: responders see the same request
                           "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}
        completion = await self.complete(messages, response_format=response_format, **kwargs)
        return parse_structured(completion.text, schema)
