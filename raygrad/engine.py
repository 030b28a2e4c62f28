"""The core: trainable text parameters, workflow components, and the trace graph of one sample.

A workflow's `forward` passes plain values around. Each component call (an LLM call, a function)
records a node in the trace of the sample being run, and its output carries the node's id, so the
next node knows its predecessors. A node called twice in one sample (a loop) is recorded twice, with
its call order, so the trace of one sample is a DAG even when the workflow is cyclic.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from raygrad.llm.client import Completion

T = TypeVar("T")
ParameterRole = Literal["instruction", "output format", "demos"]


class Parameter:
    """A trainable text. The parameters of one LLM call are peers: each is its own node."""

    def __init__(self, value: str, role: ParameterRole = "instruction", *, name: str | None = None,
                 trainable: bool = True):
        self.value, self.role, self.name, self.trainable = value, role, name, trainable

    def render(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, role={self.role!r}, value={self.value[:40]!r})"


class ChatClient(Protocol):
    async def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion: ...


@dataclass
class Node:
    """One call in the trace of one sample."""

    id: int
    kind: Literal["llm", "function", "loss"]
    name: str
    call_index: int  # how many times this component ran before in this sample
    inputs: dict[str, Any]
    output: Any
    parents: list[int]
    parameters: list[str] = field(default_factory=list)  # names of the Parameters this call used
    messages: list[dict[str, str]] | None = None


class Traced(str):
    """A str that remembers the trace node that produced it."""

    node_id: int

    def __new__(cls, value: str, node_id: int) -> "Traced":
        text = super().__new__(cls, value)
        text.node_id = node_id
        return text

    def __reduce__(self):  # travels (e.g. to Ray) as a plain str
        return (str, (str(self),))


class Trace:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._producers: dict[int, tuple[int, Any]] = {}  # id(value) -> (node id, value kept alive)
        self._calls: dict[str, int] = {}

    def record(self, kind: Literal["llm", "function", "loss"], name: str, inputs: dict[str, Any], output: Any,
               parameters: list[str] | None = None, messages: list[dict[str, str]] | None = None) -> Any:
        node = Node(id=len(self.nodes), kind=kind, name=name, call_index=self._calls.get(name, 0),
                    inputs=inputs, output=output, parents=sorted(set(self._parents(inputs))),
                    parameters=parameters or [], messages=messages)
        self._calls[name] = node.call_index + 1
        self.nodes.append(node)
        return self._tag(output, node.id)

    def _tag(self, value: Any, node_id: int) -> Any:
        """Mark an output (and the texts inside a list/tuple/dict output) as produced by a node."""
        if isinstance(value, str):
            return Traced(value, node_id)
        if isinstance(value, (list, tuple)):
            return type(value)(self._tag(item, node_id) for item in value)
        if isinstance(value, dict):
            return {key: self._tag(item, node_id) for key, item in value.items()}
        self._producers[id(value)] = (node_id, value)  # other objects: known by identity
        return value

    def _parents(self, value: Any) -> Iterator[int]:
        if isinstance(value, Traced):
            yield value.node_id
            return
        if id(value) in self._producers:
            yield self._producers[id(value)][0]
        if isinstance(value, dict):
            for item in value.values():
                yield from self._parents(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from self._parents(item)


@dataclass
class RunContext:
    client: ChatClient
    trace: Trace


_run_context: contextvars.ContextVar[RunContext] = contextvars.ContextVar("raygrad_run_context")


def current_run() -> RunContext:
    try:
        return _run_context.get()
    except LookupError:
        raise RuntimeError("workflow components run only inside run_forward(...)") from None


class LLMCall:
    """An LLM call whose system prompt is made of Parameters; keyword inputs form the user message."""

    def __init__(self, system: list[Parameter], *, name: str | None = None):
        self.system, self.name = list(system), name

    def messages(self, inputs: dict[str, Any]) -> list[dict[str, str]]:
        system = "\n\n".join(p.render() for p in self.system if p.render().strip())
        if len(inputs) == 1:
            user = _as_text(next(iter(inputs.values())))
        else:
            user = "\n\n".join(f"{key}:\n{_as_text(value)}" for key, value in inputs.items())
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def __call__(self, **inputs: Any) -> str:
        run = current_run()
        messages = self.messages(inputs)
        completion = await run.client.complete(messages)
        return run.trace.record("llm", self.name or "llm", inputs, completion.text,
                                parameters=[p.name or "" for p in self.system], messages=messages)


class Function:
    """A plain function (retriever, parser, tool) recorded in the trace; gradients pass through it."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "function")

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        result = self.fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        inputs = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
        return run.trace.record("function", self.name, inputs, result)


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(f"[{i + 1}] {_as_text(v)}" for i, v in enumerate(value)) or "(none)"
    return str(value)


class Workflow:
    """Subclass it, create Parameters and components in __init__, and write `async def forward`."""

    async def forward(self, input: str) -> str:  # noqa: A002 - the dataset field is called input
        raise NotImplementedError

    def named_components(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, LLMCall, Function)):
                yield name, value
            elif isinstance(value, Workflow):
                for sub_name, sub in value.named_components():
                    yield f"{name}.{sub_name}", sub

    def parameters(self) -> dict[str, Parameter]:
        """Parameters by attribute path; names them on the way, so traces and prompts can refer to them."""
        found = {}
        for path, component in self.named_components():
            if isinstance(component, (LLMCall, Function)) and component.name is None:
                component.name = path
            if isinstance(component, Parameter):
                component.name = component.name or path
                found[component.name] = component
        return found

    def peers(self) -> dict[str, list[Parameter]]:
        """For each parameter, the other parameters of the LLM calls it is part of."""
        parameters = self.parameters()
        found: dict[str, list[Parameter]] = {name: [] for name in parameters}
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


async def run_forward(workflow: Workflow, input: str, client: ChatClient) -> tuple[Any, Trace]:  # noqa: A002
    """Run one sample through the workflow, recording its trace."""
    workflow.parameters()  # names components before they record nodes
    trace = Trace()
    token = _run_context.set(RunContext(client, trace))
    try:
        output = await workflow.forward(input)
    finally:
        _run_context.reset(token)
    return output, trace  # a Traced str: the loss node links to the node that produced it
