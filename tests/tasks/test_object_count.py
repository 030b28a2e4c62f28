from __future__ import annotations

import json

from raygrad.tasks.object_count import generate_object_counting, solve_object_counting


def test_generator_is_seeded_and_its_answers_are_exact():
    first, again = generate_object_counting(200, seed=5), generate_object_counting(200, seed=5)
    assert first == again and first != generate_object_counting(200, seed=6)
    for example in first:
        assert example["input"].startswith("I have ") and example["input"].endswith("do I have?")
        assert solve_object_counting(example["input"]) == int(example["target"])
    assert len({e["target"] for e in first}) > 5


def test_generated_questions_read_like_bbh(bbh_object_counting):
    bbh = json.loads(bbh_object_counting.read_text())["examples"]
    categories = {e["input"].rsplit("How many ", 1)[1].split(" do I")[0] for e in bbh}
    generated = {e["input"].rsplit("How many ", 1)[1].split(" do I")[0] for e in generate_object_counting(300)}
    assert generated <= categories
