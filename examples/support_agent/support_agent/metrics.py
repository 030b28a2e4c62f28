"""Did the agent's answer carry the outcome the request needed (a refund, a delivery date, a ticket)?"""
from __future__ import annotations


def outcome(prediction: str, example) -> tuple[float, str | None]:
    expected = str(example.target).lower()
    if expected in prediction.lower():
        return 1.0, None
    return 0.0, f"the answer should have said {example.target!r}"
