"""Test accuracy at equal spend: raygrad's trainer against DSPy's GEPA, on the same task and budgets.

Both optimize the prompt of one ObjectCount call from the same text ("You will answer a reasoning
question. Respond with the final answer as a number on the last line.") on the same 50 training and 50
validation questions, stopped by a budget of calls; the final prompt is scored on 100 held-out test
questions (uncounted). raygrad trains its instruction and output format (batch 4, 5 proposals); GEPA
(dspy 3.4, gepa 0.1.4) its program's one instruction, at the settings its authors recommend: Pareto
candidate selection, merge on (up to 5), reflection minibatches of 3, its budget given as
`max_metric_calls` (0.98 of the budget, so that its calls, reflection included, come close to it).

The provider is the simulated one of raygrad.tasks.simulated, under the same rules for both, each
request read only from its own text:
- The task model answers a question right by the same rule whatever asks it (the question's hidden
  cause fixed by an instruction in the system prompt; one answer in ten a coin flip).
- Feedback on an error sample names the fix of its question's cause with probability 0.7, else a
  random catalog instruction: raygrad's backward engine reads one sample per call, GEPA's reflection
  call reads the examples its request holds (their question and the metric's feedback, "The answer
  is wrong: it is N.") and diagnoses each wrong one by the same draw.
- A proposal adds to the value the instruction the feedback names most (with probability 0.25 a
  random one), never one the value holds and never a value its request lists as failed (GEPA's
  requests list none).
GEPA's metric is what a user writes: 1 or 0 and that feedback text. Calls counted at the server per
role; dollars at the paper's models' prices (task gpt-3.5-turbo; backward, optimizer and GEPA's
reflection model gpt-4o).

    pip install -e ".[bench]"
    cd benchmarks && python peers_gepa.py [--seeds 0 1 2 3 4] [--budgets 250 500 1000]
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

from common import peers_cost_questions, spread, write_table
from peers_cost import Meter

from raygrad.tasks.object_count import solve_object_counting
from raygrad.tasks.simulated import answers_right, feedback, last, proposals
from raygrad.testing import RESPONDERS, ServerSettings, SimulatedServer

START = ("You will answer a reasoning question.", "Respond with the final answer as a number on the last line.")
QUESTION = re.compile(r"I have [^\n\"]*?\. How many [^\n\"]+? do I have\?")


def field(text: str, name: str) -> str:
    """A DSPy ChatAdapter field's text in a message."""
    found = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?:\n\n\[\[ ## |\n\nRespond with|\Z)", text, re.S)
    return found.group(1).strip() if found else ""


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """raygrad's requests as raygrad's trainer responder answers them; DSPy's (ChatAdapter fields) by the
    same rules: the task model, and GEPA's reflection call as backward engine and optimizer in one."""
    user = last(messages, "user")
    if "[[ ## " not in user:
        return RESPONDERS["object_count_trainer"](messages, body)
    rng = random.Random(hashlib.sha256(user.encode()).digest())
    if "[[ ## examples_with_feedback ## ]]" in user:
        examples = json.loads(field(user, "examples_with_feedback"))
        wrong = [e for e in examples if str(e.get("Feedback", "")).startswith("The answer is wrong")]
        lines = "\n".join(feedback(str(e["Inputs"].get("question", "")), rng) for e in wrong)
        value = field(user, "current_instruction")
        return json.dumps({"new_instruction": proposals(value, lines, 1, rng)[0]})  # it asks for a JSON object
    question = QUESTION.search(user)
    truth = solve_object_counting(question.group(0)) if question else None
    if truth is None:
        return "[[ ## answer ## ]]\nI do not know.\n\n[[ ## completed ## ]]"
    right = answers_right(last(messages, "system"), question.group(0))
    return f"[[ ## answer ## ]]\n{truth if right else truth + 1}\n\n[[ ## completed ## ]]"


def run_gepa(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, budget: int) -> tuple[float, str]:
    import dspy

    task = dspy.LM("openai/task", api_base=url, api_key="sk-bench", cache=False, num_retries=8)
    reflection = dspy.LM("openai/optimizer", api_base=url, api_key="sk-bench", cache=False, num_retries=8,
                         max_tokens=4000)
    dspy.configure(lm=task)
    program = dspy.Predict(dspy.Signature("question -> answer", instructions=" ".join(START)))

    def examples(rows: list[dict]) -> list[dspy.Example]:
        return [dspy.Example(question=r["input"], answer=r["target"]).with_inputs("question") for r in rows]

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        found = re.findall(r"-?\d+", str(pred.answer))
        right = bool(found) and found[-1] == gold.answer
        return dspy.Prediction(score=float(right), feedback="The answer is right." if right else
                               f"The answer is wrong: it is {gold.answer}.")

    # Its reflection calls come on top of the metric calls: one per iteration, about 2% of its calls here.
    optimizer = dspy.GEPA(metric=metric, max_metric_calls=int(budget * 0.98), reflection_lm=reflection, seed=seed,
                          num_threads=4, candidate_selection_strategy="pareto", use_merge=True,
                          max_merge_invocations=5, reflection_minibatch_size=3)
    optimized = optimizer.compile(program, trainset=examples(data["train"]), valset=examples(data["val"]))
    meter.counting = False
    score = dspy.Evaluate(devset=examples(data["test"]), metric=lambda g, p, t=None: metric(g, p).score,
                          num_threads=4, display_progress=False)(optimized)
    return float(getattr(score, "score", score)) / 100, optimized.signature.instructions


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
        config = RunConfig(name="gepa", output_dir=folder, models={
            role: ModelConfig(model=f"openai/{role}", api_base=url) for role in ("task", "backward", "optimizer")})
        workflow = ObjectCount(instruction=START[0], output_format=START[1])
        workflow.demos.trainable = False  # GEPA's program has no demos either

        async def fit() -> float:
            with role_clients(config.role_models(), config.journal_path) as clients:
                settings = TrainerConfig(steps=1000, batch_size=4, proposals=5, seed=seed, max_calls=budget,
                                         **(trainer or {}))
                await Trainer(workflow, number_match, clients, settings, eval_name="number").fit(
                    examples(data["train"]), examples(data["val"]))
                meter.counting = False
                for client in clients.values():
                    client.budget_guard = None  # the budget was the optimization's; the test is uncounted
                return (await evaluate(workflow, examples(data["test"]), clients["task"], number_match)).score

        return asyncio.run(fit()), " ".join(workflow.state().values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--raygrad", nargs="+", default=["{}"], metavar="JSON",
                        help='raygrad trainer settings to run, each its own row (e.g. \'{"min_gain": 0.05}\')')
    parser.add_argument("--no-gepa", action="store_true", help="raygrad only (GEPA's rows stand in peers_gepa.md)")
    parser.add_argument("--output", default="peers_gepa")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    import litellm

    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers")
    data = peers_cost_questions(50)
    runners = {}
    for settings in map(json.loads, args.raygrad):
        label = ", ".join(f"{k}: {v}" for k, v in settings.items()) or "default"
        runners[f"raygrad ({label})"] = functools.partial(run_raygrad, trainer=settings)
    if not args.no_gepa:
        runners["GEPA (dspy.GEPA, pareto, merge)"] = run_gepa
    rows, means = [], {}
    for budget in args.budgets:
        for name, runner in runners.items():
            tests, calls, dollars = [], [], []
            for seed in args.seeds:
                meter = Meter(respond)
                with SimulatedServer(ServerSettings(), responder=meter) as server:
                    test, final = runner(server.url, meter, data, seed, budget)
                spent = meter.spent()
                tests.append(test)
                calls.append(spent[0])
                dollars.append(spent[2])
                print(name, budget, seed, test, spent, final[:120], flush=True)
            means[name, budget] = statistics.mean(tests)
            rows.append([budget, name, spread(tests, 3), spread(calls, 0), spread(dollars, 3)])
    options = ("" if args.raygrad == ["{}"] else " --raygrad " + " ".join(f"'{raw}'" for raw in args.raygrad)) + \
        (" --no-gepa" if args.no_gepa else "") + (f" --output {args.output}" if args.output != "peers_gepa" else "")
    who = "raygrad" if args.no_gepa else "raygrad and GEPA"
    write_table(args.output, f"{who} at equal budgets: test accuracy over spend (ObjectCount, 50 "
                              f"validation questions, 100 test; seeds {args.seeds})",
                ["budget (calls)", "framework", "test (100 held out)", "calls spent", "$ spent"], rows,
                notes=f"""Mean (range) over the seeds; calls and dollars counted at the simulated server (all roles;
the test scoring left out). raygrad stops at its budget (its last step rolled back); GEPA's
`max_metric_calls` is 0.98 of the budget, its reflection calls on top.

    cd benchmarks && python peers_gepa.py --seeds {' '.join(map(str, args.seeds))} \
        --budgets {' '.join(map(str, args.budgets))}{options}""")


if __name__ == "__main__":
    main()
