"""One async LLM client: limits, bounded retries, journal, usage, structured output (transports in transport.py)."""
from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from raygrad.errors import ConfigError
from raygrad.llm.journal import Journal, call_key
from raygrad.llm.limits import EndpointLimiter, Slot, parse_duration
from raygrad.llm.models import ModelConfig
from raygrad.llm.transport import Reply, transport_for

T = TypeVar("T", bound=BaseModel)


JSON_IN_PROMPT = "\n\nReply with one JSON object that matches this JSON schema, and nothing else:\n{schema}"


class LLMCallFailed(RuntimeError):
    """A call that could not be completed (after retries). The sample is *failed*, not wrong."""


class BudgetExhausted(RuntimeError):
    """A spending limit was reached before a new paid call; the caller stops (it is not a failed sample)."""


class InvalidReply(ValueError):
    """A reply that does not parse into the requested schema."""

    def __init__(self, message: str, text: str):
        super().__init__(message)
        self.text = text


class Completion(BaseModel):
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 1
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's shape: {"id", "type": "function", "function": {...}}


class Usage(BaseModel):
    """Counters of one client; `calls` are requests that reached the provider and succeeded."""

    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    last_retry: str = ""  # why the latest retry was needed: progress shows it while calls are being retried

    def add(self, other: "Usage") -> "Usage":
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in _COUNTERS},
                     last_retry=other.last_retry or self.last_retry)

    def since(self, before: "Usage") -> "Usage":
        """What was spent after `before` (this client's earlier copy)."""
        return Usage(**{name: getattr(self, name) - getattr(before, name) for name in _COUNTERS},
                     last_retry=self.last_retry if self.retries > before.retries else "")


_COUNTERS = [name for name, field in Usage.model_fields.items() if field.annotation in (int, float)]


def check_budget(guard: Callable[[], str | None] | None) -> None:
    """Raise BudgetExhausted when a guard says no more calls may be paid for."""
    reason = guard() if guard is not None else None
    if reason:
        raise BudgetExhausted(reason)


