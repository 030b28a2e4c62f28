"""The LLM-AutoDiff loop on a scripted LLM: selective backward, peers, bounds, two stages, resume."""
from __future__ import annotations

import json
import re

import pytest

from raygrad.core.backward import Gradient, aggregate
from raygrad.optim.execution import LocalExecutor
from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.state import TrainState
from raygrad.optim.trainer import Trainer
from raygrad.runs.rundir import CheckpointFile
from raygrad.tasks import ObjectCount
from raygrad.tasks.simulated import FIXES
from raygrad.testing import RESPONDERS, ScriptedLLM, object_count_examples, requested_schema

data = object_count_examples  # ObjectCount questions as Examples: data(size, seed)


def scripted_clients():
    return {role: ScriptedLLM(RESPONDERS["object_count_trainer"]) for role in ("task", "backward", "optimizer")}


async def test_backward_calls_only_for_error_samples_one_per_peer_parameter():
    clients = scripted_clients()
    trainer = Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                      TrainerConfig(steps=1, batch_size=8, proposals=2))
    train, val = data(8, 1), data(20, 2)
    state = await trainer.fit(train, val)
    errors = state.steps[0].errors
    assert 0 < errors < 8  # some right, some wrong: the test says something
    # Two trainable peers on the one LLM call: exactly one backward call each per error sample,
    # none for correct samples and none at the loss.
    assert len(clients["backward"].calls) == 2 * errors
    prompts_seen = [m[1]["content"] for m in clients["backward"].calls]
    assert sum('name="instruction"' in p and '<PEER role="output format" name="output_format"' in p
               for p in prompts_seen) == errors


async def test_training_improves_validation_and_checkpoint_resume_equals_uninterrupted(tmp_path):
    train, val = data(20, 3), data(40, 4)
    config = TrainerConfig(steps=4, batch_size=4, proposals=3, seed=9)
    full = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match,
                         scripted_clients(), config, checkpoint=CheckpointFile(tmp_path / "a.json")).fit(train, val)
    assert full.best_val > full.initial_val and any(c.accepted for c in full.candidates)
    # Interrupted after 2 steps, then resumed from the checkpoint with fresh objects.
    path = tmp_path / "b.json"
    await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, scripted_clients(),
                  config.model_copy(update={"steps": 2}), checkpoint=CheckpointFile(path)).fit(train, val)
    assert TrainState.model_validate_json(path.read_text()).step == 2
    resumed = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match,
                            scripted_clients(), config, checkpoint=CheckpointFile(path)).fit(train, val)
    assert resumed.values == full.values and resumed.best_val == full.best_val
    assert [s.batch for s in resumed.steps] == [s.batch for s in full.steps]
    assert json.loads(path.read_text())["step"] == 4


async def test_stage2_stops_early_and_never_makes_the_remaining_calls():
    val = data(64, 5)
    llm = ScriptedLLM(lambda messages, body: "Answer: 0")  # every answer wrong
    executor = LocalExecutor(ObjectCount(), number_match, {"task": llm})
    result = await executor.validate({}, val, must_beat=0.5, chunk=8)
    # After 8 wrong of 64, at most 56/64 = 0.875 is reachable; after 32 wrong only 0.5: stop.
    assert result.stopped_early and result.evaluated == 32 and len(llm.calls) == 32


