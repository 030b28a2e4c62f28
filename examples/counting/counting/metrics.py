"""A feedback metric: the score, and a sentence the backward engine sees as the loss's feedback."""
from __future__ import annotations

import re

from raygrad import Example


def count_with_feedback(prediction: str, example: Example) -> tuple[float, str]:
    numbers = re.findall(r"-?\d+", str(prediction))
    if not numbers:
        return 0.0, "The reply holds no number; the answer must end with the count as digits."
    got, want = int(numbers[-1]), int(example.target)
    if got == want:
        return 1.0, "Correct."
    direction = "too high: items of other categories were probably counted" if got > want else \
        "too low: some items, or their quantities, were probably missed"
    return 0.0, f"The count {got} is {direction} (expected {want})."
