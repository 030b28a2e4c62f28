"""Cost to reach a validation score: raygrad's trainer against AdalFlow 1.1.3's, same task and settings.

Both optimize the same two prompt parameters of one ObjectCount call (an instruction and an output
format; no few-shot demos) for 12 steps, batch 4, 5 proposals per step, on the same 50 training and
50 validation questions (`--val` sets how many), then the final prompts are scored on 100 held-out
test questions. The provider is the simulated one of raygrad.tasks.simulated, which does not know
the answer: each question hides a cause of failure; the backward engine names it (with noise) only
from the sample in its request; the optimizer adds what the feedback in its request names (with
noise). It speaks each framework's format: raygrad's JSON, AdalFlow's XML with one proposal per
reply. Each role has its own model name, so calls are counted per role at the server. AdalFlow also
asks its backward engine about samples answered right (raygrad does not): it is told they are right.
Tokens are counted there with tiktoken's cl100k_base (the file litellm ships), dollars at the
paper's models' prices.

From each framework's own per-step records (raygrad's step events, with each step's prompt scored on
the whole validation set; AdalFlow's step results), the calls, tokens and dollars spent by the time
each validation level was first reached; per seed
(raygrad's trainer seed; AdalFlow's loader shuffles with Python's and NumPy's random state). And
how many of the four fixes each final prompt holds: a prompt with all four has nothing left to learn
(simulator_ceiling.py scores such prompts; above their mean, a score is a lucky draw).

    pip install -e ".[bench]"; cd benchmarks && python peers_cost.py [--seeds 0 1 2 3 4 5 6 7 8 9] [--val 200]
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adalflow_task import client, exact, import_adalflow, object_count_task, samples
from common import PEERS_COST_VAL, peers_cost_questions, sized, write_table

from raygrad.optim.events import Started, StepEnded, TrainerEvent
from raygrad.tasks.object_count import respond as object_count
from raygrad.tasks.simulated import FIXES, feedback, holds, proposals
from raygrad.testing import RESPONDERS, ServerSettings, SimulatedServer

INSTRUCTION = "You will answer a reasoning question."
OUTPUT_FORMAT = "Respond with the final answer as a number on the last line."
ROLES = ("task", "backward", "optimizer")
STEPS, BATCH, PROPOSALS = 12, 4, 5
CORRECT = "The answer is right: keep the prompt as it is."
QUESTION = re.compile(r"I have [^<]*?\. How many [^<]+? do I have\?")
# The paper's models, $ per million tokens (input, output): task gpt-3.5-turbo, backward and optimizer gpt-4o.
PRICES = {"task": (0.5, 1.5), "backward": (2.5, 10.0), "optimizer": (2.5, 10.0)}


class Meter:
    """Wraps a responder: records (time, role, input tokens, output tokens) of every answer, in cl100k tokens."""

    def __init__(self, responder):
        import tiktoken

        self.encoding, self.responder = tiktoken.get_encoding("cl100k_base"), responder
        self.records: list[tuple[float, str, int, int]] = []
        self.counting = True
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict], body: dict[str, Any]) -> str:
        reply = self.responder(messages, body)
        if self.counting:
            tokens_in = sum(len(self.encoding.encode(str(m.get("content", "")))) + 4 for m in messages) + 3
            with self._lock:
                self.records.append((time.monotonic(), str(body.get("model")), tokens_in,
                                     len(self.encoding.encode(reply))))
        return reply

    def spent(self, until: float = float("inf")) -> tuple[int, int, float]:
        """(calls, tokens, $) answered up to `until`."""
        rows = [r for r in self.records if r[0] <= until]
        dollars = sum((i * PRICES[m][0] + o * PRICES[m][1]) / 1e6 for _, m, i, o in rows)
        return len(rows), sum(i + o for _, _, i, o in rows), dollars


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """raygrad's prompts come as system + user messages; AdalFlow's as one rendered text."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if "<START_OF_SYSTEM_PROMPT>" not in text:
        return RESPONDERS["object_count_trainer"](messages, body)
    return respond_adalflow(text, body, lambda system, question: object_count(
        [{"role": "system", "content": system}, {"role": "user", "content": question}], body))