async def test_stage2_runs_the_incumbents_misses_first_and_stops_after_them_when_a_candidate_gains_nothing():
    from raygrad.optim.execution import validation_shards

    val = data(64, 5)
    misses = [3, 17, 40, 41, 60]  # where the incumbent (and this candidate) answer wrong
    wrong = {val[p].inputs["input"] for p in misses}

    def answer(messages, body):
        question = messages[-1]["content"]
        return "Answer: 0" if any(q in question for q in wrong) else f"Answer: {next(e.target for e in val if e.inputs['input'] in question)}"

    llm = ScriptedLLM(answer)
    executor = LocalExecutor(ObjectCount(), number_match, {"task": llm})
    whole = await executor.validate({}, val, chunk=8)  # the incumbent's own validation: where it misses
    assert whole.weak == misses and whole.strict_score == 59 / 64 and len(llm.calls) == 64
    llm.calls.clear()
    result = await executor.validate({}, val, must_beat=59 / 64, chunk=8, first=misses)
    # It gains nothing where the incumbent misses, and can only lose elsewhere: out after 5 calls, not 64.
    assert result.stopped_early and result.evaluated == 5 and len(llm.calls) == 5
    # In natural order, the same candidate is only out once its fifth miss is seen (position 60).
    llm.calls.clear()
    assert (await executor.validate({}, val, must_beat=59 / 64, chunk=8)).evaluated == 64
    assert [list(s) for s in validation_shards(12, [9, 2], 4)] == [[2, 9], [0, 1, 3], [4, 5, 6, 7], [8, 10, 11]]
    # Shuffled for early acceptance: the misses first still, then every other position once, ranges out of order.
    shuffled = [list(s) for s in validation_shards(400, [9, 2], 4, shuffle=True)]
    assert shuffled[0] == [2, 9] and sorted(p for s in shuffled for p in s) == list(range(400))
    assert [s[0] for s in shuffled[1:]] != sorted(s[0] for s in shuffled[1:])


def answering(val, wrong_inputs: set[str]):
    """A scripted task model: wrong (0) on the questions of `wrong_inputs`, right on the rest."""
    def answer(messages, body):
        question = messages[-1]["content"]
        if any(q in question for q in wrong_inputs):
            return "Answer: 0"
        return f"Answer: {next(e.target for e in val if e.inputs['input'] in question)}"
    return answer


async def test_early_acceptance_stops_stage2_once_the_candidate_beats_the_best_with_confidence():
    val = data(64, 5)
    misses = list(range(0, 64, 4))  # the incumbent's 16 misses: it scores 48/64
    llm = ScriptedLLM(answering(val, set()))  # a candidate right everywhere
    executor = LocalExecutor(ObjectCount(), number_match, {"task": llm})
    result = await executor.validate({}, val, must_beat=0.75, chunk=8, first=misses, accept_confidence=0.95)
    # The 16 misses, then the 6 other rows of the first 8, all right: with the other 42 at the Wilson
    # bound for 6 of 6 (0.689 at 95%) it scores at least 0.796 > 0.75. Accepted after 22 calls, estimated.
    assert result.estimated and not result.stopped_early and result.evaluated == 22 and len(llm.calls) == 22
    assert result.strict_score == 1.0 and result.weak == []
    llm.calls.clear()  # without it, every sample runs
    whole = await executor.validate({}, val, must_beat=0.75, chunk=8, first=misses)
    assert not whole.estimated and whole.evaluated == 64 and len(llm.calls) == 64


async def test_early_acceptance_never_takes_a_candidate_that_loses_more_elsewhere_than_it_gains_on_the_misses():
    val = data(64, 5)
    misses = list(range(0, 64, 4))
    rest = [p for p in range(64) if p not in misses]
    # It fixes 8 of the 16 misses but breaks 10 of the 48 answers the incumbent got right: 46/64 < 0.75.
    wrong = {val[p].inputs["input"] for p in misses[8:] + rest[::5]}
    llm = ScriptedLLM(answering(val, wrong))
    executor = LocalExecutor(ObjectCount(), number_match, {"task": llm})
    result = await executor.validate({}, val, must_beat=0.75, chunk=8, first=misses, accept_confidence=0.95)
    assert not result.estimated and result.strict_score <= 0.75 and result.stopped_early


async def test_early_acceptance_in_training_accepts_on_part_of_the_validation_set_and_says_so():
    train, val = data(20, 3), data(64, 4)
    config = TrainerConfig(steps=4, batch_size=4, proposals=3, seed=9, validation_chunk=8, early_acceptance=0.95)
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, scripted_clients(),
                          config).fit(train, val)
    accepted = [c for c in state.candidates if c.accepted]
    ran = [int(re.match(r"accepted after (\d+)/64 samples \(score estimated\)", c.reason).group(1)) for c in accepted]
    assert len(ran) >= 2 and all(n < 64 for n in ran) and state.best_val > state.initial_val
    assert state.best_val_samples == ran[-1] and state.best_val == accepted[-1].stage2


