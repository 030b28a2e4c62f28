"""The simulated provider's rules: the answer is hidden in the questions, found only through the
error samples' gradients; and the ablation that shows the gradients are what finds it."""
from __future__ import annotations

import asyncio
import json
import statistics

from raygrad.optim.evaluate import evaluate
from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.tasks import ObjectCount
from raygrad.tasks.simulated import CATALOG, FIXES, answers_right, hidden_cause, holds
from raygrad.testing import RESPONDERS, ScriptedLLM, object_count_examples

QUESTIONS = [row.input for row in object_count_examples(400, 11)]


def test_instructions_match_as_words():
    assert holds("Please give ONLY the final answer!", "Give only the final answer.")
    assert not holds("Commonly, give the final answers", "only")
    assert not holds("Give only the final answers.", "Give only the final answer.")


def test_each_question_has_a_hidden_cause_and_rewording_changes_no_rule_decision():
    causes = [hidden_cause(q) for q in QUESTIONS]
    assert {c for c in causes if c} == set(FIXES) and 0.15 < causes.count(None) / len(causes) < 0.35
    bare = sum(answers_right("Answer.", q) for q in QUESTIONS) / len(QUESTIONS)
    fixed = sum(answers_right("Answer. " + " ".join(FIXES), q) for q in QUESTIONS) / len(QUESTIONS)
    decoys = sum(answers_right("Answer. " + " ".join(CATALOG[len(FIXES):]), q) for q in QUESTIONS) / len(QUESTIONS)
    assert 0.25 < bare < 0.45 and 0.8 < fixed < 0.92 and abs(decoys - bare) < 0.06  # decoys: sampling noise only
    one_fix = {f: sum(answers_right(f"Answer. {f}", q) for q in QUESTIONS if hidden_cause(q) == f) for f in FIXES}
    assert all(count > 0.6 * sum(hidden_cause(q) == f for q in QUESTIONS) for f, count in one_fix.items())


def _ask(role_schema: str, user: str) -> str:
    body = {"response_format": {"type": "json_schema", "json_schema": {"name": role_schema}}}
    return RESPONDERS["object_count_trainer"]([{"role": "user", "content": user}], body)


def test_the_backward_engine_names_a_cause_only_from_the_sample_it_is_shown():
    caused = [q for q in QUESTIONS if hidden_cause(q)][:60]
    named = [json.loads(_ask("FeedbackReply", f"<CALL>\nInput of the LLM call:\n{q}\nOutput of the LLM call:\n7\n"
                                               f"</CALL> (sample {i})"))["feedback"] for i, q in enumerate(caused)]
    right = sum(holds(text, hidden_cause(q)) for q, text in zip(caused, named)) / len(caused)
    assert 0.6 < right < 0.85  # BACKWARD_NOISE: the rest name a catalog instruction at random


def test_the_optimizer_uses_what_the_gradients_name_and_otherwise_guesses():
    fix = FIXES[2]
    gradients = "\n".join(f'[sample {i}, score 0.00] The prompt should tell the model: "{fix}"' for i in range(4))
    asks = [f"<VARIABLE name=\"instruction\">\nAnswer.\n</VARIABLE>\n<GRADIENTS>\n{g}\n</GRADIENTS>\n"
            f"Propose 1 different improved values (run {i})" for i in range(40) for g in (gradients, "(none)")]
    proposals = [json.loads(_ask("Proposals", text))["proposals"][0] for text in asks]
    guided, blind = proposals[0::2], proposals[1::2]
    assert sum(holds(p, fix) for p in guided) > 0.7 * len(guided)
    assert sum(holds(p, fix) for p in blind) < 0.25 * len(blind)


async def _gain(responder: str, seed: int) -> float:
    clients = {role: ScriptedLLM(RESPONDERS[responder]) for role in ("task", "backward", "optimizer")}
    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    test = object_count_examples(100, 300 + seed)
    before = (await evaluate(workflow, test, clients["task"], number_match)).score
    await Trainer(workflow, number_match, clients, TrainerConfig(steps=4, batch_size=4, proposals=3, seed=seed)
                  ).fit(object_count_examples(40, 100 + seed), object_count_examples(40, 200 + seed))
    return (await evaluate(workflow, test, clients["task"], number_match)).score - before


def test_ablation_gradients_replaced_by_noise_learn_measurably_less():
    """The same optimization, seeds and data; only the backward engine's feedback differs. (Measured when
    written, 10 seeds: a mean gain of 0.45 with the feedback, 0.37 with noise; more with the feedback on 8.)"""
    seeds = range(10)
    real = [asyncio.run(_gain("object_count_trainer", s)) for s in seeds]
    noise = [asyncio.run(_gain("object_count_noise_trainer", s)) for s in seeds]
    assert statistics.mean(real) > 0.3, real
    assert statistics.mean(real) - statistics.mean(noise) > 0.04, (real, noise)
    assert sum(r > n for r, n in zip(real, noise)) >= 7, (real, noise)


def test_the_simulator_reads_a_schema_asked_for_in_the_prompt():
    """A model without structured output gets the schema in its prompt (gpt-3.5-turbo, the paper's task model):
    the simulated backward engine and optimizer recognise their requests that way too."""
    import json

    from raygrad.llm.client import JSON_IN_PROMPT
    from raygrad.tasks.simulated import requested_schema

    asked = [{"role": "user", "content": "Write feedback." + JSON_IN_PROMPT.format(
        schema=json.dumps({"title": "FeedbackReply", "type": "object"}))}]
    assert requested_schema({}, asked) == "FeedbackReply"
    assert requested_schema({}, [{"role": "user", "content": "How many apples?"}]) is None
    assert requested_schema({"response_format": {"type": "json_schema", "json_schema": {"name": "Proposals"}}}) == \
        "Proposals"
