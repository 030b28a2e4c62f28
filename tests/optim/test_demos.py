"""The demo optimizer: few-shot demos bootstrapped from correct traces and labeled from wrong ones,
validated like any proposal."""
from __future__ import annotations

import random

from raygrad.core.workflow import LLMCall, Parameter, Workflow, run_forward
from raygrad.data import Example
from raygrad.optim.demos import Demo, add_to_pool, collect_demos, labeled_demos, propose_demos
from raygrad.optim.metrics import exact_match, number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.tasks import ItemKind, ObjectCount
from raygrad.tasks.item_kind import generate_item_kinds
from raygrad.tasks.object_count import solve_object_counting
from raygrad.testing import RESPONDERS, ScriptedLLM, requested_schema, unit_hash
from raygrad.testing import object_count_examples as data


def demos_help(messages, body):
    """A task model that is right about a third of the time, and always when shown worked examples."""
    question = messages[-1]["content"]
    if requested_schema(body):  # the backward engine's and the optimizer's calls ask for JSON
        return RESPONDERS["object_count_trainer"](messages, body)
    truth = solve_object_counting(question)
    right = any(m["role"] == "assistant" for m in messages) or unit_hash(question) < 0.35
    return f"Answer: {truth if right else truth + 1}"


async def test_collects_the_calls_that_used_the_parameter():
    workflow = ObjectCount()
    _, trace = await run_forward(workflow, "I have a cow and a pig. How many animals do I have?",
                                 ScriptedLLM(lambda m, b: "Answer: 2"))
    demos = collect_demos(trace, "s1", "demos")
    assert demos == [Demo(sample_id="s1", input="I have a cow and a pig. How many animals do I have?",
                          output="Answer: 2")]
    assert collect_demos(trace, "s1", "no_such_parameter") == []


def test_pool_is_bounded_and_candidates_leave_out_the_minibatch():
    pool: list[Demo] = []
    for i in range(100):
        add_to_pool(pool, [Demo(sample_id=str(i), input=f"q{i}", output=f"a{i}")], max_size=10)
    assert [d.sample_id for d in pool] == [str(i) for i in range(10)]
    candidates = propose_demos(pool, "", k=4, per_candidate=3, rng=random.Random(0),
                               exclude_samples={"0", "1", "2", "3"})
    assert len(candidates) == 4 and len(set(candidates)) == 4
    for value in candidates:
        assert value.count("<EXAMPLE>") == 3
        assert not any(f"Input:\nq{i}\n" in value for i in range(4))
    assert propose_demos(pool, "", 3, 3, random.Random(0), {str(i) for i in range(10)}) == []


async def test_trainer_accepts_demos_from_correct_samples_without_gradient_calls():
    clients = {role: ScriptedLLM(demos_help) for role in ("task", "backward", "optimizer")}
    train, val = data(16, 11), data(24, 12)
    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    state = await Trainer(workflow, number_match, clients,
                          TrainerConfig(steps=3, batch_size=4, proposals=2, seed=1)).fit(train, val)
    assert state.initial_val < 0.6 and state.best_val == 1.0
    accepted = [c for c in state.candidates if c.accepted and c.parameter == "demos"]
    assert len(accepted) == 1 and workflow.demos.value == accepted[0].value
    # Every demo shown is a training sample with its right answer, and none is from the batch it was tested on.
    batch = set(state.steps[accepted[0].step].batch)
    shown = [d for d in state.demo_pool["demos"] if f"Input:\n{d.input}\n" in accepted[0].value]
    assert 1 <= len(shown) == accepted[0].value.count("<EXAMPLE>") <= 3
    assert not {d.sample_id for d in shown} & batch
    by_id = {ex.id: ex for ex in train}
    assert all(number_match(d.output, by_id[d.sample_id].target) == 1.0 for d in shown)
    # Demos are never the subject of a backward call: only the two text parameters are.
    assert not any('name="demos"' in m[1]["content"].split("<VARIABLE", 1)[-1][:40]
                   for m in clients["backward"].calls)
    assert all('<VARIABLE role="demos"' not in m[1]["content"] for m in clients["backward"].calls)


class Reworded(Workflow):
    """One call that is given a text made from the input, not the input itself."""

    def __init__(self):
        self.demos = Parameter("", role="demos")
        self.answer = LLMCall(system=[self.demos])

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.answer(question=f"About {input}:")


async def test_labeled_demos_come_from_a_call_given_the_samples_own_input_with_the_target_as_output():
    example = Example(id="s7", input="banana", target="fruit")
    _, trace = await run_forward(ItemKind(), "banana", ScriptedLLM(lambda m, b: "A banana is a yellow fruit."))
    assert labeled_demos(trace, example, "demos") == [Demo(sample_id="s7", input="banana", output="fruit",
                                                           labeled=True)]
    # The output a call owed is known only when it was given the sample's inputs as they are.
    _, trace = await run_forward(Reworded(), "banana", ScriptedLLM(lambda m, b: "A fruit."))
    assert labeled_demos(trace, example, "demos") == []


def only_with_demos(messages, body):
    """A task model that never answers in one word, unless earlier turns of the chat show it how."""
    item = messages[-1]["content"]
    kind = next(r["target"] for r in generate_item_kinds(500) if r["input"] == item)
    return kind if any(m["role"] == "assistant" for m in messages) else f"A {item} is a kind of {kind}."


async def test_a_model_that_gets_nothing_right_learns_from_labeled_demos_and_nothing_without_them():
    rows = generate_item_kinds(60, seed=3)
    train = [Example(id=f"t{i}", **r) for i, r in enumerate(rows[:20])]
    val = [Example(id=f"v{i}", **r) for i, r in enumerate(rows[20:60])]
    outcomes = {}
    for labeled in (True, False):
        clients = {role: ScriptedLLM(only_with_demos) for role in ("task", "backward", "optimizer")}
        workflow = ItemKind()
        config = TrainerConfig(steps=3, batch_size=5, proposals=2, seed=0, labeled_demos=labeled,
                               parameters=["demos"])
        state = await Trainer(workflow, exact_match, clients, config).fit(train, val)
        outcomes[labeled] = state, clients["task"].calls
    with_labels, _ = outcomes[True]
    without, calls_without = outcomes[False]
    assert with_labels.initial_val == 0.0 and with_labels.best_val == 1.0
    assert "Input:\n" in with_labels.values["demos"]
    # The ablation: with only the model's own correct answers to draw from, there is nothing to learn.
    assert without.best_val == 0.0 and without.values["demos"] == "" and not without.candidates
    assert all(len(m) == 2 for m in calls_without)  # no call was ever shown a demo
