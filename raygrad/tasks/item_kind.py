"""ItemKind: name the kind of a thing ("banana" -> "fruit"), one word of six, scored by exact match.

The task of `make demo`. A small model knows what a banana is but, asked zero-shot, says so in a
sentence ("A banana is a yellow fruit."), which exact match scores 0: its output format is what fails,
and few-shot demos fix that. A seeded shuffle of the word lists below gives the rows, so the demo
needs no download; the same seed always gives the same rows.
"""
from __future__ import annotations

import random
from typing import Any

from raygrad.tasks.generic import SingleCall
from raygrad.tasks.simulated import answers_right, last

KINDS: dict[str, list[str]] = {
    "animal": ["cat", "dog", "horse", "cow", "pig", "sheep", "goat", "lion", "tiger", "bear", "wolf", "fox",
               "rabbit", "mouse", "elephant", "giraffe", "zebra", "monkey", "deer", "camel", "kangaroo", "panda",
               "donkey", "squirrel", "hippo", "otter", "beaver", "leopard", "moose", "koala", "hamster"],
    "fruit": ["apple", "banana", "orange", "pear", "peach", "plum", "grape", "cherry", "lemon", "lime", "mango",
              "pineapple", "strawberry", "raspberry", "blueberry", "blackberry", "watermelon", "melon", "kiwi",
              "apricot", "papaya", "coconut", "fig", "pomegranate", "grapefruit", "nectarine", "tangerine",
              "cranberry", "guava", "lychee"],
    "vegetable": ["carrot", "potato", "onion", "cabbage", "broccoli", "cauliflower", "spinach", "lettuce", "celery",
                  "cucumber", "pea", "bean", "garlic", "leek", "radish", "turnip", "beetroot", "zucchini",
                  "asparagus", "kale", "pumpkin", "eggplant", "yam", "artichoke", "parsnip", "okra", "shallot",
                  "sweet potato", "brussels sprout", "bell pepper"],
    "instrument": ["piano", "guitar", "violin", "flute", "drum", "trumpet", "trombone", "clarinet", "saxophone",
                   "cello", "harp", "banjo", "accordion", "tuba", "oboe", "harmonica", "ukulele", "bagpipe",
                   "xylophone", "viola", "bassoon", "mandolin", "tambourine", "organ", "cymbal", "sitar", "bugle",
                   "piccolo", "lute", "french horn"],
    "vehicle": ["car", "bus", "truck", "train", "bicycle", "motorcycle", "airplane", "helicopter", "boat", "ship",
                "taxi", "van", "tractor", "scooter", "tram", "ambulance", "jeep", "canoe", "yacht", "submarine",
                "rocket", "sled", "wagon", "ferry", "limousine", "bulldozer", "kayak", "glider", "trolley",
                "fire engine"],
    "clothing": ["shirt", "dress", "skirt", "jacket", "coat", "sweater", "scarf", "hat", "sock", "shoe", "boot",
                 "glove", "tie", "belt", "vest", "blouse", "hoodie", "jeans", "shorts", "cap", "sandal", "pajamas",
                 "robe", "uniform", "apron", "mitten", "cardigan", "tuxedo", "raincoat", "t-shirt"],
}
_KIND_OF = {item: kind for kind, items in KINDS.items() for item in items}


class ItemKind(SingleCall):
    """Name the kind of a thing with one of six words; exact match, so a sentence scores 0."""

    default_instruction = "Say what kind of thing it is: " + ", ".join(KINDS) + "."
    default_output_format = "Reply with one word."
    default_eval = "exact"


def generate_item_kinds(size: int, seed: int = 0) -> list[dict[str, str]]:
    """Up to `size` rows {"input": a thing, "target": its kind}, each thing once, in a seeded order."""
    rows = [{"input": item, "target": kind} for item, kind in _KIND_OF.items()]
    random.Random(seed).shuffle(rows)
    return rows[:size]


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """Simulated answers: the kind when the system prompt fixes the item's hidden cause (raygrad.tasks.simulated), else a sentence."""
    system, item = last(messages, "system"), last(messages, "user").strip()
    kind = _KIND_OF.get(item)
    if kind is None:
        return "I do not know."
    return kind if answers_right(system, item) else f"A {item} is a kind of {kind}."