def test_early_acceptance_without_early_rejection_is_a_config_error():
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="early_acceptance needs early_rejection"):
        TrainerConfig(early_acceptance=0.95, early_rejection=False)


async def test_unparseable_or_leaking_proposals_are_failed_never_new_prompts():
    from raygrad.optim.tgd import propose

    workflow = ObjectCount()
    parameter = workflow.parameters()["instruction"]
    bad = ScriptedLLM(lambda m, b: "Sure! Here is a better prompt: Think harder.")
    proposed = await propose(parameter, [], "feedback", [], [], 3, bad)
    assert proposed.candidates == [] and [e.kind for e in proposed.errors] == ["unparsed"]
    leaky = ScriptedLLM(lambda m, b: json.dumps({"proposals": ["<GRADIENTS> count better", "Count carefully."]}))
    proposed = await propose(parameter, [], "feedback", [], [], 3, leaky)
    assert proposed.candidates == ["Count carefully."] and "leaked" in proposed.unusable[0] and not proposed.errors


def test_aggregation_is_grouped_worst_first_and_bounded():
    grads = [Gradient(parameter="p", sample_id=str(i), score=(i % 10) / 10, feedback="x" * 5000)
             for i in range(500)]
    text = aggregate(grads, max_samples=8, max_chars=600)["p"]
    assert len(text) < 8 * 700 + 100
    assert text.startswith("[sample 0, score 0.00]") and "492 more error samples" in text


async def test_token_budget_stops_mid_step_and_keeps_the_last_completed_step(tmp_path):
    clients = scripted_clients()
    trainer = Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                      TrainerConfig(steps=50, batch_size=4, max_tokens=20_000), checkpoint=CheckpointFile(tmp_path / "c.json"))
    state = await trainer.fit(data(20, 6), data(20, 7))
    spent = sum(u.prompt_tokens + u.completion_tokens for u in trainer.usage().values())
    biggest = max(sum(len(m["content"].split()) for m in call) + 100 for c in clients.values() for call in c.calls)
    assert "token budget" in (state.stopped or "") and 20_000 <= spent < 20_000 + biggest
    saved = TrainState.model_validate_json((tmp_path / "c.json").read_text())
    assert saved.step == state.step == len(saved.steps)  # the interrupted step is not half-recorded


async def test_call_budget_stops_training():
    clients = scripted_clients()
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                          TrainerConfig(steps=50, batch_size=4, max_calls=60)).fit(data(20, 6), data(20, 7))
    assert state.stopped and "call budget" in state.stopped and state.step < 50


async def test_early_rejection_saves_calls_and_changes_no_decision():
    train, val = data(20, 3), data(60, 4)
    runs = {}
    for early in (True, False):
        clients = scripted_clients()
        config = TrainerConfig(steps=6, batch_size=4, proposals=3, seed=11, early_rejection=early)  # has hopeless ones
        # Two fixes held already: candidates that add nothing new reach stage 2 and lose there.
        state = await Trainer(ObjectCount(instruction="Answer. " + " ".join(FIXES[:2]), output_format="Reply."),
                              number_match, clients, config).fit(train, val)
        runs[early] = (state, len(clients["task"].calls))
    (fast, fast_calls), (full, full_calls) = runs[True], runs[False]
    assert fast.values == full.values and [c.accepted for c in fast.candidates] == [c.accepted for c in full.candidates]
    assert [(c.value, c.reason[:8]) for c in fast.candidates] == [(c.value, c.reason[:8]) for c in full.candidates]
    stopped = [c for c in fast.candidates if c.reason.startswith("stage 2: cannot beat")]
    cut = [c for c in fast.candidates if c.reason.startswith("stage 1: at most")]
    assert stopped and cut and fast_calls < full_calls  # hopeless candidates' remaining calls were never made


