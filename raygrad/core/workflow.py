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
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from raygrad.core import prompts
from raygrad.core.trace import Node, Trace, Traced
from raygrad.data import Example
from raygrad.llm.client import Completion

__all__ = ["ChatClient", "Function", "LLMCall", "Node", "Parameter", "Trace", "Traced", "Workflow", "gather_all",
           "run_forward"]

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)
ParameterRole = Literal["instruction", "output format", "demos"]


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
            raise LookupError(f"an LLMCall uses model {model!r}, and the run has no models.{model} "
                              f"(it has: {', '.join(self.clients)})") from None


_run_context: contextvars.ContextVar[RunContext] = contextvars.ContextVar("raygrad_run_context")


def current_run() -> RunContext:
    try:
        return _run_context.get()
    except LookupError:
        raise RuntimeError("workflow components run only inside run_forward(...)") from None


class LLMCall:
    """An LLM call whose system prompt is made of Parameters; keyword inputs form the user message.

    `model` names an entry of the config's `models` (e.g. a cheap "router"); without one, the call
    uses the `task` model.
    """

    def __init__(self, system: list[Parameter], *, name: str | None = None, model: str | None = None):
        self.system, self.name, self.model = list(system), name, model
        self._named_by_user = name is not None

    def messages(self, inputs: dict[str, Any], values: dict[str, str]) -> list[dict[str, str]]:
        """The system prompt from the parameters, demos as earlier turns of the chat, the inputs last."""
        system: list[str] = []
        turns: list[dict[str, str]] = []
        for parameter in self.system:
            value = values[parameter.name or ""]
            shown = demo_turns(value) if parameter.role == "demos" else []
            if shown:
                turns += shown
            elif value.strip():
                system.append(value)
        if len(inputs) == 1:
            user = _as_text(next(iter(inputs.values())))
        else:
            user = "\n\n".join(f"{key}:\n{_as_text(value)}" for key, value in inputs.items())
        return [{"role": "system", "content": "\n\n".join(system)}, *turns, {"role": "user", "content": user}]

    async def __call__(self, **inputs: Any) -> str:
        run = current_run()
        values = {p.name or "": run.values.get(p.name or "", p.value) for p in self.system}
        messages = self.messages(inputs, values)
        completion = await run.client(self.model).complete(messages)
        return run.trace.record("llm", self.name or "llm", inputs, completion.text, parameters=values,
                                messages=messages)


class Function:
    """A plain function (retriever, parser, tool) recorded in the trace; gradients pass through it."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "function")
        self._named_by_user = True  # named by the function itself

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        result = self.fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        inputs = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
        return run.trace.record("function", self.name, inputs, result)


_DEMO = re.compile(re.escape(prompts.DEMO).replace(re.escape("{input}"), "(.*?)")
                   .replace(re.escape("{output}"), "(.*?)"), re.S)


def demo_turns(text: str) -> list[dict[str, str]]:
    """Demos as the demo optimizer renders them, turned into user/assistant turns; [] for other text.

    Chat models follow earlier turns far more closely than examples quoted in a system prompt: on the
    embedded SmolLM2, the demo's three accepted demos score 0.54 on its test rows as turns and 0.00
    quoted in the system prompt (benchmarks/results/demo_task.md).
    """
    pairs = _DEMO.findall(text)
    if not pairs or _DEMO.sub("", text).replace(prompts.DEMOS_HEADER, "").strip():
        return []  # free text (a user's own demos, say) stays in the system prompt as written
    return [turn for given, answer in pairs
            for turn in ({"role": "user", "content": given}, {"role": "assistant", "content": answer})]


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(f"[{i + 1}] {_as_text(v)}" for i, v in enumerate(value)) or "(none)"
    return str(value)


class _Binds(type):
    """Binds a workflow once it is built: components left unnamed get their attribute path as name."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        workflow = super().__call__(*args, **kwargs)
        workflow.bind()
        return workflow


class Workflow(metaclass=_Binds):
    """Subclass it, create Parameters and components in __init__, and write `async def forward`."""

    async def forward(self, *args: Any, **kwargs: Any) -> Any:
        """One sample: its input (or, with several input fields, each as a keyword argument) in, the prediction out."""
        raise NotImplementedError

    def named_components(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, LLMCall, Function)):
                yield name, value
            elif isinstance(value, Workflow):
                for sub_name, sub in value.named_components():
                    yield f"{name}.{sub_name}", sub

    def bind(self) -> "Workflow":
        """Name components by attribute path ('retriever.query'), so traces and prompts can refer to them.

        Runs once when the workflow is built (a workflow built inside another is renamed by the outer
        one); call it again only after adding components to a built workflow.
        """
        for path, component in self.named_components():
            if not component._named_by_user:
                component.name = path
        return self

    def parameters(self) -> dict[str, Parameter]:
        """Parameters by name."""
        return {p.name or path: p for path, p in self.named_components() if isinstance(p, Parameter)}

    def peers(self) -> dict[str, list[Parameter]]:
        """For each parameter, the other parameters of the LLM calls it is part of."""
        found: dict[str, list[Parameter]] = {name: [] for name in self.parameters()}
        for _, component in self.named_components():
            if isinstance(component, LLMCall):
                for p in component.system:
                    found[p.name or ""] += [q for q in component.system if q is not p and q not in found[p.name or ""]]
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
                      values: dict[str, str] | None = None) -> tuple[Any, Trace]:
    """Run one sample (an Example, or the one input itself) through the workflow, recording its trace.

    `clients`: one client for every call, or clients by model name ("task" for calls that name
    none). `values` override parameter values for this run only.
    """
    trace = Trace()
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
