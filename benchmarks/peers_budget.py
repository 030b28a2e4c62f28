"""Test accuracy at equal spend: raygrad against GEPA, MIPROv2 and AdalFlow, on rules that favour no one.

Every framework optimizes the prompt of one ObjectCount call from the same text ("You will answer a
reasoning question. Respond with the final answer as a number on the last line.") on the same 50
training and 50 validation questions, with no few-shot demos; the prompt each holds when its spend
reaches a budget is scored on 100 held-out test questions (uncounted).
- raygrad trains its instruction and output format (batch 4, 5 proposals), stopped by `max_calls` or,
  at its default patience, after 12 steps in a row that accepted nothing.
- GEPA (`dspy.GEPA`, dspy 3.4, gepa 0.1.4) at the settings its authors recommend: Pareto candidate
  selection, merge on (up to 5), reflection minibatches of 3; `max_metric_calls` is 0.98 of the budget
  (its reflection calls come on top). And the gepa package on its own (`gepa.optimize`, its
  DefaultAdapter: the prompt as the system message), at the same settings.
- MIPROv2 (dspy 3.4) instruction-only (no demos: under these rules a demo fixes nothing, so a user
  who knew that would turn them off, and the others have none), its trials and candidates scaled to
  the budget as its `auto` presets scale them (trials = 1.5 x candidates; see `mipro_settings`).
- AdalFlow 1.1.3's trainer (`strategy="constrained"`, batch 4, 5 proposals) has no budget of calls:
  it runs until it has spent the largest budget, and at each budget its prompt is the one its last
  step record before that spend held.

The provider is the simulated one of raygrad.tasks.simulated, and reads each framework's requests by
the same written rules, each request only from its own text:
- Task model: a question is answered right by the same rule whatever asks it (its hidden cause fixed by
  an instruction in the system prompt; one answer in ten a coin flip). Its reply is as long as a real
  one: a line per item the question lists, then the answer; only a prompt that holds "Give only the
  final answer." gets the answer alone. DSPy's format gets the same text in its answer field.
- Feedback on an error sample (raygrad's backward engine, AdalFlow's, each wrong example in either
  GEPA's reflection call) names the fix of its question's cause with probability 0.7, else a random catalog
  instruction, after a paragraph that explains it (EXPLANATION, about 50 tokens). AdalFlow also asks
  about samples answered right, and is told so in a sentence.
- A proposal adds to the value the instruction the feedback in its request names most (with
  probability 0.25, or with no feedback, a random one), never one the value holds and never a value
  its request lists as failed. A reply with room for reasoning (AdalFlow's tag, GEPA's and MIPROv2's
  fields) holds REASONING, about 40 tokens; raygrad's schema has none. MIPROv2's proposer is shown no
  feedback, so it guesses; its data and program summaries are answered with SUMMARY, about 60 tokens.
Calls counted at the server per role; tokens with tiktoken's cl100k_base; dollars at the paper's
models' prices (task gpt-3.5-turbo; backward engine, optimizer and the peers' reflection and prompt
models gpt-4o).

    pip install -e ".[bench]"
    cd benchmarks && python peers_budget.py [--seeds 0 1 2 3 4] [--budgets 250 500 750 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

from adalflow_task import client, exact, import_adalflow, object_count_task, samples
from common import peers_cost_questions, spread, table, write_table
from peers_cost import PRICES, Meter, respond_adalflow

from raygrad.tasks.object_count import solve_object_counting
from raygrad.tasks.simulated import (
    answers_right,
    feedback,
    holds,
    last,
    proposals,
    requested_schema,
    with_optimizer_roles,
)
from raygrad.testing import ServerSettings, SimulatedServer

START = ("You will answer a reasoning question.", "Respond with the final answer as a number on the last line.")
QUESTION = re.compile(r"I have [^\n\"<]*?\. How many [^\n\"<]+? do I have\?")
SHORT = "Give only the final answer."
GEPA_REFLECTION = "I provided an assistant with the following instructions to perform a task for me:"
EXPLANATION = ("The model's count does not match the expected answer. The question lists several things, each "
               "with a quantity, and only some of them belong to the kind it asks about; a wrong total means "
               "the model counted one it should not have, missed one, or misread how many there were. ")
REASONING = ("The feedback points to the same kind of mistake in several examples, so the change that "
             "addresses it should go into the instruction, keeping what already works as it is.")
SUMMARY = ("The examples are short word problems: a list of things the speaker has, each with a quantity, "
           "and a question about how many of one kind there are. The answer is a single whole number, and "
           "solving it means sorting the listed things into those that count and those that do not.")


def task_reply(system: str, question: str) -> str:
    """The task model's answer with the reasoning a real one writes: a line per item listed."""
    truth = solve_object_counting(question)
    if truth is None:
        return "I do not know."
    answer = truth if answers_right(system, question) else truth + 1
    if holds(system, SHORT):
        return f"Answer: {answer}"
    listed = question.split("I have ", 1)[1].split(". How many", 1)[0]
    kind = question.split("How many ", 1)[1].split(" do I have", 1)[0]
    items = [i.strip() for i in re.split(r",\s*(?:and\s+)?|\s+and\s+", listed) if i.strip()]
    lines = "\n".join(f"- {item}: I check whether these are {kind}." for item in items)
    return f"Let me go through the items one at a time.\n{lines}\nAdding up the ones that count:\nAnswer: {answer}"