async def test_stage1_runs_the_minibatch_errors_first_and_stops_a_candidate_that_fixes_none():
    train, val = data(20, 3), data(20, 4)
    clients = scripted_clients()
    scored: dict[str, list[list[int]]] = {}
    wrong: dict[str, set[int]] = {}  # per step, the positions of its minibatch's error samples

    class Recording(LocalExecutor):
        async def train_batch(self, values, train, positions, label=""):
            outcome = await super().train_batch(values, train, positions, label)
            wrong[label] = {p for p, r in zip(positions, outcome.results) if r.score < 1}
            return outcome

        async def score(self, values, train, positions, label=""):
            scored.setdefault(label, []).append(list(positions))
            return await super().score(values, train, positions, label)

    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    # The paper's loop: each parameter's candidates meet the step's own minibatch, labelled by parameter.
    config = TrainerConfig(steps=6, batch_size=4, proposals=3, seed=4, candidates="per_parameter", error_pool=0)
    state = await Trainer(workflow, number_match, clients, config,
                          executor=Recording(workflow, number_match, clients, sample_sink=lambda *_: None)
                          ).fit(train, val)
    checked = {"cut": 0, "whole": 0}
    for step in state.steps:
        errors = wrong[f"step{step.step}-batch"]
        for parameter in ("instruction", "output_format"):
            candidates = [c for c in state.candidates if (c.step, c.parameter) == (step.step, parameter)]
            for number, candidate in enumerate(candidates):
                runs = scored[f"step{step.step}-{parameter}-{number}-stage1"]
                if candidate.reason.startswith("stage 1: at most"):
                    assert [set(r) for r in runs] == [errors]  # the errors alone: the rest never ran
                    checked["cut"] += 1
                elif parameter == "instruction" and len(errors) < len(step.batch):
                    assert [set(r) for r in runs] == [errors, set(map(int, step.batch)) - errors]  # errors first
                    checked["whole"] += 1
    assert checked["cut"] and checked["whole"], checked


async def test_with_stage1_off_every_candidate_goes_to_stage2_and_none_is_scored_on_the_minibatch():
    train, val = data(20, 3), data(40, 4)
    clients, scored = scripted_clients(), []

    class Counting(LocalExecutor):
        async def score(self, values, train, positions, label=""):
            scored.append(label)
            return await super().score(values, train, positions, label)

    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    config = TrainerConfig(steps=6, batch_size=4, proposals=3, seed=4, stage1=False)
    state = await Trainer(workflow, number_match, clients, config,
                          executor=Counting(workflow, number_match, clients)).fit(train, val)
    assert scored == [] and state.best_val > state.initial_val
    assert state.candidates and all(c.stage1 is None for c in state.candidates)
    assert all(c.stage2 is not None or c.reason.startswith("stage 2 before") for c in state.candidates)


async def test_a_score_above_the_current_one_only_by_float_rounding_is_a_tie_not_a_gain():
    train, val = data(20, 3), data(20, 4)
    clients = scripted_clients()

    class RoundingUp(LocalExecutor):  # every candidate ties the minibatch, as a sum in another order may round
        async def train_batch(self, values, train, positions, label=""):
            outcome = await super().train_batch(values, train, positions, label)
            self.current = sum(r.score for r in outcome.results) / len(outcome.results)
            return outcome

        async def score(self, values, train, positions, label=""):
            return self.current * (1 + 4e-16)

    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    config = TrainerConfig(steps=3, proposals=2, early_rejection=False, error_pool=0)  # stage 1 on the minibatch alone
    state = await Trainer(workflow, number_match, clients, config,
                          executor=RoundingUp(workflow, number_match, clients)).fit(train, val)
    assert state.candidates and all(c.stage2 is None and c.reason.startswith("stage 1") for c in state.candidates)


