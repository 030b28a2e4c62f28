"""An LLM call's messages, built from parts: parameters and templates over the call's inputs, in the
system message and in the user message, conversation history, and images.

A part is a `Parameter` (its value, as it is this run: never formatted) or a `str` template whose
`{fields}` name the call's inputs. Without user parts, the inputs form the user message in a fixed
layout (one input as it is; several as `name:` blocks). Inputs render as text: strings as they are,
lists as numbered lines, pydantic models, dicts and other containers as JSON, images as content parts.
Demos a demos parameter holds go as earlier turns of the chat.
"""
from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from raygrad.core import prompts


@dataclass(frozen=True)
class Image:
    """An image input: a file path, raw bytes or a URL. Sent as the provider's image content part; the
    journal hashes its bytes; the backward engine and the optimizer see `[image: name]` in its place."""

    source: str | bytes | Path
    name: str = ""
    mime_type: str | None = None

    def url(self) -> str:
        """A URL as given, or the image's bytes as a data URL."""
        if isinstance(self.source, str) and self.source.startswith(("http://", "https://", "data:")):
            return self.source
        data = self.source if isinstance(self.source, bytes) else Path(self.source).read_bytes()
        mime = self.mime_type or (mimetypes.guess_type(str(self.source))[0] if not isinstance(self.source, bytes)
                                  else None) or "image/png"
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"

    def label(self) -> str:
        if self.name:
            return self.name
        if isinstance(self.source, bytes):
            return f"{len(self.source)} bytes, sha256 {hashlib.sha256(self.source).hexdigest()[:12]}"
        return Path(str(self.source)).name if not str(self.source).startswith("data:") else "inline image"

    def content_part(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.url()}}


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


def as_text(value: Any) -> str:
    """An input as the model reads it."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)) and not any(isinstance(v, (dict, BaseModel)) for v in value):
        return "\n".join(f"[{i + 1}] {as_text(v)}" for i, v in enumerate(value)) or "(none)"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, Image):
        return f"[image: {value.label()}]"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Image):
        return f"[image: {value.label()}]"
    return str(value)


def template_fields(template: str) -> list[str]:
    """The input names a template refers to, in order."""
    return [field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field]


class TemplateError(KeyError):
    """A template names an input the call was not given."""

    def __str__(self) -> str:
        return str(self.args[0])


def render_parts(parts: Sequence[Any], inputs: dict[str, Any], values: dict[str, str], call: str) -> str:
    """The text of a message: each part's text, blank-line separated; empty parts left out."""
    texts = []
    for part in parts:
        if isinstance(part, str):
            missing = [f for f in template_fields(part) if f not in inputs]
            if missing:
                raise TemplateError(f"{call}: the template {part[:60]!r} names input {missing[0]!r}, and the call "
                                    f"was given {sorted(inputs) or 'no inputs'}")
            text = part.format_map({name: _Formatted(value) for name, value in inputs.items()})
        else:  # a Parameter: its value this run, as written
            text = values[part.name or ""]
        if text.strip():
            texts.append(text)
    return "\n\n".join(texts)


class _Formatted:
    """An input inside a template: `{context}` formats as the input's text; `{item.field}` reaches into it."""

    def __init__(self, value: Any):
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(as_text(self.value), spec)

    def __getattr__(self, name: str) -> _Formatted:
        return _Formatted(getattr(self.value, name))

    def __getitem__(self, key: Any) -> _Formatted:
        return _Formatted(self.value[key])


def default_user(inputs: dict[str, Any]) -> str:
    """The user message when a call has no user parts: one input as it is, several as `name:` blocks."""
    texts = {name: value for name, value in inputs.items() if not isinstance(value, Image)}
    if len(texts) == 1:
        return as_text(next(iter(texts.values())))
    return "\n\n".join(f"{key}:\n{as_text(value)}" for key, value in texts.items())


def user_content(text: str, images: list[Image]) -> str | list[dict[str, Any]]:
    """The user message's content: its text, or content parts when images go with it."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image.content_part() for image in images)]


def images_in(inputs: dict[str, Any]) -> list[Image]:
    found = []
    for value in inputs.values():
        if isinstance(value, Image):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [v for v in value if isinstance(v, Image)]
    return found


def message_text(message: dict[str, Any]) -> str:
    """A message as text for the backward engine and the optimizer: images as placeholders."""
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(part.get("text", "") if part.get("type") == "text" else "[image]" for part in content)
    if content is None and message.get("tool_calls"):
        return "\n".join(f"(calls {c['function']['name']}({c['function']['arguments']}))"
                         for c in message["tool_calls"])
    return str(content or "")


def transcript(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(system text, everything after it as a labelled transcript) of a call's messages."""
    system = "\n\n".join(message_text(m) for m in messages if m["role"] == "system") or "(none)"
    rest = [m for m in messages if m["role"] != "system"]
    if len(rest) == 1:
        return system, message_text(rest[0])
    return system, "\n".join(f"[{m['role']}] {message_text(m)}" for m in rest)


def without_images(messages: list[dict[str, Any]], images: list[Image]) -> list[dict[str, Any]]:
    """The messages as the trace keeps them: each image part replaced by `[image: name]` (no bytes travel)."""
    if not images:
        return messages
    labels = iter(images)
    kept = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [{"type": "text", "text": f"[image: {next(labels).label()}]"}
                       if part.get("type") == "image_url" else part for part in content]
            message = {**message, "content": content}
        kept.append(message)
    return kept