def field(text: str, name: str) -> str:
    """A DSPy ChatAdapter field's text in a message."""
    found = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?:\n\n\[\[ ## |\n\nRespond with|\Z)", text, re.S)
    return found.group(1).strip() if found else ""


# raygrad's requests (told apart by the JSON schema they ask for), with the task model's replies above.
RAYGRAD_ROLES = with_optimizer_roles(lambda messages, _: task_reply(last(messages, "system"), last(messages, "user")))


def respond_raygrad(messages: list[dict], body: dict[str, Any]) -> str:
    """raygrad's requests; a diagnosis comes after its explanation, as in every framework's."""
    reply = RAYGRAD_ROLES(messages, body)
    if requested_schema(body, messages) == "FeedbackReply":
        return json.dumps({"feedback": EXPLANATION + json.loads(reply)["feedback"]})
    return reply


def respond_dspy(messages: list[dict], body: dict[str, Any]) -> str:
    """GEPA's reflection call (backward engine and optimizer in one), MIPROv2's proposer and summaries, and
    the task model, each told apart by the fields its request asks for."""
    system, user = last(messages, "system"), last(messages, "user")
    rng = random.Random(hashlib.sha256(user.encode()).digest())
    if "[[ ## examples_with_feedback ## ]]" in user:
        examples = json.loads(field(user, "examples_with_feedback"))
        wrong = [e for e in examples if str(e.get("Feedback", "")).startswith("The answer is wrong")]
        lines = "\n".join(feedback(str(e["Inputs"].get("question", "")), rng) for e in wrong)
        value = proposals(field(user, "current_instruction"), lines, 1, rng)[0]
        diagnosis = " ".join(EXPLANATION + line for line in lines.splitlines())
        return json.dumps({"reasoning": f"{diagnosis} {REASONING}".strip(), "new_instruction": value})
    outputs = re.findall(r"\d+\. `(\w+)`", system.split("Your output fields are:", 1)[-1].split("All interactions")[0])
    if "proposed_instruction" in outputs:  # MIPROv2's proposer: no feedback in its request, so it guesses
        value = proposals(field(user, "basic_instruction"), "", 1, rng)[0]
        return f"[[ ## proposed_instruction ## ]]\n{value}\n\n[[ ## completed ## ]]"
    if outputs and "answer" not in outputs:  # MIPROv2's data and program summaries
        return "\n\n".join(f"[[ ## {name} ## ]]\n{SUMMARY}" for name in outputs) + "\n\n[[ ## completed ## ]]"
    question = QUESTION.search(user)
    reply = task_reply(system, question.group(0)) if question else "I do not know."
    return f"[[ ## answer ## ]]\n{reply}\n\n[[ ## completed ## ]]"


def respond_gepa(text: str) -> str:
    """The gepa package's reflection call (its default template): the current instruction and the examples,
    each with its feedback, in ``` blocks; the new instruction is asked for in one."""
    blocks = re.findall(r"```\n(.*?)\n```", text, re.S)
    current, examples = (blocks + ["", ""])[:2]
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    wrong = [part for part in examples.split("# Example ")[1:] if "The answer is wrong" in part]
    lines = "\n".join(feedback(part.split("## Inputs", 1)[-1].split("## Generated Outputs", 1)[0].strip(), rng)
                      for part in wrong)
    value = proposals(current.strip(), lines, 1, rng)[0]
    diagnosis = " ".join(EXPLANATION + line for line in lines.splitlines())
    return f"{diagnosis} {REASONING}".strip() + f"\n\n```\n{value}\n```"


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """Each framework's requests in its own format, by the rules above."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if text.startswith(GEPA_REFLECTION):
        return respond_gepa(text)
    if "<START_OF_SYSTEM_PROMPT>" in text:
        return respond_adalflow(text, body, task_reply, EXPLANATION, REASONING)
    if "[[ ## " in text:
        return respond_dspy(messages, body)
    return respond_raygrad(messages, body)


def dspy_program(url: str) -> tuple[Any, Any, Any, Any]:
    """dspy, its task and prompt (reflection) models on the simulated server, and the program to optimize."""
    import dspy

    task = dspy.LM("openai/task", api_base=url, api_key="sk-bench", cache=False, num_retries=8)
    prompt_model = dspy.LM("openai/optimizer", api_base=url, api_key="sk-bench", cache=False, num_retries=8,
                           max_tokens=4000)
    dspy.configure(lm=task)
    return dspy, task, prompt_model, dspy.Predict(dspy.Signature("question -> answer", instructions=" ".join(START)))


def dspy_examples(dspy: Any, rows: list[dict]) -> list[Any]:
    return [dspy.Example(question=r["input"], answer=r["target"]).with_inputs("question") for r in rows]


def dspy_right(gold: Any, pred: Any) -> bool:
    found = re.findall(r"-?\d+", str(pred.answer))
    return bool(found) and found[-1] == gold.answer


def dspy_test(dspy: Any, program: Any, rows: list[dict]) -> float:
    score = dspy.Evaluate(devset=dspy_examples(dspy, rows), metric=lambda g, p, t=None: float(dspy_right(g, p)),
                          num_threads=4, display_progress=False)(program)
    return float(getattr(score, "score", score)) / 100


def run_gepa(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budget: int) -> tuple[float, str]:
    dspy, _, reflection, program = dspy_program(url)

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        right = dspy_right(gold, pred)
        return dspy.Prediction(score=float(right), feedback="The answer is right." if right else
                               f"The answer is wrong: it is {gold.answer}.")

    optimizer = dspy.GEPA(metric=metric, max_metric_calls=int(budget * 0.98), reflection_lm=reflection, seed=seed,
                          num_threads=4, candidate_selection_strategy="pareto", use_merge=True,
                          max_merge_invocations=5, reflection_minibatch_size=3)
    optimized = optimizer.compile(program, trainset=dspy_examples(dspy, data["train"]),
                                  valset=dspy_examples(dspy, data["val"]))
    meter.counting = False
    return dspy_test(dspy, optimized, data["test"]), optimized.signature.instructions


def run_gepa_package(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budget: int
                     ) -> tuple[float, str]:
    """The gepa package on its own (`gepa.optimize` with its DefaultAdapter: the prompt as the system message,
    the question as the user's), at the settings dspy.GEPA is run with here; its metric the same."""
    import gepa
    from gepa.adapters.default_adapter.default_adapter import DefaultAdapter, EvaluationResult
    from gepa.lm import LM

    def evaluator(row: dict, response: str) -> EvaluationResult:
        found = re.findall(r"-?\d+", response)
        right = bool(found) and found[-1] == row["answer"]
        return EvaluationResult(score=float(right), feedback="The answer is right." if right else
                                f"The answer is wrong: it is {row['answer']}.")

    def rows(split: list[dict]) -> list[dict]:
        return [{"input": r["input"], "additional_context": {}, "answer": r["target"]} for r in split]

    server = {"api_base": url, "api_key": "sk-bench"}
    adapter = DefaultAdapter("openai/task", evaluator=evaluator, max_litellm_workers=4,
                             litellm_batch_completion_kwargs=server)
    with tempfile.TemporaryDirectory() as folder:
        result = gepa.optimize(seed_candidate={"system_prompt": " ".join(START)}, trainset=rows(data["train"]),
                               valset=rows(data["val"]), adapter=adapter,
                               reflection_lm=LM("openai/optimizer", **server), candidate_selection_strategy="pareto",
                               use_merge=True, max_merge_invocations=5, reflection_minibatch_size=3,
                               max_metric_calls=int(budget * 0.98), seed=seed, run_dir=folder,
                               display_progress_bar=False)
    meter.counting = False
    best = result.best_candidate
    tested = adapter.evaluate(rows(data["test"]), best)
    return sum(tested.scores) / len(tested.scores), best["system_prompt"]


def mipro_settings(budget: int, val: int = 50, minibatch: int = 35, full_every: int = 5) -> tuple[int, int]:
    """(candidates, trials) for a budget: the trials its calls allow after the first full validation and
    about 30 calls of set-up (summaries, proposals, bootstrapping), each trial a minibatch and a full
    validation every `full_every` trials; candidates = trials / 1.5, as MIPROv2's zero-shot presets set."""
    trials = max(2, int((budget - val - 30) / (minibatch + val / full_every)))
    return max(2, round(trials / 1.5)), trials


def run_mipro(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budget: int) -> tuple[float, str]:
    dspy, task, prompt_model, program = dspy_program(url)
    candidates, trials = mipro_settings(budget, len(data["val"]))
    optimizer = dspy.MIPROv2(metric=lambda g, p, t=None: float(dspy_right(g, p)), prompt_model=prompt_model,
                             task_model=task, auto=None, num_candidates=candidates, num_threads=4, seed=seed,
                             max_bootstrapped_demos=0, max_labeled_demos=0, verbose=False)
    optimized = optimizer.compile(program, trainset=dspy_examples(dspy, data["train"]),
                                  valset=dspy_examples(dspy, data["val"]), num_trials=trials, minibatch_size=35,
                                  minibatch_full_eval_steps=5)
    meter.counting = False
    return dspy_test(dspy, optimized, data["test"]), optimized.signature.instructions


class BudgetSpent(Exception):
    pass


def run_adalflow(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budgets: list[int]
                 ) -> dict[int, tuple[float, str]]:
    """AdalFlow's trainer until it has spent the largest budget; per budget, its prompt held at that spend
    (its last step record before it) scored on test."""
    import numpy

    with tempfile.TemporaryDirectory() as directory:
        adal = import_adalflow(home=directory)
        template = ("<START_OF_SYSTEM_PROMPT>\n{{instruction}}\n\n{{output_format}}\n<END_OF_SYSTEM_PROMPT>\n"
                    "<START_OF_USER>\n{{input_str}}\n<END_OF_USER>")
        start = {"instruction": START[0], "output_format": START[1]}
        task = object_count_task(url, template, start, use_cache=False,
                                 loss_fn=adal.EvalFnToTextLoss(eval_fn=exact,
                                                               eval_fn_desc="1 if str(y) == str(y_gt) else 0"),
                                 backward_engine_model_config=client(url, "backward"),
                                 text_optimizer_model_config=client(url, "optimizer"))
        trainer = adal.Trainer(adaltask=task, max_steps=1000, train_batch_size=4, max_proposals_per_step=5,
                               num_workers=4, strategy="constrained", ckpt_path=directory, raw_shots=0,
                               bootstrap_shots=0)
        parameters = list(task.task.llm.prompt_kwargs.values())
        held: list[tuple[int, dict[str, str]]] = [(0, {p.id: p.data for p in parameters})]
        add_step = adal.Trainer._add_one_step_in_trainer_results

        def recorded(trainer_results, val_score, test_score, prompts, *args, **kwargs):
            spent = meter.spent()[0]
            held.append((spent, {p.id: p.data for p in prompts}))
            add_step(trainer_results, val_score, test_score, prompts, *args, **kwargs)
            if spent >= max(budgets):
                raise BudgetSpent

        adal.Trainer._add_one_step_in_trainer_results = staticmethod(recorded)
        random.seed(seed)
        numpy.random.seed(seed)
        try:
            trainer.fit(train_dataset=samples(data["train"]), val_dataset=samples(data["val"], 50))
        except BudgetSpent:
            pass
        finally:
            adal.Trainer._add_one_step_in_trainer_results = staticmethod(add_step)
        meter.counting = False
        results = {}
        for budget in budgets:
            values = [values for spent, values in held if spent <= budget][-1]
            for parameter in parameters:
                parameter.data = values[parameter.id]
            score = task.validation_step(samples(data["test"], 100), 0, num_workers=4).avg_score
            results[budget] = float(score), " ".join(values.values())
        return results


def run_raygrad(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budget: int,
                trainer: dict | None = None) -> tuple[float, str]:
    from raygrad.data import Example
    from raygrad.llm.endpoints import role_clients
    from raygrad.optim.evaluate import evaluate
    from raygrad.optim.metrics import number_match
    from raygrad.optim.trainer import Trainer
    from raygrad.runs.config import ModelConfig, RunConfig, TrainerConfig
    from raygrad.tasks import ObjectCount

    def examples(rows: list[dict]) -> list[Example]:
        return [Example(id=str(i), **r) for i, r in enumerate(rows)]

    with tempfile.TemporaryDirectory() as folder:
        config = RunConfig(name="peers", output_dir=folder, models={
            role: ModelConfig(model=f"openai/{role}", api_base=url) for role in ("task", "backward", "optimizer")})
        workflow = ObjectCount(instruction=START[0], output_format=START[1])
        workflow.demos.trainable = False  # the peers' programs have no demos either

        async def fit() -> float:
            with role_clients(config.role_models(), config.journal_path) as clients:
                settings = TrainerConfig(**{"steps": 1000, "batch_size": 4, "proposals": 5, "seed": seed,
                                            "max_calls": budget, **(trainer or {})})
                await Trainer(workflow, number_match, clients, settings, eval_name="number").fit(
                    examples(data["train"]), examples(data["val"]))
                meter.counting = False
                for client_ in clients.values():
                    client_.budget_guard = None  # the budget was the optimization's; the test is uncounted
                return (await evaluate(workflow, examples(data["test"]), clients["task"], number_match)).score

        return asyncio.run(fit()), " ".join(workflow.state().values())


def spent_first(meter: Meter, calls: int | None = None) -> tuple[int, float, dict[str, float]]:
    """(calls, $, $ per role) of the first `calls` answers a meter recorded (all by default)."""
    by_role = dict.fromkeys(PRICES, 0.0)
    rows = sorted(meter.records)[:calls]
    for _, model, tokens_in, tokens_out in rows:
        by_role[model] += (tokens_in * PRICES[model][0] + tokens_out * PRICES[model][1]) / 1e6
    return len(rows), sum(by_role.values()), by_role


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 750, 1000])
    parser.add_argument("--raygrad", nargs="+", default=["{}"], metavar="JSON",
                        help='raygrad trainer settings to run, each its own row (e.g. \'{"min_gain": 0.05}\')')
    parser.add_argument("--peers", nargs="*", default=["gepa", "gepa-package", "mipro", "adalflow"],
                        choices=["gepa", "gepa-package", "mipro", "adalflow"])
    parser.add_argument("--output", default="peers_budget")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    import litellm

    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers")
    data = peers_cost_questions(50)
    budgeted = {}
    for settings in map(json.loads, args.raygrad):
        label = ", ".join(f"{k}: {v}" for k, v in settings.items()) or "default"
        budgeted[f"raygrad ({label})"] = functools.partial(run_raygrad, trainer=settings)
    if "gepa" in args.peers:
        budgeted["GEPA (dspy.GEPA: pareto, merge)"] = run_gepa
    if "gepa-package" in args.peers:
        budgeted["GEPA (gepa.optimize: pareto, merge)"] = run_gepa_package
    if "mipro" in args.peers:
        budgeted["MIPROv2 (dspy, instructions only)"] = run_mipro
    names = [*budgeted, *(["AdalFlow (constrained)"] if "adalflow" in args.peers else [])]
    runs: dict[tuple[str, int], list[tuple[float, int, float, dict[str, float]]]] = {
        (n, b): [] for n in names for b in args.budgets}
    options = " ".join(f"--{k} {' '.join(map(str, v))}" for k, v in
                       (("seeds", args.seeds), ("budgets", args.budgets), ("peers", args.peers)))
    options += "".join(f" '{raw}'" if i else f" --raygrad '{raw}'" for i, raw in enumerate(args.raygrad)) \
        if args.raygrad != ["{}"] else ""
    options += f" --output {args.output}" if args.output != "peers_budget" else ""
    for seed in args.seeds:
        for budget in args.budgets:
            for name, runner in budgeted.items():
                meter = Meter(respond)
                with SimulatedServer(ServerSettings(), responder=meter) as server:
                    test, final = runner(server.url, meter, data, seed, budget)
                calls, dollars, by_role = spent_first(meter)
                runs[name, budget].append((test, calls, dollars, by_role))
                print(name, budget, seed, test, calls, round(dollars, 4), final[:160], flush=True)
        if "adalflow" in args.peers:
            meter = Meter(respond)
            with SimulatedServer(ServerSettings(), responder=meter) as server:
                tests = run_adalflow(server.url, meter, data, seed, args.budgets)
            for budget, (test, final) in tests.items():
                calls, dollars, by_role = spent_first(meter, budget)
                runs["AdalFlow (constrained)", budget].append((test, calls, dollars, by_role))
                print("AdalFlow", budget, seed, test, calls, round(dollars, 4), final[:160], flush=True)
        write_results(args, names, runs, options)


def best_within(cells: dict[tuple[str, int], tuple[float, float]], name: str, dollars: float) -> str:
    """A framework's best mean test score at a budget whose mean spend was at most `dollars`, or '-'."""
    scores = [test for (framework, _), (test, spent) in cells.items() if framework == name and spent <= dollars + 5e-4]
    return f"{max(scores):.3f}" if scores else "-"


def write_results(args: argparse.Namespace, names: list[str], runs: dict, options: str) -> None:
    rows, cells = [], {}  # cells: (framework, budget) -> (mean test, mean $)
    for budget in args.budgets:
        for name in names:
            done = runs[name, budget]
            if done:
                cells[name, budget] = statistics.mean(r[0] for r in done), statistics.mean(r[2] for r in done)
                roles = " / ".join(f"{statistics.mean(r[3][role] for r in done):.3f}" for role in PRICES)
                rows.append([budget, name, spread([r[0] for r in done], 3), spread([r[1] for r in done], 0),
                             spread([r[2] for r in done], 3), roles])
    seeds = len(runs[names[0], args.budgets[0]])
    ours, peers = [n for n in names if n.startswith("raygrad")], [n for n in names if not n.startswith("raygrad")]
    lines = []
    for budget in args.budgets:
        scored = {n: cells[n, budget][0] for n in names if (n, budget) in cells}
        if peers and ours and scored:
            top = max(peers, key=lambda n: scored.get(n, -1.0))
            lines.append(f"- {budget} calls: best peer {top} {scored[top]:.3f}; "
                         + "; ".join(f"{n} {scored[n]:.3f} ({scored[n] - scored[top]:+.3f})" for n in ours))
    # At equal dollars: at each peer's spend, the best mean test each framework reached for no more.
    levels = sorted({round(cells[n, b][1], 3) for n in peers for b in args.budgets if (n, b) in cells})
    dollars = [[f"{level:.3f}", *(best_within(cells, name, level) for name in names)] for level in levels]
    final = max((n for n in peers if (n, max(args.budgets)) in cells), key=lambda n: cells[n, max(args.budgets)][0],
                default=None)
    if final is not None:
        target, paid = cells[final, max(args.budgets)]
        for name in ours:
            reached = sorted(d for (n, _), (t, d) in cells.items() if n == name and t >= target - 5e-4)
            lines.append(f"- {name} reaches {final}'s final test score ({target:.3f}, for ${paid:.3f}) "
                         + (f"for ${reached[0]:.3f}, {reached[0] / paid:.2f} of its dollars" if reached
                            else "at no budget measured"))
    write_table(args.output, f"raygrad and its peers at equal budgets: test accuracy over spend (ObjectCount, 50 "
                             f"validation questions, 100 test; {seeds} of seeds {args.seeds})",
                ["budget (calls)", "framework", "test (100 held out)", "calls spent", "$ spent",
                 "$ task / backward / optimizer (mean)"], rows,
                notes="Mean (range) over the seeds; calls and dollars counted at the simulated server (all roles; "
                      "the test scoring\nleft out), replies as long as real ones (the rules are in the script's "
                      "docstring). raygrad stops at\nits budget (its last step rolled back) or when it stalls "
                      "(trainer.patience); GEPA's `max_metric_calls` is 0.98\nof the budget, its reflection calls on "
                      "top; MIPROv2's trials are fitted to the budget (`mipro_settings`);\nAdalFlow is read at each "
                      "budget (its prompt at its last step record before that spend).\n\n" + "\n".join(lines) +
                      "\n\nAt equal dollars: at each peer's mean spend at a budget, the best mean test score each "
                      "framework\nreached at a budget whose mean spend was no more (- : none that cheap).\n\n"
                      + table(["$ (a peer's mean spend)", *names], dollars) +
                      f"\n\n    cd benchmarks && python peers_budget.py {options}")


if __name__ == "__main__":
    main()