def respond_adalflow(text: str, body: dict[str, Any], task: Callable[[str, str], str], explanation: str = "",
                     reasoning: str = "Apply the feedback.") -> str:
    """AdalFlow's requests (one rendered text each): its backward engine, its optimizer (one proposal, XML),
    and the task model (`task(system, question)`). `explanation` goes before each diagnosis of an error,
    `reasoning` in the optimizer's reasoning tag."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    if body.get("model") == "backward":  # the sample's question is in the call it is shown
        if "OUTPUTS/SCORE: 1.0" in text or CORRECT in text:  # AdalFlow also asks about right answers
            return CORRECT
        question = QUESTION.search(text)
        return explanation + feedback(question.group(0) if question else "", rng)
    if body.get("model") == "optimizer":
        value = re.search(r"<VARIABLE>(.*?)</VARIABLE>", text, re.S)
        context, failed = section(text, "CONTEXT_FEEDBACK"), section(text, "CURRENT_ITERATION")
        peers = section(text, "VARIABLE_AND_PEERS_INFO") + section(text, "SYSTEM_VARIABLES")
        proposal = proposals(value.group(1).strip() if value else "", context, 1, rng, peers, failed)[0]
        return (f"<response><reasoning>{reasoning}</reasoning><method>editing</method>"
                f"<proposed_variable>{proposal}</proposed_variable></response>")
    system = text.split("<START_OF_SYSTEM_PROMPT>", 1)[1].split("<END_OF_SYSTEM_PROMPT>", 1)[0].strip()
    question = text.split("<START_OF_USER>", 1)[1].split("<END_OF_USER>", 1)[0].strip()
    return task(system, question)


def section(text: str, tag: str) -> str:
    found = re.search(rf"<START_OF_{tag}>(.*?)<END_OF_{tag}>", text, re.S)
    return found.group(1) if found else ""


def run_raygrad(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, directory: str,
                **switches: Any) -> tuple[list[tuple[float, float]], float, str]:
    """raygrad's trainer in this process over HTTP. Returns (time, best validation) per step record
    (the initial validation first), the final prompts' test score, and their text. The best validation
    is the step's prompt scored on the whole validation set, uncounted: with early acceptance the
    trainer's own figure is an estimate."""
    from raygrad.data import Example
    from raygrad.llm.endpoints import role_clients
    from raygrad.optim.evaluate import evaluate
    from raygrad.optim.metrics import number_match
    from raygrad.optim.trainer import Trainer
    from raygrad.runs.config import ModelConfig, RunConfig, TrainerConfig
    from raygrad.tasks import ObjectCount

    config = RunConfig(name="cost", output_dir=directory,
                       models={role: ModelConfig(model=f"openai/{role}", api_base=url) for role in ROLES})
    workflow = ObjectCount(instruction=INSTRUCTION, output_format=OUTPUT_FORMAT)
    workflow.demos.trainable = False  # AdalFlow's side has no demos either
    records: list[tuple[float, float]] = []
    prompts: list[dict[str, str]] = []

    def on_event(event: TrainerEvent) -> None:
        if isinstance(event, Started | StepEnded):
            records.append((time.monotonic(), event.best_val))
            prompts.append(workflow.state())

    def examples(rows: list[dict]) -> list[Example]:
        return [Example(id=str(i), **r) for i, r in enumerate(rows)]

    async def fit() -> float:
        with role_clients(config.role_models(), config.journal_path) as clients:
            trainer = Trainer(workflow, number_match, clients,
                              TrainerConfig(steps=STEPS, batch_size=BATCH, proposals=PROPOSALS, seed=seed,
                                            **switches),
                              eval_name="number", on_event=on_event)
            await trainer.fit(examples(data["train"]), examples(data["val"]))
            meter.counting = False
            final, whole = workflow.state(), {}
            for values in prompts:
                key = json.dumps(values, sort_keys=True)
                if key not in whole:
                    workflow.load_state(values)
                    whole[key] = (await evaluate(workflow, examples(data["val"]), clients["task"], number_match)).score
            workflow.load_state(final)
            scores = [whole[json.dumps(values, sort_keys=True)] for values in prompts]
            if "early_acceptance" not in switches:  # the trainer's own figures are exact: they must agree
                assert all(abs(s - r) < 1e-9 for s, (_, r) in zip(scores, records)), "a validation score differs"
            records[:] = [(moment, score) for (moment, _), score in zip(records, scores)]
            return (await evaluate(workflow, examples(data["test"]), clients["task"], number_match)).score

    test = asyncio.run(fit())
    return records, test, " ".join(workflow.state().values())


