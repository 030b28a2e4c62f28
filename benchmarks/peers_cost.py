"""LLM calls and tokens per optimizer step: raygrad's trainer against AdalFlow 1.1.3's, same settings.

Both optimize the same two prompt parameters of one ObjectCount call (an instruction and an output
format; no few-shot demos) for the same steps on the same 50 training and 50 validation questions,
with batch 4 and 5 proposals per step, against one deterministic simulated provider. Each role has
its own model name (task, backward, optimizer), so the server's log counts calls and tokens per role.
The provider answers a question right as often as the system prompt is good (a hash of prompt and
question under a quality that grows with helpful phrases), writes one fixed feedback as the backward
engine, and as the optimizer adds a helpful phrase the value lacks, in each framework's reply format
(raygrad: k proposals as JSON in one reply; AdalFlow: one proposal per reply, in its XML, never one it
was told had failed). Both start from the same prompts and get the same answers for the same prompt.

    pip install -e ".[bench]"; cd benchmarks && python peers_cost.py [--steps 3]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import re
import tempfile
from typing import Any

from adalflow_task import client, exact, import_adalflow, object_count_task, samples
from common import write_table

from raygrad.tasks.object_count import generate_object_counting
from raygrad.tasks.object_count import respond as object_count
from raygrad.tasks.simulated import helpful_proposals
from raygrad.testing import RESPONDERS, ServerSettings, SimulatedServer

INSTRUCTION = "You will answer a reasoning question."
OUTPUT_FORMAT = "Respond with the final answer as a number on the last line."
ROLES = ("task", "backward", "optimizer")


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """raygrad's prompts come as system + user messages; AdalFlow's as one rendered text."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if "<START_OF_SYSTEM_PROMPT>" not in text:
        return RESPONDERS["object_count_trainer"](messages, body)
    if body.get("model") == "backward":
        return "The count was off; say to count each item of the asked category only."
    if body.get("model") == "optimizer":
        value = re.search(r"<VARIABLE>(.*?)</VARIABLE>", text, re.S)
        value = value.group(1).strip() if value else ""
        # AdalFlow lists failed proposals by their reasoning (not their value): each names its addition.
        failed = text.split("<START_OF_CURRENT_ITERATION>", 1)[1] if "<START_OF_CURRENT_ITERATION>" in text else ""
        fresh = [(p, f"Add: {p[len(value):].strip()}") for p in helpful_proposals(value, 7)]
        proposal, reasoning = next(((p, r) for p, r in fresh if r not in failed), fresh[-1])
        return (f"<response><reasoning>{reasoning}</reasoning><method>editing</method>"
                f"<proposed_variable>{proposal}</proposed_variable></response>")
    system = text.split("<START_OF_SYSTEM_PROMPT>", 1)[1].split("<END_OF_SYSTEM_PROMPT>", 1)[0].strip()
    question = text.split("<START_OF_USER>", 1)[1].split("<END_OF_USER>", 1)[0].strip()
    return object_count([{"role": "system", "content": system}, {"role": "user", "content": question}], body)


# The paper's models, $ per million tokens (input, output): task gpt-3.5-turbo, backward and optimizer gpt-4o.
PRICES = {"task": (0.5, 1.5), "backward": (2.5, 10.0), "optimizer": (2.5, 10.0)}


def per_role(server: SimulatedServer) -> dict[str, tuple[int, int, float]]:
    """(calls, tokens, $ at the paper's models' prices) per role, from the server's log (tokens are words)."""
    counts: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0, 0.0])
    for entry in server.answered():
        prompt, completion = entry.usage["prompt_tokens"], entry.usage["completion_tokens"]  # type: ignore[index]
        row, (per_input, per_output) = counts[entry.model], PRICES[entry.model]
        row[0] += 1
        row[1] += prompt + completion
        row[2] += (prompt * per_input + completion * per_output) / 1e6
    return {role: (int(counts[role][0]), int(counts[role][1]), counts[role][2]) for role in ROLES}


