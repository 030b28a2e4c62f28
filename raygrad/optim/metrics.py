"""Metrics: (prediction, target) -> score in [0, 1]."""
from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable

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