class LLMClient:
    """Calls one endpoint. Create it inside the process (and event loop) that uses it."""

    def __init__(self, config: ModelConfig, *, journal: Journal | None = None, endpoint_id: str | None = None,
                 limiter: EndpointLimiter | None = None, role: str | None = None):
        if config.model is None:
            raise ValueError("resolve the embedded local model first (raygrad.llm.local.resolve_model)")
        self.config, self.role = config, role  # the role is recorded with each journaled call
        self.journal = journal
        # Identity of the endpoint in journal keys: the api_base, or a stable name for a server on a random port.
        self.endpoint_id = endpoint_id or config.api_base
        self.limiter = limiter or EndpointLimiter(config.rpm, config.tpm, config.max_in_flight)
        self.usage = Usage()
        self._in_flight: dict[str, asyncio.Future] = {}  # replayable calls being made, by journal key
        # Set by whoever enforces a budget: returns why no more calls may be paid for, or None.
        self.budget_guard: Callable[[], str | None] | None = None
        self._transport = transport_for(config, self._api_key)
        self._warm_up_task: asyncio.Task | None = None
        self._schema_support: bool | None = None  # does the model take json_schema (read from the price map once)
        import openai  # litellm's own errors derive from openai's

        self._openai = openai

    def _api_key(self) -> str | None:
        key = self.config.api_key()
        if key is None and self.config.api_base:
            return "no-key"  # keyless servers (local, simulated); the SDK refuses an empty key
        return key  # None: litellm reads the provider's usual variable itself

    async def complete(self, messages: list[dict[str, str]], *, journal_tag: str | None = None,
                       response_schema: dict | None = None, **params: Any) -> Completion:
        """One chat completion. Served from the journal when deterministic (temperature 0) or tagged."""
        messages, params = self._structured_request(messages, params)
        sampling = {**self.config.sampling_params(), **params}
        key = call_key(self.config.model, self.endpoint_id, messages, sampling, response_schema, journal_tag)
        replayable = journal_tag is not None or sampling.get("temperature", 0) == 0
        if self.journal is not None and replayable:
            stored = self.journal.get(key)
            if stored is not None:
                self.usage.cached_calls += 1
                return Completion(**{**stored, "cached": True, "latency_s": 0.0})
        if not replayable:
            return await self._call_and_journal(key, messages, sampling, response_schema)
        if key in self._in_flight:  # the same call is on its way (a repeated question): wait, don't pay twice
            shared = self._in_flight[key]
            try:
                completion = await asyncio.shield(shared)
            except asyncio.CancelledError:
                if not shared.cancelled():
                    raise  # this caller was cancelled
                return await self.complete(messages, journal_tag=journal_tag, response_schema=response_schema,
                                           **params)  # the caller that made it was: make it again
            self.usage.cached_calls += 1
            return completion.model_copy(update={"cached": True, "latency_s": 0.0})
        # The caller makes the call itself and hands its outcome to those who ask meanwhile: a future, not a
        # task of its own per call.
        shared = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            completion = await self._call_and_journal(key, messages, sampling, response_schema)
        except asyncio.CancelledError:
            shared.cancel()
            raise
        except BaseException as err:
            shared.set_exception(err)
            shared.exception()  # retrieved: nobody may be waiting, and the caller raises it anyway
            raise
        else:
            shared.set_result(completion)
        finally:
            del self._in_flight[key]
        return completion

    async def _call_and_journal(self, key: str, messages: list[dict], sampling: dict,
                                response_schema: dict | None) -> Completion:
        def journal(completion: Completion) -> None:
            if self.journal is not None:
                self.journal.put(key, self.config.model,
                                 {**completion.model_dump(exclude={"cached"}), "role": self.role})

        completion = await self._call_with_retries(messages, sampling, response_schema, answered_late=journal)
        journal(completion)
        return completion

    async def complete_structured(self, messages: list[dict[str, str]], schema: type[T], *,
                                  journal_tag: str | None = None, **params: Any) -> T:
        """Ask for JSON matching a pydantic model and validate it; raise InvalidReply otherwise."""
        json_schema = schema.model_json_schema()
        response_format = {"type": "json_schema",
                           "json_schema": {"name": schema.__name__, "schema": json_schema, "strict": True}}
        completion = await self.complete(messages, journal_tag=journal_tag, response_schema=json_schema,
                                         response_format=response_format, **params)
        return parse_structured(completion.text, schema)

    def _structured_request(self, messages: list[dict], params: dict[str, Any]) -> tuple[list[dict], dict[str, Any]]:
        """A json_schema request as this endpoint takes it (`structured_output`): as it is; as json_object
        with the schema (llama.cpp and some OpenAI-compatible servers); or, for a model with no structured
        output at all, the schema asked for in the prompt (the reply is validated either way)."""
        wanted = params.get("response_format") or {}
        mode = self.config.structured_output
        if mode == "auto":
            mode = "json_schema" if self._takes_json_schema() else "prompt"
        if wanted.get("type") != "json_schema" or mode == "json_schema":
            return messages, params
        schema = wanted["json_schema"]["schema"]
        if mode == "json_object":
            return messages, {**params, "response_format": {"type": "json_object", "schema": schema}}
        ask = JSON_IN_PROMPT.format(schema=json.dumps(schema, ensure_ascii=False))
        last = messages[-1]
        content = last["content"] + ask if isinstance(last["content"], str) else \
            [*last["content"], {"type": "text", "text": ask}]
        return [*messages[:-1], {**last, "content": content}], {k: v for k, v in params.items()
                                                              if k != "response_format"}

    def _takes_json_schema(self) -> bool:
        """False only for a model litellm knows and says lacks structured output (gpt-3.5-turbo, say): asked
        for json_schema, such a provider refuses the request. A model litellm does not know (a self-hosted
        server) is asked for json_schema, as its config says."""
        if self._schema_support is None:
            facts = self._transport.model_facts()
            self._schema_support = facts is None or facts.takes_json_schema
        return self._schema_support

    async def _warm_up(self) -> None:
        """Once per client, before its first send time is taken (the transport's set-up)."""
        if self._warm_up_task is None:
            self._warm_up_task = asyncio.ensure_future(self._transport.warm_up())
        await asyncio.shield(self._warm_up_task)

    def _retrying(self, why: str) -> None:
        self.usage.retries += 1
        self.usage.last_retry = f"{self.config.model}: {why}"

    async def _call_with_retries(self, messages: list[dict], sampling: dict, schema: dict | None,
                                 answered_late: Callable[[Completion], None] | None = None) -> Completion:
        """`answered_late` gets the reply to a request that was sent before its caller was cancelled (a
        validation shard cut by early rejection): paid for, so journaled, and a resume replays it."""
        openai = self._openai  # both transports raise the SDK's errors (litellm's derive from them)
        if self._warm_up_task is None or not self._warm_up_task.done():  # no coroutine a call once it is done
            await self._warm_up()
        cfg = self.config
        fatal = (openai.BadRequestError, openai.NotFoundError)
        refused = (openai.AuthenticationError, openai.PermissionDeniedError)  # the key: no call will pass
        # What a provider or the network does (429, 5xx, time-outs, broken connections or bodies: raised
        # as openai errors; a reply with no answer); anything else is a bug and fails at once with its
        # traceback.
        retryable = (openai.OpenAIError, asyncio.TimeoutError, ConnectionError, NoAnswer)
        no_answers = 0
        estimated_tokens = sum(len(m.get("content") or "") for m in messages) // 4 + (cfg.max_tokens or 256)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.limiter.slot(estimated_tokens, lambda: check_budget(self.budget_guard)) as slot:
                    request = asyncio.ensure_future(self._transport.send(messages, sampling))
                    try:
                        reply = await asyncio.shield(request)
                    except asyncio.CancelledError:
                        request.add_done_callback(
                            lambda done, tries=attempt: self._late(done, slot, tries, answered_late))
                        raise
                    latency = time.monotonic() - slot.admitted
                    self.limiter.settle(slot, latency)
                check_answer(reply.response)
            except (BudgetExhausted, ConfigError):  # a missing key variable will not appear by retrying
                raise
            except refused as err:
                self.usage.failed_calls += 1
                key = f"the key in {cfg.api_key_env}" if cfg.api_key_env else "its key (the provider's usual variable)"
                raise ConfigError(f"{cfg.model} refused {key}: {type(err).__name__}: {_short(err)}") from None
            except NoAnswer as err:  # a content filter, or tokens spent before any text: a few tries, no more
                no_answers += 1
                if no_answers >= NO_ANSWER_TRIES:
                    self.usage.failed_calls += 1
                    raise LLMCallFailed(f"{cfg.model}: {err} ({no_answers} replies in a row)") from None
                self._retrying(f"no answer: {err}")
                await asyncio.sleep(min(4.0, 0.5 * 2 ** (no_answers - 1)) * (0.5 + random.random()))
                continue
            except fatal as err:
                self.usage.failed_calls += 1
                raise LLMCallFailed(f"{cfg.model}: {type(err).__name__}: {_short(err)}") from err
            except retryable as err:  # retried within the deadline, unless litellm's own code failed
                internal = internal_error(err)
                if internal is not None:
                    self.usage.failed_calls += 1
                    raise LLMCallFailed(f"{cfg.model}: {self._transport.name} failed in its own code, not at the "
                                        f"provider (not retried): {type(internal).__name__}: {_short(internal)}"
                                        ) from err
                wait = _retry_after(err)
                if isinstance(err, openai.RateLimitError):
                    self.usage.rate_limited += 1
                    if wait is not None:
                        self.limiter.pause_until(time.monotonic() + wait)
                if wait is None:
                    wait = min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
                if time.monotonic() + wait - started > cfg.retry_deadline_s:
                    self.usage.failed_calls += 1
                    raise LLMCallFailed(f"{cfg.model}: gave up after {attempt} attempts in "
                                        f"{time.monotonic() - started:.1f}s: {type(err).__name__}: {_short(err)}"
                                        ) from err
                self._retrying(f"{type(err).__name__}: {_short(err, 80)}")
                await asyncio.sleep(wait)
                continue
            break
        return self._completion(reply, slot, attempt, latency)

    def _late(self, request: asyncio.Future, slot: Slot, attempt: int,
              answered: Callable[[Completion], None] | None) -> None:
        """A request whose caller was cancelled after it was sent: its reply, if one came, is counted and
        handed on; a failure is dropped (nobody waits for it, and the caller never saw it paid)."""
        if request.cancelled() or request.exception() is not None:
            return
        reply = request.result()
        try:
            check_answer(reply.response)
        except NoAnswer:
            return
        completion = self._completion(reply, slot, attempt, time.monotonic() - slot.admitted)
        if answered is not None:
            answered(completion)

    def _completion(self, reply: Reply, slot: Slot, attempt: int, latency: float) -> Completion:
        """A reply as a Completion, counted in this client's usage."""
        cfg, response = self.config, reply.response
        self.limiter.observe_headers(reply.headers, slot.admitted + slot.delay)
        usage = getattr(response, "usage", None)
        message = response.choices[0].message  # check_answer made sure there is one
        completion = Completion(
            text=message.content or "", model=cfg.model, attempts=attempt, latency_s=latency,
            tool_calls=[{"id": call.id, "type": "function",
                         "function": {"name": call.function.name, "arguments": call.function.arguments}}
                        for call in getattr(message, "tool_calls", None) or []] or None,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=reply.cost)
        self.usage.calls += 1
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        self.usage.cost += completion.cost or 0.0
        return completion


