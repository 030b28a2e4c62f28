"""The trace of one sample: its nodes (LLM calls, functions, the loss), and the edges between them.

Each component call records a node; its output carries the node's id, so the next node knows its
predecessors. A node called twice in one sample (a loop) is recorded twice, with its call order,
so the trace of one sample is a DAG even when the workflow is cyclic.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel


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
    values: dict[str, str] = field(default_factory=dict)  # the values those Parameters had in this call
    messages: list[dict[str, str]] | None = None


class _Remembers:
    """A value (str, int, float) that remembers the trace nodes it came from; it travels (e.g. to Ray)
    as the plain value."""

    node_ids: tuple[int, ...]
    plain: type  # the built-in type it extends

    def __new__(cls, value: Any, node_ids: Iterable[int] = ()) -> Any:
        remembering = super().__new__(cls, value)
        remembering.node_ids = tuple(node_ids)
        return remembering

    def __reduce__(self):
        return (self.plain, (self.plain(self),))


class Traced(_Remembers, str):
    """A str that remembers the trace nodes it came from. Its str methods (strip, split, slicing,
    concatenation, replace, ...) return Traced values that remember the same nodes."""

    plain = str

    def __radd__(self, other: str) -> "Traced":  # "prefix" + traced: tried before str.__add__, as a subclass's
        return Traced(str.__add__(other, self), self.node_ids)

    def __rmod__(self, other: str) -> Any:  # "%s" % traced
        return _retag(str.__mod__(other, self), self.node_ids)


class TracedInt(_Remembers, int):
    """An int a node returned (a tool's count, say), remembering the node; arithmetic keeps it."""

    plain = int


class TracedFloat(_Remembers, float):
    """A float a node returned, remembering the node; arithmetic keeps it."""

    plain = float


def _retag(result: Any, node_ids: tuple[int, ...]) -> Any:
    if isinstance(result, str):
        return Traced(result, node_ids)
    if isinstance(result, int) and not isinstance(result, bool):
        return TracedInt(result, node_ids)
    if isinstance(result, float):
        return TracedFloat(result, node_ids)
    if isinstance(result, (list, tuple)):
        return type(result)(_retag(item, node_ids) for item in result)
    return result


def _keeping_nodes(base: type, name: str) -> Callable[..., Any]:
    method = getattr(base, name)

    def keeping(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids = dict.fromkeys(self.node_ids)
        for arg in args:
            ids.update(dict.fromkeys(getattr(arg, "node_ids", ())))
        result = method(self, *args, **kwargs)
        return result if result is NotImplemented else _retag(result, tuple(ids))
    keeping.__name__ = name
    return keeping


for _name in ("__add__", "__getitem__", "__mod__", "__mul__", "__rmul__", "__format__", "capitalize", "casefold",
              "center", "expandtabs", "format", "format_map", "join", "ljust", "lower", "lstrip", "partition",
              "removeprefix", "removesuffix", "replace", "rjust", "rpartition", "rsplit", "rstrip", "split",
              "splitlines", "strip", "swapcase", "title", "translate", "upper", "zfill"):
    setattr(Traced, _name, _keeping_nodes(str, _name))
for _number in (TracedInt, TracedFloat):
    for _name in ("__abs__", "__add__", "__floordiv__", "__mod__", "__mul__", "__neg__", "__pos__", "__pow__",
                  "__radd__", "__rfloordiv__", "__rmod__", "__rmul__", "__round__", "__rpow__", "__rsub__",
                  "__rtruediv__", "__sub__", "__truediv__"):
        setattr(_number, _name, _keeping_nodes(_number.plain, _name))

MIN_MATCH = 4  # shorter texts are too common to say where they came from
_ATOMS = (int, float, complex, bool, type(None), bytes)  # may be shared singletons: never known by identity
_TRACED = _Remembers


def _children(value: Any) -> Iterator[Any]:
    """The values inside a container, a pydantic model or a dataclass."""
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield from value
    elif isinstance(value, BaseModel):
        yield from (getattr(value, name) for name in type(value).model_fields)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from (getattr(value, f.name) for f in dataclasses.fields(value))


def _texts(value: Any, depth: int = 0) -> Iterator[str]:
    if isinstance(value, str):
        yield value.strip()
    elif depth < 4:
        for item in _children(value):
            yield from _texts(item, depth + 1)


class Trace:
    """The nodes of one sample and the edges between them.

    Edges follow values: a Traced str (or anything its str methods made) knows its nodes, and so do
    the ints and floats a node returned (and arithmetic on them); a container, pydantic model or
    dataclass is looked into; another object a node returned is known by identity while the trace
    lives. A plain str made another way (an f-string, json.loads of an
    output, a join) is matched by content: it links to a node whose output text it contains, or, as
    a whole word run of at least MIN_MATCH characters, is contained in (the latest such node when
    several gave the same text). Plain numbers, booleans, None and short texts are never matched by
    content or identity, so no edge is invented for them.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.loss: Node | None = None  # recorded by record_loss, once the eval has scored the output
        self._producers: dict[int, tuple[int, Any]] = {}  # id(object) -> (node id, object kept alive)
        self._output_texts: list[tuple[int, str]] = []  # (node id, a text in its output), for content matches
        self._calls: dict[str, int] = {}

    def record(self, kind: Literal["llm", "function"], name: str, inputs: dict[str, Any], output: Any,
               parameters: dict[str, str] | None = None, messages: list[dict[str, str]] | None = None) -> Any:
        node = self._add(kind, name, inputs, output)
        node.values = dict(parameters or {})
        node.parameters, node.messages = list(node.values), messages
        self._output_texts += [(node.id, text) for text in _texts(output) if len(text) >= MIN_MATCH]
        return self._tag(output, node.id)

    def record_loss(self, prediction: Any, target: Any, score: float) -> Node:
        """Close the trace: the loss node, fed by whatever produced the prediction."""
        self.loss = self._add("loss", "loss", {"prediction": prediction, "target": target}, score)
        return self.loss

    def _add(self, kind: Literal["llm", "function", "loss"], name: str, inputs: dict[str, Any], output: Any) -> Node:
        node = Node(id=len(self.nodes), kind=kind, name=name, call_index=self._calls.get(name, 0),
                    inputs=inputs, output=output, parents=sorted(self._parents(inputs)))
        self._calls[name] = node.call_index + 1
        self.nodes.append(node)
        return node

    def _tag(self, value: Any, node_id: int) -> Any:
        """Mark an output (and the texts and numbers inside a list/tuple/dict output) as produced by a node."""
        if isinstance(value, (str, float)) or (isinstance(value, int) and not isinstance(value, bool)):
            return _retag(value, (node_id,))
        if isinstance(value, (list, tuple)):
            return type(value)(self._tag(item, node_id) for item in value)
        if isinstance(value, dict):
            return {key: self._tag(item, node_id) for key, item in value.items()}
        if not isinstance(value, _ATOMS):
            self._producers[id(value)] = (node_id, value)  # other objects: known by identity
        return value

    def _parents(self, value: Any, depth: int = 0) -> set[int]:
        if isinstance(value, _TRACED):
            return set(value.node_ids)
        if isinstance(value, str):
            return self._by_content(value.strip())
        if isinstance(value, _ATOMS) or depth > 4:
            return set()
        found = {self._producers[id(value)][0]} if id(value) in self._producers else set()
        for item in _children(value):
            found |= self._parents(item, depth + 1)
        return found

    def _by_content(self, text: str) -> set[int]:
        if len(text) < MIN_MATCH:
            return set()
        latest: dict[str, int] = {}  # matched output text -> the latest node that gave it
        for node_id, output in self._output_texts:
            if output in text or _contains_words(output, text):
                latest[output] = node_id
        return set(latest.values())


def _contains_words(text: str, part: str) -> bool:
    """`part` occurs in `text` with no letter or digit joined to either end."""
    start = text.find(part)
    while start >= 0:
        end = start + len(part)
        if (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
            return True
        start = text.find(part, start + 1)
    return False
