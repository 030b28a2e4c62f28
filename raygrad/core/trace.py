"""The trace of one sample: its nodes (LLM calls, functions, the loss), and the edges between them.

Each component call records a node; its output carries the node's id, so the next node knows its
predecessors. A node called twice in one sample (a loop) is recorded twice, with its call order,
so the trace of one sample is a DAG even when the workflow is cyclic.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from raygrad.errors import short_error


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
    messages: list[dict[str, Any]] | None = None
    edges: dict[int, str] = field(default_factory=dict)  # parent -> how the edge was found (EDGE_KINDS)
    error: str | None = None  # the exception this call raised ("Type: message"), if it did


# How an edge was found: the value's own tag; the object itself (identity); its text inside another
# text (content); a typed output's boolean or Enum field under the same name (field); the loss of a
# sample whose workflow raised, to the call that raised or, for code outside any call, the last call before.
EDGE_KINDS = ("tag", "identity", "content", "field", "raised in", "raised after")


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

MIN_MATCH = 4  # shorter texts are too common to say where they came from, even when equal to an output
MIN_CONTAINED = 12  # a text inside another (either way) must be this long: "true" recurs by chance, a sentence does not
_ATOMS = (int, float, complex, bool, type(None), bytes)  # may be shared singletons: never known by identity
_TRACED = _Remembers


def _named_children(value: Any) -> Iterator[tuple[str | None, Any]]:
    """The values inside a container, a pydantic model, a dataclass or a named tuple, with their keys."""
    if isinstance(value, dict):
        yield from ((key if isinstance(key, str) else None, item) for key, item in value.items())
    elif isinstance(value, tuple) and hasattr(type(value), "_fields"):  # a namedtuple
        yield from zip(type(value)._fields, value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield from ((None, item) for item in value)
    elif isinstance(value, BaseModel):
        yield from ((name, getattr(value, name)) for name in type(value).model_fields)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))


def _children(value: Any) -> Iterator[Any]:
    return (item for _, item in _named_children(value))


def _is_field_atom(value: Any) -> bool:
    """A typed output's value that cannot carry a tag and is found by field instead: a bool or an Enum member."""
    return isinstance(value, (bool, enum.Enum))


def _texts(value: Any, depth: int = 0) -> Iterator[str]:
    """The texts of an output, and the strings inside it when it is JSON (json.loads undoes its escapes)."""
    if isinstance(value, enum.Enum):
        return
    if isinstance(value, str):
        yield value.strip()
        if depth == 0:
            yield from (text for text in _texts(_json_in(value), depth + 1) if text)
    elif depth < 4:
        for item in _children(value):
            yield from _texts(item, depth + 1)