NO_ANSWER_TRIES = 3  # replies with no answer in a row before the call fails: the same request gets the same filter


class NoAnswer(RuntimeError):
    """A 200 reply that carries no answer: no choices, or a choice with no content and no tool call."""


def check_answer(response: Any) -> None:
    choices = getattr(response, "choices", None)
    if not choices:
        raise NoAnswer("the provider's reply carried no choices")
    message, reason = choices[0].message, getattr(choices[0], "finish_reason", None)
    if not (message.content or getattr(message, "tool_calls", None)):
        raise NoAnswer(f"the provider's reply carried no content (content {message.content!r}, "
                       f"finish_reason {reason!r})")


def parse_structured(text: str, schema: type[T]) -> T:
    """Validate a JSON reply, tolerating code fences and prose around one JSON object."""
    candidate = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", candidate, re.S)
    if fenced:
        candidate = fenced.group(1).strip()
    if not candidate.startswith("{"):
        start, end = candidate.find("{"), candidate.rfind("}")
        if start < 0 or end <= start:
            raise InvalidReply(f"no JSON object in the reply for {schema.__name__}", text)
        candidate = candidate[start:end + 1]
    try:
        return schema.model_validate(json.loads(candidate))
    except (json.JSONDecodeError, ValidationError) as err:
        raise InvalidReply(f"reply does not match {schema.__name__}: {_short(err)}", text) from None