async def test_a_full_disk_stops_the_run_with_a_clear_error_and_the_last_checkpoint_intact(tmp_path, monkeypatch):
    import errno
    import os

    import pytest

    from raygrad.runs import rundir
    from raygrad.runs.rundir import CheckpointError

    train, val = data(20, 3), data(40, 4)
    config = TrainerConfig(steps=3, batch_size=4, proposals=3, seed=9)

    def make(path):
        return Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, scripted_clients(),
                       config, checkpoint=CheckpointFile(path))

    full = await make(tmp_path / "whole.json").fit(train, val)
    path = tmp_path / "run.json"
    writes, real_fsync = {"n": 0}, os.fsync

    def fsync_until_full(fd):
        writes["n"] += 1
        if writes["n"] > 2:  # steps 0 and 1 are saved, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync_until_full)
    with pytest.raises(CheckpointError, match=rf"cannot write {path}: No space left on device; the previous"):
        await make(path).fit(train, val)
    monkeypatch.undo()
    assert TrainState.model_validate_json(path.read_text()).step == 2  # whole, and the last one written
    assert not path.with_name(path.name + ".tmp").exists()
    resumed = await make(path).fit(train, val)  # space freed: the same command resumes
    assert (resumed.values, resumed.best_val, resumed.step) == (full.values, full.best_val, 3)


async def test_a_wall_time_limit_stops_between_calls_and_counts_every_session(tmp_path):
    train, val = data(20, 3), data(40, 4)
    clients = {role: ScriptedLLM(RESPONDERS["object_count_trainer"], delay_s=0.01) for role in ("task", "backward", "optimizer")}
    path = tmp_path / "run.json"
    config = TrainerConfig(steps=50, batch_size=4, proposals=2, seed=9, max_wall_s=0.5)
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients, config,
                          checkpoint=CheckpointFile(path)).fit(train, val)
    assert state.stopped and "wall-time limit reached" in state.stopped and 0 < state.step < 50
    saved = TrainState.model_validate_json(path.read_text())
    assert 0.5 <= saved.elapsed_s < 5 and saved.step == state.step
    # Resumed, the time already spent counts: at once over the limit, no new step.
    again = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match,
                          scripted_clients(), config, checkpoint=CheckpointFile(path)).fit(train, val)
    assert again.step == state.step and "wall-time limit" in again.stopped


def magic_word(messages, body) -> str:
    """Every answer is right once the instruction says MAGIC, and wrong before."""
    if requested_schema(body) == "FeedbackReply":
        return json.dumps({"feedback": "Say the magic word."})
    if requested_schema(body) == "Proposals":
        return json.dumps({"proposals": ["Answer. MAGIC"]})
    question = messages[1]["content"]
    truth = next(e.target for e in data(20, 5) if e.input == question)
    return f"Answer: {truth if 'MAGIC' in messages[0]['content'] else 0}"


async def test_once_the_minibatch_is_perfect_no_more_candidates_are_asked_for_in_that_step():
    clients = {role: ScriptedLLM(magic_word) for role in ("task", "backward", "optimizer")}
    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    config = TrainerConfig(steps=1, batch_size=4, proposals=1, candidates="per_parameter")  # one after the other
    state = await Trainer(workflow, number_match, clients, config).fit(data(20, 5)[:4], data(20, 5)[4:])
    assert state.steps[0].accepted == ["instruction"] and state.best_val == 1.0
    # output_format comes next, but the minibatch is all right now: no proposal, no stage-1 calls for it.
    assert len(clients["optimizer"].calls) == 1 and [c.parameter for c in state.candidates] == ["instruction"]


async def test_a_perfect_validation_score_ends_the_run_since_no_candidate_can_beat_it(tmp_path):
    clients = {role: ScriptedLLM(magic_word) for role in ("task", "backward", "optimizer")}
    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    path = tmp_path / "checkpoint.json"
    trainer = Trainer(workflow, number_match, clients, TrainerConfig(steps=5, batch_size=4, proposals=1),
                      checkpoint=CheckpointFile(path))
    state = await trainer.fit(data(20, 5)[:4], data(20, 5)[4:])
    assert state.best_val == 1.0 and state.step == 1 and not state.stopped
    # 16 initial validation + 4 minibatch + 4 stage 1 + 16 stage 2, and not one call for steps 2 to 5.
    assert len(clients["task"].calls) == 40
    resumed = await Trainer(workflow, number_match, clients, TrainerConfig(steps=5, batch_size=4, proposals=1),
                            checkpoint=CheckpointFile(path)).fit(data(20, 5)[:4], data(20, 5)[4:])
    assert resumed.step == 1 and len(clients["task"].calls) == 40


