"""Workflows: trainable text parameters, the components that use them, and running one sample.

A workflow's `forward` passes plain values around. Each component call (an LLM call, a function)
records a node in the trace of the sample being run (raygrad.core.trace); the eval's score closes
the trace as its loss node.

Parameter values are read from the run, not from the workflow: `run_forward(..., values=...)` runs a
candidate without copying the workflow, and each LLM node records the values it used.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from raygrad.core.messages import (
    Image,
    as_text,
    default_user,
    demo_turns,
    images_in,
    render_parts,
    user_content,
    without_images,
)
from raygrad.core.tools import Tool, ToolError, as_tool, assistant_message, shown_calls, tool_message
from raygrad.core.trace import Node, Trace, Traced
from raygrad.core.typed import OutputInvalid, output_schema, parse_output, response_format
from raygrad.data import Example
from raygrad.errors import ConfigError
from raygrad.llm.client import Completion

__all__ = ["ChatClient", "Function", "Image", "LLMCall", "Node", "OutputInvalid", "Parameter", "Tool", "ToolError",
           "Trace", "Traced", "Workflow", "gather_all", "run_forward"]

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)
ParameterRole = Literal["instruction", "output format", "demos", "field description", "tool description"]


class Parameter:
    """A trainable text. The parameters of one LLM call are peers: each is its own node.

    `description` says what the text is for; the backward engine and the optimizer see it.
    """

    def __init__(self, value: str, role: ParameterRole = "instruction", *, name: str | None = None,
                 description: str = "", trainable: bool = True):
        self.value, self.role, self.name, self.trainable = value, role, name, trainable
        self.description = description
        self._named_by_user = name is not None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, role={self.role!r}, value={self.value[:40]!r})"


class ChatClient(Protocol):
    """What the core needs of an LLM: a completion, and a reply validated against a pydantic model."""

    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion: ...

    async def complete_structured(self, messages: list[dict[str, str]], schema: type[S], *,
                                  journal_tag: str | None = None, **kwargs: Any) -> S: ...


@dataclass
class RunContext:
    clients: Mapping[str, ChatClient] | ChatClient  # by model name ("task" for calls that name none), or one for all
    trace: Trace
    values: dict[str, str]  # parameter values of this run, by name; a parameter not here uses its own

    def client(self, model: str | None) -> ChatClient:
        if not isinstance(self.clients, Mapping):
            return self.clients
        try:
            return self.clients[model or "task"]
        except KeyError:
            raise ConfigError(f"an LLMCall uses model {model!r}, and the run has no models.{model} "
                              f"(it has: {', '.join(self.clients)})") from None


_run_context: contextvars.ContextVar[RunContext] = contextvars.ContextVar("raygrad_run_context")


def current_run() -> RunContext:
    try:
        return _run_context.get()
    except LookupError:
        raise RuntimeError("workflow components run only inside run_forward(...)") from None


Part = Parameter | str  # a Parameter (trainable text) or a str template over the call's inputs ("Context: {context}")
SETTINGS = ("temperature", "max_tokens", "top_p", "stop", "seed")


class LLMCall:
    """An LLM call whose messages are built from parts (raygrad.core.messages).

    `system` and `user`: Parameters and str templates over the call's keyword inputs. Without `user`, the
    inputs form the user message (one as it is, several as `name:` blocks). `history` names an input
    holding earlier turns (a list of {"role", "content"}); `Image` inputs go as image parts.
    `output`: a pydantic model the reply is validated into (`descriptions` may set its fields'
    descriptions, as Parameters to train them). `tools`: functions (or `Tool`s) the model may call, up
    to `max_turns` replies. `model` names an entry of the config's `models` (the `task` model without
    one); `temperature`, `max_tokens`, `top_p`, `stop` and `seed` override that model's settings.
    """

    def __init__(self, system: Sequence[Part] = (), user: Sequence[Part] | None = None, *, name: str | None = None,
                 model: str | None = None, output: type[BaseModel] | None = None,
                 descriptions: Mapping[str, Part] | None = None, tools: Sequence[Tool | Callable[..., Any]] = (),
                 max_turns: int = 5, history: str | None = None, temperature: float | None = None,
                 max_tokens: int | None = None, top_p: float | None = None, stop: str | list[str] | None = None,
                 seed: int | None = None):
        for where, parts in (("system", system), ("user", user or [])):
            if isinstance(parts, (str, Parameter)):
                raise TypeError(f"LLMCall({where}=...) takes a list of parts, e.g. {where}=[...]")
            for part in parts:
                if not isinstance(part, (str, Parameter)):
                    raise TypeError(f"LLMCall({where}=...): a part is a Parameter or a str template, not "
                                    f"{type(part).__name__}")
        self.system, self.user = list(system), None if user is None else list(user)
        self.name, self.model = name, model
        self.output, self.descriptions = output, dict(descriptions or {})
        if self.descriptions and output is None:
            raise TypeError("LLMCall(descriptions=...) describes the fields of an output=...; give output too")
        if output is not None:
            output_schema(output, {f: "" for f in self.descriptions})  # an unknown field fails here, not mid-run
        self.tools, self.max_turns, self.history = [as_tool(t) for t in tools], max_turns, history
        self.settings = {key: value for key, value in zip(SETTINGS, (temperature, max_tokens, top_p, stop, seed))
                         if value is not None}
        self._named_by_user = name is not None

    def parameters(self) -> list[Parameter]:
        """The Parameters this call's messages contain: its parts, field descriptions and tool descriptions."""
        found = [p for p in [*self.system, *(self.user or []), *self.descriptions.values(),
                             *(t.parameter() for t in self.tools)] if isinstance(p, Parameter)]
        return list(dict.fromkeys(found))

    def messages(self, inputs: dict[str, Any], values: dict[str, str]) -> list[dict[str, Any]]:
        """System parts (no system message when they are all empty), demos as earlier turns of the chat,
        the history input, then the user message with any images."""
        system_parts, turns = [], []
        for part in self.system:
            shown = demo_turns(values[part.name or ""]) if isinstance(part, Parameter) and part.role == "demos" else []
            if shown:
                turns += shown
            else:
                system_parts.append(part)
        name = self.name or "llm"
        history = list(inputs.get(self.history, ())) if self.history else []
        shown_inputs = {k: v for k, v in inputs.items() if k != self.history}
        system = render_parts(system_parts, shown_inputs, values, name)
        text = render_parts(self.user, shown_inputs, values, name) if self.user is not None else \
            default_user(shown_inputs)
        user = {"role": "user", "content": user_content(text, images_in(shown_inputs))}
        return [*([{"role": "system", "content": system}] if system else []), *turns, *history, user]

    async def __call__(self, **inputs: Any) -> Any:
        run = current_run()
        values = {p.name or "": run.values.get(p.name or "", p.value) for p in self.parameters()}
        name, record = self.name or "llm", run.trace.record
        messages = self.messages(inputs, values)
        kept = without_images(messages, images_in(inputs))  # what the trace keeps: no image bytes
        params = dict(self.settings)
        if self.output is not None:
            schema = output_schema(self.output, {f: values[p.name or ""] if isinstance(p, Parameter) else p
                                                 for f, p in self.descriptions.items()})
            params.update(response_format=response_format(self.output, schema), response_schema=schema)
        if self.tools:
            params["tools"] = [tool.schema(values) for tool in self.tools]
        client, results = run.client(self.model), []
        for _ in range(self.max_turns):
            completion = await client.complete(messages, **params)
            if not completion.tool_calls:
                break
            turn = record("llm", name, inputs, shown_calls(completion.tool_calls), parameters=values, messages=kept)
            said = assistant_message(completion.text, completion.tool_calls)
            messages, kept = [*messages, said], [*kept, said]
            for call in completion.tool_calls:
                results.append(await self._run_tool(call, turn, run))
                reply = tool_message(call["id"], as_text(results[-1]))
                messages, kept = [*messages, reply], [*kept, reply]
            inputs = {**inputs, "tool results": list(results)}  # the next turn's node reads every result so far
        else:
            error = ToolError(f"{name} still called tools after max_turns={self.max_turns} replies")
            record("llm", name, inputs, shown_calls(completion.tool_calls), parameters=values, messages=kept,
                   error=error)
            raise error
        if self.output is None:
            return record("llm", name, inputs, completion.text, parameters=values, messages=kept)
        try:
            parsed = parse_output(completion.text, self.output, name)
        except OutputInvalid as err:
            record("llm", name, inputs, completion.text, parameters=values, messages=kept, error=err)
            raise
        return record("llm", name, inputs, parsed, parameters=values, messages=kept)

    async def _run_tool(self, call: dict[str, Any], turn: Traced, run: RunContext) -> Any:
        """One tool call the model made: a function node whose input is the turn's reply."""
        tool = next((t for t in self.tools if t.name == call["function"]["name"]), None)
        arguments = Traced(call["function"]["arguments"], turn.node_ids)
        if tool is None:
            error = ToolError(f"the model called {call['function']['name']!r}, which is not one of the tools "
                              f"({', '.join(t.name for t in self.tools)})")
            run.trace.record("function", call["function"]["name"], {"arguments": arguments}, None, error=error)
            raise error
        try:
            result = await call_maybe_blocking(tool.fn, **tool.validate(arguments))
        except Exception as err:
            run.trace.record("function", tool.name, {"arguments": arguments}, None, error=err)
            raise
        return run.trace.record("function", tool.name, {"arguments": arguments}, result)