# Programming errors: raised inside litellm or the OpenAI SDK (a parameter it cannot translate, a bug), they
# come wrapped in its catch-all APIConnectionError, and no retry cures them. A network or a provider never raises these.
_INTERNAL = (TypeError, AttributeError, NameError, AssertionError, ImportError, NotImplementedError)


def internal_error(err: BaseException) -> BaseException | None:
    """The programming error at the root of a litellm error, if one is there (followed through
    __cause__ and __context__); None for what a network or a provider does."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _INTERNAL):
            return current
        current = current.__cause__ or current.__context__
    return None


def _retry_after(err: Exception) -> float | None:
    """The wait a refusal asks for: `retry-after-ms` (OpenAI, Azure) before `retry-after` (seconds or a date)."""
    for headers in (getattr(getattr(err, "response", None), "headers", None),
                    getattr(err, "litellm_response_headers", None)):
        if not headers:
            continue
        try:
            lowered = {str(k).lower(): v for k, v in headers.items()}
        except AttributeError:
            continue
        milliseconds = parse_duration(lowered.get("retry-after-ms"))
        if milliseconds is not None:
            return milliseconds / 1000
        seconds = parse_duration(lowered.get("retry-after"))
        if seconds is not None:
            return seconds
    return None


def _short(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + "..."