def run_adalflow(url: str, meter: Meter, data: dict[str, list[dict]], seed: int, directory: str
                 ) -> tuple[list[tuple[float, float]], float, str]:
    import numpy

    adal = import_adalflow(home=directory)
    template = ("<START_OF_SYSTEM_PROMPT>\n{{instruction}}\n\n{{output_format}}\n<END_OF_SYSTEM_PROMPT>\n"
                "<START_OF_USER>\n{{input_str}}\n<END_OF_USER>")
    task = object_count_task(url, template, {"instruction": INSTRUCTION, "output_format": OUTPUT_FORMAT},
                             loss_fn=adal.EvalFnToTextLoss(eval_fn=exact, eval_fn_desc="1 if str(y) == str(y_gt) else 0"),
                             backward_engine_model_config=client(url, "backward"),
                             text_optimizer_model_config=client(url, "optimizer"))
    trainer = adal.Trainer(adaltask=task, max_steps=STEPS, train_batch_size=BATCH, max_proposals_per_step=PROPOSALS,
                           num_workers=4, strategy="constrained", ckpt_path=directory, raw_shots=0, bootstrap_shots=0)
    records: list[tuple[float, float]] = []
    add_step = adal.Trainer._add_one_step_in_trainer_results

    def recorded(trainer_results, val_score, *args, **kwargs):  # AdalFlow's own per-step record, timed
        records.append((time.monotonic(), float(val_score)))
        return add_step(trainer_results, val_score, *args, **kwargs)

    adal.Trainer._add_one_step_in_trainer_results = staticmethod(recorded)
    random.seed(seed)
    numpy.random.seed(seed)
    try:
        trainer.fit(train_dataset=samples(data["train"]), val_dataset=samples(data["val"], 50))
    finally:
        adal.Trainer._add_one_step_in_trainer_results = staticmethod(add_step)
    meter.counting = False
    result = task.validation_step(samples(data["test"], 100), 0, num_workers=4)
    return records, float(result.avg_score), " ".join(p.data for p in task.task.llm.prompt_kwargs.values())


def first_reached(records: list[tuple[float, float]], meter: Meter, level: float) -> tuple[int, int, float] | None:
    best = 0.0
    for moment, score in records:
        best = max(best, score)
        if best >= level - 1e-9:
            return meter.spent(moment)
    return None


def per_success(reached: list[tuple[int, int, float] | None], meters: list[Meter]) -> tuple[float, float] | None:
    """Expected calls and dollars per run that reaches a level, restarting until one does (the expected
    running time of black-box optimization benchmarks): what every run spent until it reached the level
    (`reached`, from first_reached) or ended, over the number that reached it. Unlike the mean over the
    runs that reached it, a run that never got there counts against its framework."""
    hits = sum(r is not None for r in reached)
    if not hits:
        return None
    paid = [r or m.spent() for r, m in zip(reached, meters)]
    return sum(p[0] for p in paid) / hits, sum(p[2] for p in paid) / hits


