"""The share of fields extracted right, and which were wrong as the feedback the backward engine reads."""
from __future__ import annotations

from enum import Enum
from typing import Any

FIELDS = ("email_type", "urgency", "action_required", "amount", "key_dates")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return sorted(str(item) for item in value)
    return value


def fields_right(prediction: dict, example) -> tuple[float, str | None]:
    target = example.target
    wrong = [name for name in FIELDS if _plain(prediction.get(name)) != _plain(target[name])]
    feedback = "; ".join(f"{name} was {_plain(prediction.get(name))!r}, expected {_plain(target[name])!r}"
                         for name in wrong)
    return 1 - len(wrong) / len(FIELDS), feedback or None
