"""A simulated OpenAI-compatible chat server on loopback, for tests and benchmarks.

It has latency with jitter, a per-model request budget, injected 5xx, hangs and malformed bodies
at given rates, a request log, and deterministic answers from a responder.

The budget speaks as the providers do. `rpm` requests per minute are enforced over `window_s`
(rpm*window_s/60 per sliding window of window_s: OpenAI and Azure say they may enforce a per-minute
limit over shorter periods). Every reply carries the per-minute figures as OpenAI writes them: the
limit, what remains of a bucket of `rpm` refilled continuously at rpm/60 per second, and the time
until it is full again ("1.2s", "1m0s"); or, with `headers: anthropic`, Anthropic's three headers
with an RFC 3339 reset time. Neither reveals window_s. A request beyond the window is refused with
429, OpenAI's error body, `retry-after-ms` and `retry-after` (whole seconds).
Run it in a thread of the current process (`SimulatedServer`) or as its own process
(`python -m raygrad.testing.server`), which keeps its CPU apart from a benchmarked client.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from raygrad.llm.models import ModelConfig
from raygrad.tasks.simulated import Responder, reply_parts
from raygrad.testing.responders import RESPONDERS


class ServerSettings(BaseModel):
    latency_s: float = Field(0.0, ge=0)
    jitter_s: float = Field(0.0, ge=0)
    rpm: float | None = Field(None, gt=0, description="requests per minute per model")
    window_s: float = Field(60.0, gt=0, description="the budget is enforced as rpm*window_s/60 per window_s")
    headers: str = Field("openai", pattern="^(openai|anthropic)$", description="which provider's rate-limit headers")
    error_rate: float = Field(0.0, ge=0, le=1, description="fraction answered 500/503")
    hang_rate: float = Field(0.0, ge=0, le=1, description="fraction that hang for hang_s (client time-outs)")
    hang_s: float = 30.0
    malformed_rate: float = Field(0.0, ge=0, le=1, description="fraction answered 200 with a broken body")
    empty_rate: float = Field(0.0, ge=0, le=1, description="fraction answered 200 with no answer: content null "
                                                           "(a content filter) or, every other one, no choices")
    api_key: str | None = Field(None, description="the only key accepted; others get OpenAI's 401")
    responder: str = "echo"
    seed: int = 0


class LogEntry(BaseModel):
    time: float
    model: str
    status: int
    fault: str | None = Field(None, description="rate_limited, error, hang, malformed, empty or unauthorized")
    messages: list[dict]
    response_format: dict | None = None
    tools: list[dict] | None = Field(None, description="the tools a request offered")
    usage: dict[str, int] | None = Field(None, description="prompt_tokens and completion_tokens of an answer (words)")
    authorization: str | None = Field(None, description="the Authorization header: a test checks a key arrived")


class _Budget:
    """`limit` per sliding `window`, enforced; and a per-minute bucket of `rpm`, reported."""

    def __init__(self, limit: int, window: float, rpm: float):
        self.limit, self.window, self.rpm = limit, window, rpm
        self.accepted: collections.deque[float] = collections.deque()
        self.level, self.filled_at = rpm, 0.0

    def admit(self, now: float) -> tuple[bool, float]:
        """(admitted, seconds until the window admits again)."""
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        self.level = min(self.rpm, self.level + (now - self.filled_at) * self.rpm / 60.0)
        self.filled_at = now
        if len(self.accepted) >= self.limit or self.level < 1:
            return False, max(self.accepted[0] + self.window - now if self.accepted else 0.0,
                              (1 - self.level) * 60.0 / self.rpm)
        self.accepted.append(now)
        self.level -= 1
        return True, 0.0

    def remaining(self) -> int:
        return int(self.level)

    def reset(self) -> float:
        """Seconds until the per-minute bucket is full again."""
        return (self.rpm - self.level) * 60.0 / self.rpm


class SimulatedServer:
    """`with SimulatedServer(ServerSettings(...)) as server:` then point a client at `server.url`."""

    def __init__(self, settings: ServerSettings | None = None, responder: Responder | None = None,
                 port: int = 0):
        self.settings = settings or ServerSettings()
        self.responder: Responder = responder or RESPONDERS[self.settings.responder]
        self.port = port
        self.log: list[LogEntry] = []
        self._budgets: dict[str, _Budget] = {}
        self._rng = random.Random(self.settings.seed)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._open: asyncio.Event | None = None  # cleared by hold(): replies wait until release()
        self._empties = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def model_config(self, **overrides: Any) -> ModelConfig:
        """A ModelConfig that calls this server as any OpenAI-compatible provider (through the OpenAI SDK;
        `transport="litellm"` through litellm)."""
        return ModelConfig(model="openai/simulated", api_base=self.url, **overrides)

    def answered(self) -> list[LogEntry]:
        """Requests that got a good answer."""
        return [e for e in self.log if e.fault is None]

    def refused(self) -> list[LogEntry]:
        return [e for e in self.log if e.fault == "rate_limited"]

    def clear_log(self) -> None:
        self.log.clear()

    def hold(self) -> None:
        """Keep every reply, this request's and later ones', until release(): a client's run stands still
        (a test can then change the cluster under it at a known point, whatever the machine's speed)."""
        self._loop.call_soon_threadsafe(self._open.clear)  # type: ignore[union-attr]

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)  # type: ignore[union-attr]

    # -- the application -------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)  # OpenAI's Responses API (AdalFlow's client uses it)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_log", self._log)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "simulated", "object": "model"}]})

    async def _log(self, request: web.Request) -> web.Response:
        if request.query.get("count") == "1":  # cheap on a million-entry log
            return web.json_response({"requests": len(self.log), "refused": len(self.refused())})
        full = request.query.get("full") == "1"
        rows = [e.model_dump(exclude=None if full else {"messages"}) for e in self.log]
        return web.json_response(rows)

    def _headers(self, budget: _Budget | None) -> dict[str, str]:
        if budget is None:
            return {}
        limit, remaining, reset = int(budget.rpm), budget.remaining(), budget.reset()
        if self.settings.headers == "anthropic":
            at = datetime.fromtimestamp(time.time() + reset, timezone.utc).isoformat(timespec="seconds")
            return {"anthropic-ratelimit-requests-limit": str(limit),
                    "anthropic-ratelimit-requests-remaining": str(remaining),
                    "anthropic-ratelimit-requests-reset": at.replace("+00:00", "Z")}
        return {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": go_duration(reset)}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await self._answer(body, body.get("messages", []), _chat_completion,
                                  request.headers.get("Authorization"))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """The same budget, faults and answers as chat completions, in the Responses API's shape."""
        body = await request.json()
        given = body.get("input", "")
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else [
            {"role": m.get("role", "user"), "content": _text_of(m.get("content", ""))} for m in given]
        if body.get("instructions"):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        return await self._answer(body, messages, _response_object, request.headers.get("Authorization"))

    async def _answer(self, body: dict, messages: list[dict], shape: Callable[[str, str, dict], dict],
                      authorization: str | None) -> web.StreamResponse:
        now = time.monotonic()
        model = str(body.get("model", ""))
        entry = LogEntry(time=now, model=model, status=200, messages=messages, tools=body.get("tools"),
                         response_format=body.get("response_format"), authorization=authorization)
        self.log.append(entry)
        await self._open.wait()  # type: ignore[union-attr]
        s = self.settings
        if s.api_key is not None and authorization != f"Bearer {s.api_key}":
            entry.status, entry.fault = 401, "unauthorized"
            shown = (authorization or "").removeprefix("Bearer ")
            return web.json_response({"error": {
                "message": f"Incorrect API key provided: {shown[:3]}{'*' * 8}{shown[-4:]}. You can find your API "
                           "key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, status=401)
        budget = None
        if s.rpm:
            budget = self._budgets.setdefault(
                model, _Budget(max(1, int(s.rpm * s.window_s / 60)), s.window_s, s.rpm))
            admitted, wait = budget.admit(now)
            if not admitted:
                entry.status, entry.fault = 429, "rate_limited"
                headers = {**self._headers(budget), "retry-after-ms": str(math.ceil(wait * 1000)),
                           "retry-after": str(math.ceil(wait))}
                message = (f"Rate limit reached for {model} in organization org-simulated on requests per min "
                           f"(RPM): Limit {int(s.rpm)}, Used {int(s.rpm) - budget.remaining()}, Requested 1. "
                           f"Please try again in {go_duration(wait)}. Visit "
                           "https://platform.openai.com/account/rate-limits to learn more.")
                return web.json_response({"error": {"message": message, "type": "requests", "param": None,
                                                    "code": "rate_limit_exceeded"}}, status=429, headers=headers)
        headers = self._headers(budget)  # as measured on arrival, like the providers'
        fault = self._rng.random()
        delay = max(0.0, s.latency_s + self._rng.uniform(-s.jitter_s, s.jitter_s))
        if delay:
            await asyncio.sleep(delay)
        if fault < s.error_rate:
            entry.status, entry.fault = 503, "error"
            return web.json_response({"error": {"message": "injected server error", "type": "server_error"}},
                                     status=503, headers=headers)
        fault -= s.error_rate
        if fault < s.hang_rate:
            entry.status, entry.fault = 504, "hang"
            await asyncio.sleep(s.hang_s)
            return web.json_response({"error": {"message": "injected hang"}}, status=504)
        fault -= s.hang_rate
        if fault < s.malformed_rate:
            entry.fault = "malformed"
            return web.Response(text='{"id": "chatcmpl-broken", "choices": [', status=200,
                                content_type="application/json", headers=headers)
        fault -= s.malformed_rate
        if fault < s.empty_rate:
            entry.fault = "empty"
            self._empties += 1
            reply = _chat_completion(model, "", {"prompt_tokens": 1, "completion_tokens": 0})
            if self._empties % 2:  # a content filter: the choice is there, its content null
                reply["choices"][0]["message"]["content"] = None
                reply["choices"][0]["finish_reason"] = "content_filter"
            else:
                reply["choices"] = []
            return web.json_response(reply, headers=headers)
        text, tool_calls = reply_parts(self.responder(entry.messages, body), len(entry.messages))
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in entry.messages)
        entry.usage = usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split())}
        return web.json_response(shape(model, text, usage, tool_calls), headers=headers)

    # -- running in a background thread ----------------------------------------------------
    def start(self) -> "SimulatedServer":
        self._thread = threading.Thread(target=self._serve, name="simulated-llm", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("simulated server did not start")
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._open = asyncio.Event()
        self._open.set()
        self._runner = web.AppRunner(self.app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)  # type: ignore[union-attr]
        self._loop = None

    def __enter__(self) -> "SimulatedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: '20ms', '1.5s', '6m0s'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


def _text_of(content: object) -> str:
    """A message's text, whether a string or a list of parts ({"type": "input_text", "text": ...})."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def _chat_completion(model: str, text: str, usage: dict, tool_calls: list[dict] | None = None) -> dict:
    message: dict = {"role": "assistant", "content": text}
    if tool_calls:  # as OpenAI answers a turn that calls tools: content null unless the model also wrote text
        message = {"role": "assistant", "content": text or None, "tool_calls": tool_calls}
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}


def _response_object(model: str, text: str, usage: dict, tool_calls: list[dict] | None = None) -> dict:
    return {"id": f"resp_{uuid.uuid4().hex[:12]}", "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": model,
            "output": [{"type": "message", "id": f"msg_{uuid.uuid4().hex[:12]}", "status": "completed",
                        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}


def main(argv: list[str] | None = None, on_ready: Callable[[SimulatedServer], None] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m raygrad.testing.server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    for name, field in ServerSettings.model_fields.items():
        kind = str if field.annotation in (str,) else float if name != "seed" else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=field.default)
    args = vars(parser.parse_args(argv))
    port = args.pop("port")
    server = SimulatedServer(ServerSettings(**args), port=port).start()
    print(json.dumps({"url": server.url, "port": server.port}), flush=True)
    if on_ready:
        on_ready(server)
    try:
        server._thread.join()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
