"""ObjectCount (BIG-Bench Hard object counting, the paper's task): its workflow, a seeded generator of
questions in BBH's style, their solver, and the simulated provider's answers.

"I have a flute, two pianos, a cabbage, and a trombone. How many musical instruments do I have?" -> "4"
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from raygrad.optim.metrics import NUMBER_WORDS
from raygrad.tasks.generic import SingleCall
from raygrad.tasks.simulated import answers_right, last


class ObjectCount(SingleCall):
    """BIG-Bench Hard object counting (the paper's ObjectCount), scored by the last number in the reply."""

    default_instruction = "You will answer a reasoning question. Think step by step."
    default_output_format = "Respond with the final answer as a number on the last line, like 'Answer: 5'."
    default_eval = "number"

CATEGORIES: dict[str, list[str]] = {
    "musical instruments": ["piano", "flute", "trombone", "violin", "accordion", "clarinet", "drum",
                            "trumpet"],
    "fruits": ["apple", "banana", "plum", "peach", "grape", "orange", "strawberry", "nectarine", "raspberry",
               "blackberry"],
    "vegetables": ["carrot", "onion", "potato", "cabbage", "yam", "garlic", "celery", "lettuce head",
                   "stalk of celery", "head of broccoli", "cauliflower"],
    "animals": ["cat", "dog", "rabbit", "goat", "pig", "cow", "donkey", "snake", "frog", "mouse", "bear",
                "duck", "chicken", "fish", "snail"],
    "objects": ["chair", "table", "bed", "couch", "car", "lamp", "microwave", "oven", "stove", "toaster",
                "fridge"],
}
_PLURALS = {"mouse": "mice", "fish": "fish", "peach": "peaches", "couch": "couches", "strawberry": "strawberries",
            "raspberry": "raspberries", "blackberry": "blackberries", "potato": "potatoes",
            "lettuce head": "lettuce heads", "stalk of celery": "stalks of celery",
            "head of broccoli": "heads of broccoli"}
_ITEM_CATEGORY = {item: category for category, items in CATEGORIES.items() for item in items}


def _plural(item: str) -> str:
    return _PLURALS.get(item, item + "s")


def _phrase(item: str, count: int) -> str:
    if count == 1:
        return ("an " if item[0] in "aeiou" else "a ") + item
    return f"{NUMBER_WORDS[count]} {_plural(item)}"


def generate_object_counting(size: int, seed: int = 0) -> list[dict[str, str]]:
    """`size` examples {"input", "target"}; the same seed always gives the same questions."""
    rng = random.Random(seed)
    examples = []
    for _ in range(size):
        category = rng.choice(list(CATEGORIES))
        others = [c for c in CATEGORIES if c != category]
        picks = rng.sample(CATEGORIES[category], rng.randint(2, min(6, len(CATEGORIES[category]))))
        distractors = [rng.choice(CATEGORIES[rng.choice(others)]) for _ in range(rng.randint(0, 3))]
        items = [(item, rng.choice([1, 1, 1, 2, 3, 4])) for item in picks]
        items += [(item, rng.choice([1, 1, 2])) for item in dict.fromkeys(distractors) if item not in picks]
        rng.shuffle(items)
        phrases = [_phrase(item, count) for item, count in items]
        listing = ", ".join(phrases[:-1]) + ", and " + phrases[-1]
        answer = sum(count for item, count in items if _ITEM_CATEGORY[item] == category)
        examples.append({"input": f"I have {listing}. How many {category} do I have?", "target": str(answer)})
    return examples


def solve_object_counting(question: str) -> int | None:
    """The true answer of a question in this style (used by the simulated provider), or None."""
    match = re.search(r"I have (.*)\. How many (.+?) do I have\?", question, re.S)
    if not match or match.group(2) not in CATEGORIES:
        return None
    wanted, total = match.group(2), 0
    singular = {_plural(item): item for item in _ITEM_CATEGORY}
    for phrase in re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group(1)):
        words = phrase.strip().split(" ", 1)
        if len(words) != 2:
            continue
        quantity, name = words
        count = 1 if quantity in ("a", "an") else (NUMBER_WORDS.index(quantity) if quantity in NUMBER_WORDS else 0)
        item = name if name in _ITEM_CATEGORY else singular.get(name)
        if item and _ITEM_CATEGORY[item] == wanted:
            total += count
    return total


def respond(messages: list[dict], body: dict[str, Any],
            right: Callable[[str, str], bool] = answers_right) -> str:
    """Simulated answers: the right count when the system prompt fixes the question's hidden cause
    (raygrad.tasks.simulated; `right(system, question)` for a task with rules of its own), else one more."""
    system, question = last(messages, "system"), last(messages, "user")
    truth = solve_object_counting(question)
    if truth is None:
        return "I do not know."
    correct = right(system, question)
    return f"Let me count.\nAnswer: {truth if correct else truth + 1}"


def respond_exactly(messages: list[dict], body: dict[str, Any]) -> str:
    """Always the right count, in the format the prompt asks for: DSPy's field markers when it shows
    them, else 'Answer: N'. For comparing frameworks: a sample scored wrong was lost, not misanswered."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    truth = solve_object_counting(text[text.find("I have "):])
    if truth is None:
        return "I do not know."
    if "[[ ## answer ## ]]" in text:
        return f"[[ ## answer ## ]]\n{truth}\n\n[[ ## completed ## ]]"
    return f"Answer: {truth}"
