"""Metrics: the built-in ones, functions of (prediction, target) -> score in [0, 1], and Metric, which
also runs a user's own: a function, sync or async, of (prediction, example) returning a score in
[0, 1], or a score and a feedback text that the backward engine then sees as the loss's feedback."""
from __future__ import annotations

import collections
import inspect
import json
import re
import string
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from raygrad.data import Example

EvalFn = Callable[[str, str], float]

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                "nineteen", "twenty"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.I)


def _normalize(text: str) -> str:
    text = text.lower().strip()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def last_number(text: str) -> float | None:
    """The last number in a text, digits or a number word ('seven')."""
    found = _NUMBER.findall(text.replace(",", ""))
    if not found:
        return None
    last = found[-1].lower()
    return float(NUMBER_WORDS.index(last)) if last in NUMBER_WORDS else float(last)


def exact_match(prediction: str, target: str) -> float:
    return float(_normalize(prediction) == _normalize(target))


def number_match(prediction: str, target: str) -> float:
    """1 when the last number of the reply equals the target's number."""
    predicted, expected = last_number(prediction), last_number(target)
    return float(predicted is not None and expected is not None and predicted == expected)


def contains(prediction: str, target: str) -> float:
    return float(_normalize(target) in _normalize(prediction))


def f1(prediction: str, target: str) -> float:
    """SQuAD-style token F1."""
    predicted, expected = _normalize(prediction).split(), _normalize(target).split()
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return float(predicted == expected)
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


EVALS: dict[str, EvalFn] = {"exact": exact_match, "number": number_match, "contains": contains, "f1": f1}


class MetricError(ValueError):
    """A metric's reply that is not a score in [0, 1] (with, optionally, a feedback text)."""


def render(value: Any) -> str:
    """A prediction or target as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


class Metric:
    """What a run scores samples with: `await metric(prediction, example)` -> (score, feedback or None)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "metric")
        self.builtin = fn in EVALS.values()  # built-ins compare texts: (prediction, target)

    async def __call__(self, prediction: Any, example: Example) -> tuple[float, str | None]:
        if self.builtin:
            result: Any = self.fn(render(prediction), render(example.target))
        else:
            result = self.fn(prediction, example)
            if inspect.isawaitable(result):
                result = await result
        score, feedback = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1 or \
                not (feedback is None or isinstance(feedback, str)):
            raise MetricError(f"metric {self.name} returned {result!r}: expected a score in [0, 1], "
                              "or (score, feedback text)")
        return float(score), feedback


def as_metric(metric: Metric | Callable[..., Any] | str) -> Metric:
    """A Metric from a built-in's name ("exact", "number", "contains", "f1") or a function."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in EVALS:
            raise KeyError(f"no built-in metric {metric!r} (have: {', '.join(EVALS)})")
        return Metric(EVALS[metric], metric)
    return Metric(metric)
