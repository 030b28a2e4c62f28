"""Parent selection from a Pareto pool, and merge of pool members (trainer.parents, trainer.merges)."""
from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from pydantic import ValidationError

from raygrad.optim.evaluate import evaluate
from raygrad.optim.execution import Stage2Result
from raygrad.optim.merge import next_merge
from raygrad.optim.parents import ParetoParents, front
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.state import PoolMember, TrainState, values_digest
from raygrad.optim.trainer import Trainer
from raygrad.runs.rundir import CheckpointFile
from raygrad.testing import ScriptedLLM
from raygrad.testing.weak_prompts import TRAINER_RESPONDERS, from_weak_prompts


def member(missed: list[int], score: float = 0.0, parents: list[int] | None = None, **values: str) -> PoolMember:
    return PoolMember(values=values or {"p": "x"}, score=score, missed=missed, parents=parents or [])


def state_with(pool: list[PoolMember]) -> TrainState:
    return TrainState(values=pool[0].values, initial_val=pool[0].score, best_val=max(m.score for m in pool),
                      history={}, pool=pool)


def test_the_front_holds_the_members_no_other_dominates_each_counted_by_the_samples_it_answers_right():
    pool = [member([0, 1, 2, 3]), member([2, 3]), member([0, 1]), member([1, 2, 3]), member([0, 1])]
    # 0 answers nothing; 3 answers {0}, inside 1's {0, 1}; 4 answers what 2 does and comes later.
    assert front(pool, 4) == {1: 2, 2: 2}


def test_a_candidate_joins_the_pool_only_when_it_answers_right_a_sample_no_member_answers_with_all_it_does():
    state = state_with([member([2, 3], 0.5)])
    parents = ParetoParents()

    def result(missed: list[int]) -> Stage2Result:
        return Stage2Result(score=0, strict_score=1 - len(missed) / 4, evaluated=4, total=4, stopped_early=False,
                            weak=missed)

    assert not parents.admit(state, {"p": "inside"}, result([1, 2, 3]), [0])
    assert not parents.admit(state, {"p": "same"}, result([2, 3]), [0])
    assert parents.admit(state, {"p": "new"}, result([0, 1, 3]), [0])
    assert [m.values["p"] for m in state.pool] == ["x", "new"] and state.pool[1].parents == [0]


def test_parents_are_drawn_as_often_as_the_samples_they_are_best_on_and_a_dominated_one_never():
    state = state_with([member([0, 1, 2, 3]), member([3], 0.75), member([0, 1, 2], 0.25)])
    drawn = Counter(ParetoParents().choose(state, random.Random(seed), 4) for seed in range(3000))
    assert set(drawn) == {1, 2}
    assert drawn[1] / drawn[2] == pytest.approx(3, rel=0.15)


def test_a_merge_takes_each_parameter_from_the_member_that_changed_it_since_their_common_ancestor():
    ancestor = member([0, 1, 2, 3], 0.0, a="a0", b="b0", c="c0")
    left = member([2, 3], 0.5, [0], a="a1", b="b0", c="c1")
    right = member([0, 1, 3], 0.25, [0], a="a0", b="b2", c="c2")
    state = state_with([ancestor, left, right])
    merged, pair = next_merge(state, 4)
    # b only `right` changed; c both did: the higher-scoring member's value.
    assert merged == {"a": "a1", "b": "b2", "c": "c1"} and pair == [1, 2]
    state.merges.append(pair)
    assert next_merge(state, 4) is None  # each pair once


def test_no_merge_of_a_member_with_one_built_on_it_or_of_values_already_validated():
    built_on = state_with([member([0, 1], 0.0, a="a0", b="b0"), member([1], 0.5, [0], a="a1", b="b0"),
                           member([0], 0.5, [1], a="a1", b="b1")])
    assert next_merge(built_on, 2) is None
    siblings = state_with([member([0, 1], 0.0, a="a0", b="b0"), member([1], 0.5, [0], a="a1", b="b0"),
                           member([0], 0.5, [0], a="a0", b="b1")])
    merged, _ = next_merge(siblings, 2)
    siblings.validated[values_digest(merged)] = 0.5
    assert next_merge(siblings, 2) is None


def test_merges_without_a_pool_and_early_acceptance_with_one_are_config_errors():
    with pytest.raises(ValidationError, match="merges needs parents: pareto"):
        TrainerConfig(merges=3)
    with pytest.raises(ValidationError, match="early_acceptance does not go with parents: pareto"):
        TrainerConfig(parents="pareto", early_acceptance=0.95)


def fit(setting: dict, steps: int = 12, checkpoint: CheckpointFile | None = None, task: str = "conflicts"):
    workflow, metric, train, val = from_weak_prompts(task)
    clients = {role: ScriptedLLM(TRAINER_RESPONDERS[task]) for role in ("task", "backward", "optimizer")}
    config = TrainerConfig(steps=steps, batch_size=4, proposals=5, seed=3, **setting)
    trainer = Trainer(workflow, metric, clients, config, checkpoint=checkpoint)
    return asyncio.run(trainer.fit(train, val)), workflow, metric, val, clients


@pytest.mark.parametrize("lanes", [1, 3])
def test_a_pareto_run_builds_on_members_other_than_the_best_and_each_members_score_is_its_whole_validation(lanes):
    state, workflow, metric, val, clients = fit({"parents": "pareto", "candidates": "per_parameter", "merges": 5,
                                                 "parallel_steps": lanes})
    assert state.pool[0].score == state.initial_val and state.pool[0].values["instruction"] == "Answer."
    assert any(record.parent is not None for record in state.steps)
    if lanes > 1:  # GEPA's parallel proposals: steps of one round built on different members
        rounds = [{r.parent for r in state.steps[i:i + lanes]} for i in range(0, len(state.steps), lanes)]
        assert any(len(parents) > 1 for parents in rounds)
    assert any(record.merged for record in state.steps)  # the per-parameter pool has members to merge
    assert state.best_val == max(m.score for m in state.pool)
    assert state.values in [m.values for m in state.pool if m.score == state.best_val]
    for pooled in state.pool:
        workflow.load_state(pooled.values)
        whole = asyncio.run(evaluate(workflow, list(val), clients["task"], metric))
        assert whole.score == pytest.approx(pooled.score)
        assert [i for i, sample in enumerate(whole.samples) if sample.score < 1] == pooled.missed


def test_a_pareto_run_resumed_from_its_checkpoint_equals_the_uninterrupted_one(tmp_path):
    setting = {"parents": "pareto", "candidates": "per_parameter", "merges": 5}
    full, *_ = fit(setting)
    fit(setting, steps=5, checkpoint=CheckpointFile(tmp_path / "run.json"))
    resumed, *_ = fit(setting, checkpoint=CheckpointFile(tmp_path / "run.json"))
    assert resumed.values == full.values and resumed.pool == full.pool
    assert [c.model_dump() for c in resumed.candidates] == [c.model_dump() for c in full.candidates]