async def test_a_candidate_whose_calls_fail_cannot_win_on_its_survivors():
    """A proposal that makes the provider refuse half the samples and gets the rest right would score
    1.0 over the samples that completed; its failures count against it, so it is rejected."""
    from raygrad.testing import unit_hash

    def respond(messages, body):
        if requested_schema(body) == "FeedbackReply":
            return json.dumps({"feedback": "Try the magic word."})
        if requested_schema(body) == "Proposals":
            return json.dumps({"proposals": ["Answer. BROKEN"]})
        question = messages[1]["content"]
        truth = next(e.target for e in data(20, 5) if e.input == question)
        right = "BROKEN" in messages[0]["content"] or unit_hash(question) < 0.7
        return f"Answer: {truth if right else 0}"

    def refused(messages):  # the provider refuses the broken prompt for about half the questions
        return "BROKEN" in messages[0]["content"] and unit_hash("refuse", messages[1]["content"]) < 0.5

    clients = {role: ScriptedLLM(respond, fail_when=refused) for role in ("task", "backward", "optimizer")}
    workflow = ObjectCount(instruction="Answer.", output_format="Reply.")
    state = await Trainer(workflow, number_match, clients, TrainerConfig(steps=1, batch_size=8, proposals=1)
                          ).fit(data(20, 5)[:8], data(20, 5)[8:])
    [candidate] = [c for c in state.candidates if "instruction" in c.parameter.split(",")]
    assert not candidate.accepted and state.values["instruction"] == "Answer."
    assert candidate.stage1 is not None and candidate.stage1 < 1.0  # the failed samples counted as 0
    assert clients["task"].usage.failed_calls > 0  # they failed, and were reported as failed, not scored


async def test_a_stage_2_pass_with_failed_samples_is_never_kept_as_best_and_the_rerun_scores_it(tmp_path):
    import pytest

    from raygrad.optim.execution import SamplesFailed
    from raygrad.testing import unit_hash

    def outage(messages):  # the provider fails some validation calls of the new prompt, then recovers
        return outage.on and "MAGIC" in messages[0]["content"] and unit_hash(messages[1]["content"]) < 0.3

    outage.on = True
    clients = {role: ScriptedLLM(magic_word, fail_when=outage) for role in ("task", "backward", "optimizer")}
    config, path = TrainerConfig(steps=1, batch_size=4, proposals=1), tmp_path / "checkpoint.json"
    with pytest.raises(SamplesFailed, match=r"validation samples of a candidate for instruction\S* failed"):
        await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients, config,
                      checkpoint=CheckpointFile(path)).fit(data(20, 5)[:4], data(20, 5)[4:])
    assert not path.exists()  # nothing of the step was kept
    outage.on = False
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients, config,
                          checkpoint=CheckpointFile(path)).fit(data(20, 5)[:4], data(20, 5)[4:])
    assert state.best_val == 1.0 and state.values["instruction"] == "Answer. MAGIC"