def run_raygrad(url: str, train: list[dict], val: list[dict], steps: int, directory: str) -> tuple[float, int]:
    """raygrad's trainer in this process over HTTP (on Ray the same steps make the same calls).
    Returns the best validation score and the steps run (a perfect score ends the run)."""
    from raygrad.data import Example
    from raygrad.llm.endpoints import role_clients
    from raygrad.optim.metrics import number_match
    from raygrad.optim.trainer import Trainer
    from raygrad.runs.config import ModelConfig, RunConfig, TrainerConfig
    from raygrad.tasks import ObjectCount

    config = RunConfig(name="cost", output_dir=directory,
                       models={role: ModelConfig(model=f"openai/{role}", api_base=url) for role in ROLES})
    workflow = ObjectCount(instruction=INSTRUCTION, output_format=OUTPUT_FORMAT)
    workflow.demos.trainable = False  # AdalFlow's side has no demos either
    trainer_config = TrainerConfig(steps=steps, batch_size=4, proposals=5, seed=0)

    async def fit():
        with role_clients(config.role_models(), config.journal_path) as clients:
            trainer = Trainer(workflow, number_match, clients, trainer_config, eval_name="number")
            return await trainer.fit([Example(id=str(i), **r) for i, r in enumerate(train)],
                                     [Example(id=str(i), **r) for i, r in enumerate(val)])

    state = asyncio.run(fit())
    return state.best_val, state.step


def run_adalflow(url: str, train: list[dict], val: list[dict], steps: int, directory: str) -> tuple[float, int]:
    adal = import_adalflow(home=directory)
    template = ("<START_OF_SYSTEM_PROMPT>\n{{instruction}}\n\n{{output_format}}\n<END_OF_SYSTEM_PROMPT>\n"
                "<START_OF_USER>\n{{input_str}}\n<END_OF_USER>")
    task = object_count_task(url, template, {"instruction": INSTRUCTION, "output_format": OUTPUT_FORMAT},
                             loss_fn=adal.EvalFnToTextLoss(eval_fn=exact, eval_fn_desc="1 if str(y) == str(y_gt) else 0"),
                             backward_engine_model_config=client(url, "backward"),
                             text_optimizer_model_config=client(url, "optimizer"))
    trainer = adal.Trainer(adaltask=task, max_steps=steps, train_batch_size=4, max_proposals_per_step=5,
                           num_workers=4, strategy="constrained", ckpt_path=directory, raw_shots=0, bootstrap_shots=0)
    _, results = trainer.fit(train_dataset=samples(train), val_dataset=samples(val, len(train)))
    return max(results.val_scores), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 12])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    os.environ["TQDM_DISABLE"] = "1"
    rows = generate_object_counting(100, seed=0)
    train, val = rows[:50], rows[50:]
    table = []
    for steps in args.steps:
        measured = []
        for runner in (run_raygrad, run_adalflow):
            with SimulatedServer(ServerSettings(), responder=respond) as server, tempfile.TemporaryDirectory() as folder:
                best = runner(server.url, train, val, steps, folder)
                measured.append((per_role(server), best))
        for role in (*ROLES, "all"):
            cells = []
            for counts, _ in measured:
                picked = list(counts.values()) if role == "all" else [counts[role]]
                cells.append(tuple(sum(column) for column in zip(*picked)))
            (ours, theirs) = cells
            table.append([steps, role, ours[0], theirs[0], f"{ours[0] / theirs[0]:.2f}", ours[1], theirs[1],
                          f"{ours[1] / theirs[1]:.2f}", f"{ours[2]:.4f}", f"{theirs[2]:.4f}", f"{ours[2] / theirs[2]:.2f}"])
        table.append([steps, "best validation (steps run)"]
                     + [f"{best:.2f} ({ran})" for _, (best, ran) in measured] + [""] * 7)
        print(table[-5:], flush=True)
    write_table("peers_cost", "raygrad and AdalFlow 1.1.3: calls, tokens and dollars per role (batch 4, 5 proposals, "
                "50 validation questions; initial validation included)",
                ["steps", "role", "raygrad calls", "AdalFlow calls", "ratio", "raygrad tokens", "AdalFlow tokens",
                 "ratio", "raygrad $", "AdalFlow $", "ratio"], table,
                notes="Counted at the simulated server (tokens are its word counts; dollars at the paper's models' "
                      "prices: task gpt-3.5-turbo $0.50/$1.50, backward and optimizer gpt-4o $2.50/$10 per million "
                      "input/output tokens). One run, same seed, data and provider for both; raygrad ends a run once "
                      "its validation score is perfect, since no candidate can beat it. Goal: raygrad at most half "
                      "of AdalFlow's calls.")


if __name__ == "__main__":
    main()
