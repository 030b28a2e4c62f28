"""Native tool calls: functions an LLM call offers the model as OpenAI-style `tools`.

A tool's JSON schema comes from its signature (pydantic validates the model's arguments against it)
and its description from its docstring, or from a trainable Parameter. Each tool call the model
makes is a function node of the trace whose input is that turn's reply, so feedback on a tool's
result reaches the turn (and the prompt) that asked for it.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


class ToolError(ValueError):
    """A tool call the model got wrong (an unknown tool, arguments that do not validate), or a call that
    kept calling tools past its turn limit: the prompt's fault, so the sample is an error sample."""


class Tool:
    """A function offered to the model. `description` may be a Parameter (trainable), a text, or None for
    the function's docstring."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: Any = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "tool")
        self.description = description if description is not None else inspect.cleandoc(fn.__doc__ or "")
        self.arguments = _arguments_model(fn, self.name)

    def parameter(self) -> Any:
        """The trainable description, if it is a Parameter (duck-typed: core.workflow imports this module)."""
        return None if isinstance(self.description, str) else self.description

    def schema(self, values: dict[str, str]) -> dict[str, Any]:
        description = self.description if isinstance(self.description, str) else values[self.description.name]
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        return {"type": "function", "function": {"name": self.name, "description": description,
                                                 "parameters": parameters}}

    def validate(self, arguments: str) -> dict[str, Any]:
        try:
            parsed = json.loads(arguments or "{}")
            return dict(self.arguments.model_validate(parsed))
        except (json.JSONDecodeError, ValidationError) as err:
            raise ToolError(f"the model called {self.name} with arguments that do not validate: "
                            f"{' '.join(str(err).split())[:300]}") from None


def as_tool(tool: Tool | Callable[..., Any]) -> Tool:
    return tool if isinstance(tool, Tool) else Tool(tool)


def _arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def assistant_message(text: str, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's turn as it goes back to it: OpenAI's shape, content None when it only called tools."""
    return {"role": "assistant", "content": text or None, "tool_calls": tool_calls}


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def shown_calls(tool_calls: list[dict[str, Any]]) -> str:
    """A turn that called tools, as text in the trace (what the backward engine reads as its output)."""
    return "\n".join(f"{c['function']['name']}({c['function']['arguments']})" for c in tool_calls)