async def test_replies_that_do_not_parse_are_counted_per_step_in_the_steps_table(tmp_path):
    from raygrad.runs.results import step_rows

    def garbled(messages, body):
        if requested_schema(body) == "FeedbackReply":
            return "Sure! The feedback is: count better."  # no JSON: no gradient
        if requested_schema(body) == "Proposals":
            return "Here are my proposals, in prose."  # no JSON: no candidate
        return RESPONDERS["object_count_trainer"](messages, body)

    def half_garbled(messages, body):  # every other backward reply parses, so proposals are asked for
        if requested_schema(body) == "FeedbackReply" and len(messages[1]["content"]) % 2:
            return json.dumps({"feedback": "Count each item."})
        return garbled(messages, body)

    clients = {role: ScriptedLLM(half_garbled) for role in ("task", "backward", "optimizer")}
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                          TrainerConfig(steps=2, batch_size=4, proposals=2)).fit(data(20, 6), data(20, 7))
    rows = step_rows(state)
    garbled_feedback = sum(len(call[1]["content"]) % 2 == 0 for call in clients["backward"].calls)
    assert sum(r["unparsed_gradients"] for r in rows) == garbled_feedback > 0
    assert sum(r["unparsed_proposals"] for r in rows) == len(clients["optimizer"].calls) > 1
    # Errors are counted apart: the optimizer is shown only values that failed validation, never error text.
    assert not any("unparseable" in call[1]["content"] for call in clients["optimizer"].calls)


def test_a_run_directory_written_with_retired_switches_still_loads_and_a_removed_one_says_what_to_do():
    assert TrainerConfig.model_validate({"joint_candidates": False}).candidates == "per_parameter"
    kept = TrainerConfig.model_validate({"joint_candidates": True, "one_parameter_per_step": False})
    assert kept.candidates == "joint"
    # All of a step's candidates in stage 1 at once, as concurrent_stage1 scored them: the same decisions.
    assert TrainerConfig.model_validate({"concurrent_stage1": True, "proposals": 3}).parallel_candidates == 3
    with pytest.raises(ValueError, match="one_parameter_per_step was removed: it scored lower"):
        TrainerConfig.model_validate({"one_parameter_per_step": True})


async def test_a_users_own_part_replaces_the_built_in_one():
    class InstructionOnly:
        """Candidates for the instruction alone: the output format keeps its value."""

        def groups(self, names, parameters):
            return [["instruction"]]

    clients = scripted_clients()
    state = await Trainer(ObjectCount(instruction="Answer.", output_format="Reply."), number_match, clients,
                          TrainerConfig(steps=3, batch_size=4, proposals=2, seed=1), candidates=InstructionOnly()
                          ).fit(data(20, 3), data(20, 4))
    assert state.candidates and {c.parameter for c in state.candidates} == {"instruction"}
    assert state.values["output_format"] == "Reply."


async def test_batches_until_error_draws_minibatches_until_one_has_something_to_learn():
    def config(batches: int) -> TrainerConfig:
        return TrainerConfig(steps=6, batch_size=2, proposals=2, seed=2, batches_until_error=batches)

    def workflow() -> ObjectCount:
        return ObjectCount(instruction="Answer. " + " ".join(FIXES[:3]), output_format="Reply.")  # mostly right

    one = await Trainer(workflow(), number_match, scripted_clients(), config(1)).fit(data(40, 10), data(30, 11))
    clients = scripted_clients()
    more = await Trainer(workflow(), number_match, clients, config(4)).fit(data(40, 10), data(30, 11))
    idle = [s for s in one.steps if s.errors == 0]
    assert idle, "the paper's one minibatch per step leaves some steps with nothing to learn from"
    assert sum(s.errors == 0 for s in more.steps) < len(idle)  # drawn again instead of idling
    assert all(len(s.batch) == 2 for s in more.steps)  # a step records the minibatch it learned from


@pytest.mark.parametrize(("text", "said"), [
    ("", "is empty"), ('{"step": 2, "values": {"instr', "is not valid JSON (cut short?)"),
    ('{"name": "some other file"}', "is not a raygrad checkpoint (values: Field required)")])
async def test_a_damaged_checkpoint_is_one_error_naming_the_file_and_what_to_do(tmp_path, text, said):
    from raygrad.errors import ConfigError

    path = tmp_path / "checkpoint.json"
    path.write_text(text)
    trainer = Trainer(ObjectCount(), number_match, scripted_clients(), TrainerConfig(steps=1),
                      checkpoint=CheckpointFile(path))
    with pytest.raises(ConfigError, match=f"{path} {re.escape(said)}. Move it aside"):
        await trainer.fit(data(4, 1), data(4, 2))