USER_CODE_THREADS = 64  # blocking user code is mostly I/O (a retriever, an HTTP tool): many may wait at once
_thread_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = weakref.WeakKeyDictionary()


async def call_maybe_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async function; run a plain one in a worker thread, so a blocking retriever or tool
    never stalls the event loop (and the other samples in flight).

    The threads are a pool of the running loop's own, made on first use (asyncio's default pool has
    min(32, cores + 4) threads: 6 on 2 cores would queue the samples of a batch behind each other).
    """
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):  # an async callable object
        return await fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    pool = _thread_pools.get(loop)
    if pool is None:
        pool = _thread_pools[loop] = ThreadPoolExecutor(USER_CODE_THREADS, thread_name_prefix="raygrad-user-code")
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    result = await loop.run_in_executor(pool, call)
    return await result if inspect.isawaitable(result) else result


class Function:
    """A plain function (retriever, parser, tool) recorded in the trace; gradients pass through it.

    A synchronous function runs in a worker thread. One that raises is recorded with its exception,
    which then ends the sample as an error sample whose loss links to it.
    """

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "function")
        self._named_by_user = True  # named by the function itself

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        inputs = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
        try:
            result = await call_maybe_blocking(self.fn, *args, **kwargs)
        except Exception as err:
            run.trace.record("function", self.name, inputs, None, error=err)
            raise
        return run.trace.record("function", self.name, inputs, result)


class _Binds(type):
    """Binds a workflow once it is built: components left unnamed get their attribute path as name."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        workflow = super().__call__(*args, **kwargs)
        workflow.bind()
        return workflow


