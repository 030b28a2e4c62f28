"""Typed outputs: an LLM call that returns a validated pydantic object instead of text.

The call asks for structured output with the model's JSON schema, in OpenAI's strict form (every
object closed, every property required, no defaults); the LLM layer turns that into what its
provider takes (`ModelConfig.structured_output`). The reply is validated always; one that does not
validate raises OutputInvalid, which makes the sample an error sample whose feedback is the error.
Field descriptions may be trainable Parameters: they are written into the schema the model sees.
"""
from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from raygrad.llm.client import InvalidReply, parse_structured

# Keywords OpenAI's strict mode refuses; pydantic writes them, and they say nothing the model needs.
_UNSUPPORTED = ("default", "title")


class OutputInvalid(ValueError):
    """An LLM call's reply that does not validate against its declared output: the prompt's fault."""


def output_schema(model: type[BaseModel], descriptions: dict[str, str] | None = None) -> dict[str, Any]:
    """The output's JSON schema in strict form, with the given field descriptions written in."""
    schema = copy.deepcopy(model.model_json_schema())
    for field, text in (descriptions or {}).items():
        if field not in schema.get("properties", {}):
            raise KeyError(f"{model.__name__} has no field {field!r} to describe (fields: "
                           f"{', '.join(schema.get('properties', {}))})")
        schema["properties"][field]["description"] = text
    return _strict(schema)


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items() if key not in _UNSUPPORTED}
        if node.get("type") == "object" and "properties" in node:
            node["required"] = list(node["properties"])
            node["additionalProperties"] = False
    elif isinstance(node, list):
        node = [_strict(item) for item in node]
    return node


def response_format(model: type[BaseModel], schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's structured-output request for the schema (litellm passes it on or translates it)."""
    return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": True}}


def parse_output(text: str, model: type[BaseModel], call: str) -> BaseModel:
    """The validated object, or OutputInvalid naming the call and what did not validate."""
    try:
        return parse_structured(text, model)
    except InvalidReply as err:
        raise OutputInvalid(f"{call}: {err}") from None