def summary(values: list[float], form: str) -> str:
    if not values:
        return "-"
    middle = form.format(statistics.mean(values))
    return middle if len(values) == 1 else f"{middle} ({form.format(min(values))}-{form.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    variants = {"raygrad, early rejection off": {"early_rejection": False},
                "raygrad, stage 1 off": {"stage1": False},
                "raygrad, stage 1 off, up to 4 minibatches a step": {"stage1": False, "batches_until_error": 4},
                "raygrad, one parameter per candidate": {"candidates": "per_parameter"},
                "raygrad, no error pool": {"error_pool": 0},
                "raygrad, early acceptance at 0.95": {"early_acceptance": 0.95},
                "raygrad, the paper's loop (one parameter per candidate, no error pool)":
                    {"candidates": "per_parameter", "error_pool": 0}}
    parser.add_argument("--only", nargs="+", default=["raygrad", *variants, "AdalFlow", "AdalFlow, again"])
    parser.add_argument("--val", type=int, default=PEERS_COST_VAL,
                        help="validation questions (results: peers_cost_val<N>.md unless 50)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    import litellm

    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers")
    data = peers_cost_questions(args.val)
    # AdalFlow twice: its threads make two runs of one seed differ, and the table shows by how much.
    runners = {"raygrad": run_raygrad, "AdalFlow": run_adalflow, "AdalFlow, again": run_adalflow,
               **{name: functools.partial(run_raygrad, **switches) for name, switches in variants.items()}}
    runners = {name: runners[name] for name in args.only}
    runs: dict[str, list[tuple[list, float, Meter]]] = {name: [] for name in runners}
    fixes: dict[str, list[int]] = {name: [] for name in runners}  # of the four, in each final prompt
    for seed in args.seeds:
        for name, runner in runners.items():
            meter = Meter(respond)
            with SimulatedServer(ServerSettings(), responder=meter) as server, \
                    tempfile.TemporaryDirectory() as folder:
                records, test, final = runner(server.url, meter, data, seed, folder)
            runs[name].append((records, test, meter))
            fixes[name].append(sum(holds(final, fix) for fix in FIXES))
            print(name, seed, "best val", max(s for _, s in records), "test", test, "spent", meter.spent(), flush=True)
    table = []
    levels = sorted({round(s, 2) for name in runs for records, _, _ in runs[name] for _, s in records})
    start = min(records[0][1] for name in runs for records, _, _ in runs[name])
    reached_at = {(name, level): [first_reached(records, meter, level) for records, _, meter in runs[name]]
                  for name in runs for level in levels}
    for level in [lv for lv in levels if lv > start]:
        row: list[object] = [f"{level:.2f}"]
        for name in runs:
            reached = reached_at[name, level]
            hits = [r for r in reached if r is not None]
            row += [f"{len(hits)}/{len(reached)}", summary([h[0] for h in hits], "{:.0f}"),
                    summary([h[2] for h in hits], "{:.3f}")]
        table.append(row)
    totals = []
    for name in runs:
        spent = [meter.spent() for _, _, meter in runs[name]]
        best = [max(s for _, s in records) for records, _, _ in runs[name]]
        totals.append([name, summary(best, "{:.2f}"), summary([t for _, t, _ in runs[name]], "{:.3f}"),
                       summary([s[0] for s in spent], "{:.0f}"), summary([s[1] for s in spent], "{:,.0f}"),
                       summary([s[2] for s in spent], "{:.3f}"), f"{fixes[name].count(len(FIXES))}/{len(fixes[name])}"])
    top = [lv for lv in levels if lv >= 0.84]
    expected = []
    for name in runs:
        cells = [per_success(reached_at[name, lv], [m for _, _, m in runs[name]]) for lv in top]
        expected.append([name] + [f"{c[0]:.0f} / {c[1]:.3f}" if c else "-" for c in cells])
    adalflow_best = (f" AdalFlow's mean best validation: "
                     f"{statistics.mean(max(s for _, s in records) for records, _, _ in runs['AdalFlow']):.2f}."
                     if "AdalFlow" in runs else "")  # --only may leave it out
    header = ["validation level"] + [f"{n} {c}" for n in runs for c in ("reached", "calls", "$")]
    results, size = sized("peers_cost", args.val)
    write_table(
        results,
        f"raygrad and AdalFlow 1.1.3: cost to first reach each validation score ({STEPS} steps, batch {BATCH}, "
        f"{PROPOSALS} proposals, {args.val} validation questions; seeds {args.seeds})",
        header, table,
        notes=f"""Calls and dollars spent (all roles, the initial validation included) by the step record at which
each framework's best validation score first reached the level: mean (range) over the seeds that
reached it. Counted at the simulated server; tokens with tiktoken cl100k_base; dollars at the paper's
models' prices (task gpt-3.5-turbo $0.50/$1.50, backward and optimizer gpt-4o $2.50/$10 per million
input/output tokens).{adalflow_best}

| framework | best validation | test (100 held out) | calls | tokens | $ | final prompts holding all four fixes |
|---|---|---|---|---|---|---|
""" + "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in totals) + f"""

Expected calls / dollars per run that reaches each level, restarting until one does: all that every
seed spent until it reached the level or ended, over the seeds that reached it (the expected running
time of black-box optimization benchmarks). A seed that never reached the level counts against its
framework here, while the mean above leaves it out.

| framework | {" | ".join(f"{lv:.2f}" for lv in top)} |
|---|{"---|" * len(top)}
""" + "\n".join("| " + " | ".join(row) + " |" for row in expected) + f"""

    cd benchmarks && python peers_cost.py --seeds {' '.join(map(str, args.seeds))}{size}""")


if __name__ == "__main__":
    main()