class Workflow(metaclass=_Binds):
    """Subclass it, create Parameters and components in __init__, and write `async def forward`.

    Components may sit in attributes, in lists, tuples and dicts of them, and in sub-workflows; each is
    named by its path (`hops.0.query`) unless given a name.
    """

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """One sample: its input (or, with several input fields, each as a keyword argument) in, the prediction out."""
        raise NotImplementedError

    def named_components(self) -> Iterator[tuple[str, Any]]:
        """(path, component) of every Parameter, LLMCall and Function, each once, in attribute order."""
        seen: set[int] = set()
        for path, component in _walk(vars(self), ""):
            if id(component) not in seen:
                seen.add(id(component))
                yield path, component

    def bind(self) -> Workflow:
        """Name components by path ('retriever.query', 'hops.0.query'), so traces and prompts can refer to
        them; check that no two share a name and that every trainable parameter is in some call's messages.

        Runs once when the workflow is built (a workflow built inside another is renamed by the outer
        one); call it again only after adding components to a built workflow.
        """
        named: dict[str, str] = {}
        for path, component in self.named_components():
            if not component._named_by_user:
                component.name = path
            if isinstance(component, (Parameter, LLMCall)):
                if component.name in named:
                    raise ValueError(f"{type(self).__name__}: {named[component.name]} and {path} are both named "
                                     f"{component.name!r}; give one another name")
                named[component.name or ""] = path
        used = {id(p) for _, c in self.named_components() if isinstance(c, LLMCall) for p in c.parameters()}
        for path, component in self.named_components():
            if isinstance(component, Parameter) and component.trainable and id(component) not in used:
                raise ValueError(f"{type(self).__name__}: the trainable parameter {component.name!r} ({path}) is in "
                                 "no LLMCall's messages, so nothing could train it; put it in a call's system "
                                 "or user parts, or make it Parameter(..., trainable=False)")
        return self

    def parameters(self) -> dict[str, Parameter]:
        """Parameters by name."""
        return {p.name or path: p for path, p in self.named_components() if isinstance(p, Parameter)}

    def peers(self) -> dict[str, list[Parameter]]:
        """For each parameter, the other parameters of the LLM calls it is part of."""
        found: dict[str, list[Parameter]] = {name: [] for name in self.parameters()}
        for _, component in self.named_components():
            if isinstance(component, LLMCall):
                used = component.parameters()
                for p in used:
                    found[p.name or ""] += [q for q in used if q is not p and q not in found[p.name or ""]]
        return found

    def state(self) -> dict[str, str]:
        return {name: p.value for name, p in self.parameters().items()}

    def load_state(self, state: dict[str, str]) -> None:
        parameters = self.parameters()
        unknown = set(state) - set(parameters)
        if unknown:
            raise KeyError(f"no parameters named {sorted(unknown)} (have: {sorted(parameters)})")
        for name, value in state.items():
            parameters[name].value = value