class Trace:
    """The nodes of one sample and the edges between them; each edge records how it was found (EDGE_KINDS).

    Edges follow values. tag: a Traced str (or anything its str methods made) knows its nodes, and so
    do the ints and floats a node returned (and arithmetic on them), fields of typed outputs included.
    identity: another object a node returned (a list, a pydantic model, a namedtuple) is known as itself
    while the trace lives; containers, models and dataclasses are looked into. content: a plain str
    made another way (an f-string, json.loads of an output, a join) links to the latest node whose
    output, or a string inside its JSON, equals it, or, both at least MIN_CONTAINED characters long,
    contains it or is contained in it as a whole run of words; int() or float() of a reply that is one
    number links to that reply. field: a bool or Enum member of a typed output, found under the same
    field name (an Enum member anywhere). Other numbers, None and short texts are never matched, so
    no edge is invented for them.
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.loss: Node | None = None  # recorded by record_loss, once the eval has scored the output
        self._producers: dict[int, tuple[int, Any]] = {}  # id(object) -> (node id, object kept alive)
        self._output_texts: list[tuple[int, str]] = []  # (node id, a text in its output), for content matches
        self._fields: list[tuple[int, str | None, Any]] = []  # (node id, field name, bool or Enum) of typed outputs
        self._numbers: list[tuple[int, float]] = []  # (node id, the number) of outputs that are one number
        self._calls: dict[str, int] = {}
        self.raised_in: int | None = None  # the node whose call raised, when one did

    def record(self, kind: Literal["llm", "function"], name: str, inputs: dict[str, Any], output: Any,
               parameters: dict[str, str] | None = None, messages: list[dict[str, Any]] | None = None,
               error: BaseException | None = None) -> Any:
        """Add a node; return its output, tagged. With `error`, the call raised it: the node is kept (it
        may be the cause) and the sample's loss will link to it."""
        node = self._add(kind, name, inputs, output)
        node.values = dict(parameters or {})
        node.parameters, node.messages = list(node.values), messages
        if error is not None:
            node.error = short_error(error)
            self.raised_in = node.id
            return output
        self._output_texts += [(node.id, text) for text in _texts(output) if len(text) >= MIN_MATCH]
        if isinstance(output, str) and _number(output.strip()) is not None:  # a reply that is one number
            self._numbers.append((node.id, _number(output.strip())))
        self._fields += [(node.id, key, atom) for key, atom in _field_atoms(output)]
        return self._tag(output, node.id)

    def record_loss(self, prediction: Any, target: Any, score: float) -> Node:
        """Close the trace: the loss node, fed by whatever produced the prediction."""
        self.loss = self._add("loss", "loss", {"prediction": prediction, "target": target}, score)
        return self.loss

    def record_raised(self, error: BaseException, target: Any) -> Node:
        """Close the trace of a sample whose workflow raised: a loss node scored 0, fed by the call that
        raised, or, when code outside any call raised, by the last call before it (whose output that
        code was most likely handling)."""
        self.loss = self._add("loss", "loss", {"prediction": None, "target": target}, 0.0)
        self.loss.error = short_error(error)
        cause, how = (self.raised_in, "raised in") if self.raised_in is not None else (
            len(self.nodes) - 2 if len(self.nodes) > 1 else None, "raised after")
        if cause is not None:
            self.loss.parents, self.loss.edges = [cause], {cause: how}
        return self.loss

    def _add(self, kind: Literal["llm", "function", "loss"], name: str, inputs: dict[str, Any], output: Any) -> Node:
        edges = self._parents(inputs)
        node = Node(id=len(self.nodes), kind=kind, name=name, call_index=self._calls.get(name, 0),
                    inputs=inputs, output=output, parents=sorted(edges), edges=dict(sorted(edges.items())))
        self._calls[name] = node.call_index + 1
        self.nodes.append(node)
        return node

    def _tag(self, value: Any, node_id: int, depth: int = 0) -> Any:
        """Mark an output as produced by a node: its texts and numbers carry the node's tag, inside lists,
        tuples (named ones too), dicts, pydantic models and dataclasses; other objects are known by identity."""
        if isinstance(value, enum.Enum):  # a member (a str or int Enum's too) stays itself: found by field
            return value
        if isinstance(value, (str, float)) or (isinstance(value, int) and not isinstance(value, bool)):
            return _retag(value, (node_id,))
        if depth > 4 or isinstance(value, _ATOMS):
            return value
        if isinstance(value, tuple) and hasattr(type(value), "_fields"):  # a namedtuple: rebuilt field by field
            value = type(value)(*(self._tag(item, node_id, depth + 1) for item in value))
        elif isinstance(value, (list, tuple)):
            value = type(value)(self._tag(item, node_id, depth + 1) for item in value)
        elif isinstance(value, dict):
            value = {key: self._tag(item, node_id, depth + 1) for key, item in value.items()}
        elif isinstance(value, BaseModel):  # fields tagged in place: the object stays the caller's type
            for name in type(value).model_fields:
                value.__dict__[name] = self._tag(value.__dict__[name], node_id, depth + 1)
        self._producers[id(value)] = (node_id, value)
        return value

    def _parents(self, value: Any, depth: int = 0, key: str | None = None) -> dict[int, str]:
        """The nodes a value came from, and how each was found."""
        if isinstance(value, _TRACED):
            return dict.fromkeys(value.node_ids, "tag")
        if _is_field_atom(value):
            return dict.fromkeys(self._by_field(key, value), "field")
        if isinstance(value, str):
            return dict.fromkeys(self._by_content(value.strip()), "content")
        if isinstance(value, (int, float)) and self._numbers:  # int(reply) or float(reply) of a one-number reply
            latest = [node_id for node_id, number in self._numbers if number == value][-1:]
            return dict.fromkeys(latest, "content")
        if isinstance(value, _ATOMS) or depth > 4:
            return {}
        found = {self._producers[id(value)][0]: "identity"} if id(value) in self._producers else {}
        for name, item in _named_children(value):
            for node_id, how in self._parents(item, depth + 1, name).items():
                found.setdefault(node_id, how)
        return found

    def _by_field(self, key: str | None, atom: Any) -> set[int]:
        """Typed outputs that hold this bool or Enum member under the same field name. An Enum member is a
        type of its own, so it is matched without a name too; a bare bool never is (too common to place)."""
        if key is None and isinstance(atom, bool):
            return set()
        return {node_id for node_id, field_name, held in self._fields
                if type(held) is type(atom) and held == atom and (key is None or field_name == key)}

    def _by_content(self, text: str) -> set[int]:
        """Nodes whose output (or a string in its JSON) equals the text, or, both long enough not to meet by
        chance, contains it or is contained in it as a whole run of words."""
        if len(text) < MIN_MATCH:
            return set()
        latest: dict[str, int] = {}  # matched output text -> the latest node that gave it
        for node_id, output in self._output_texts:
            if output == text or (min(len(output), len(text)) >= MIN_CONTAINED
                                  and (_contains_words(text, output) or _contains_words(output, text))):
                latest[output] = node_id
        return set(latest.values())

    def reached(self) -> dict[str, str]:
        """Which parameters the loss reached, and how the first edge on the way to each was found: what
        a sample's backward pass could give gradients to (the debug view of a run's traces)."""
        if self.loss is None:
            return {}
        reached: dict[str, str] = {}
        stack = [(parent, how) for parent, how in self.loss.edges.items()]
        seen: set[int] = set()
        while stack:
            node_id, how = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            node = self.nodes[node_id]
            for name in node.parameters:
                reached.setdefault(name, how)
            stack += [(parent, how) for parent in node.edges]
        return reached


def _json_in(text: str) -> Any:
    """The JSON value a text holds (inside a code fence, or from its first brace or bracket), or None."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _field_atoms(value: Any, key: str | None = None, depth: int = 0) -> Iterator[tuple[str | None, Any]]:
    if _is_field_atom(value):
        yield key, value
    elif depth < 4 and not isinstance(value, (str, bytes)):
        for name, item in _named_children(value):
            yield from _field_atoms(item, name, depth + 1)


def _contains_words(text: str, part: str) -> bool:
    """`part` occurs in `text` with no letter or digit joined to either end."""
    start = text.find(part)
    while start >= 0:
        end = start + len(part)
        if (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
            return True
        start = text.find(part, start + 1)
    return False