def _walk(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Components inside attributes, lists, tuples, dicts and sub-workflows, with their paths."""
    if isinstance(value, (Parameter, LLMCall, Function)):
        yield path, value
        if isinstance(value, LLMCall):  # parameters written inside the call: named by where they sit
            parts = {"system": value.system, "user": value.user or [], "descriptions": value.descriptions,
                     "tools": {tool.name: tool.parameter() for tool in value.tools}}
            yield from _walk(parts, path, depth + 1)
    elif isinstance(value, Workflow):
        yield from _walk(vars(value), path, depth + 1)
    elif depth < 6 and isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif depth < 6 and isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index), depth + 1)


async def gather_all(*awaitables: Awaitable[T]) -> list[T]:
    """Like asyncio.gather, but when one fails the others still run to their end before it raises.

    A call already sent is then answered and journaled instead of orphaned: stopping at a budget
    never leaves a paid call unrecorded, so a resume pays for nothing twice.
    """
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def run_forward(workflow: Workflow, sample: Example | Any, clients: Mapping[str, ChatClient] | ChatClient,
                      values: dict[str, str] | None = None, trace: Trace | None = None) -> tuple[Any, Trace]:
    """Run one sample (an Example, or the one input itself) through the workflow, recording its trace.

    `clients`: one client for every call, or clients by model name ("task" for calls that name
    none). `values` override parameter values for this run only. `trace`: record into this one (so a
    caller keeps what was recorded when the workflow raises).
    """
    trace = Trace() if trace is None else trace
    example = sample if isinstance(sample, Example) else Example(id="", input=sample, target=None)
    inputs = {name: Traced(value, ()) if isinstance(value, str) else value  # sample inputs: known, no parent
              for name, value in example.inputs.items()}
    token = _run_context.set(RunContext(clients, trace, values or {}))
    try:
        if example.keywords:
            output = await workflow.forward(**inputs)
        else:
            output = await workflow.forward(*inputs.values())
    finally:
        _run_context.reset(token)
    return output, trace
