"""Roles left out: the rule (a role left out uses the task model) against the paper's setting (task
gpt-3.5-turbo, backward engine and optimizer gpt-4o), on ObjectCount with the paper's split sizes
(50 train, 100 validation, 100 test) and its trainer (12 steps, batch 4, 5 proposals).

Both run against the simulated provider (its own process) under the real model names, so litellm
prices each call as OpenAI would (tokens are the simulator's words). gpt-3.5-turbo has no
structured output, so its backward and optimizer requests carry the JSON schema in the prompt, as
raygrad sends them to that model. The simulator answers alike whatever a model is called: what this
measures is the cost of each setting and that the rule runs the method end to end; how much a
stronger backward engine and optimizer gain on a real provider, it cannot tell.

    python benchmarks/role_models.py [--seeds 0 1 2 3 4]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

from common import simulated_server, write_table

import raygrad
from raygrad.tasks.object_count import generate_object_counting

SETTINGS = {
    "rule: task model for every role": {"task": "openai/gpt-3.5-turbo"},
    "paper: gpt-4o backward and optimizer": {"task": "openai/gpt-3.5-turbo", "backward": "openai/gpt-4o",
                                             "optimizer": "openai/gpt-4o"},
}


def run(url: str, models: dict[str, str], seed: int, folder: str) -> raygrad.OptimizeResult:
    rows = generate_object_counting(250, seed=seed)
    data = [{"input": row["input"], "target": row["target"]} for row in rows]
    return raygrad.optimize(
        raygrad.ObjectCount(instruction="Answer.", output_format="Reply."), data[:50], data[50:150],
        test=data[150:], metric="number", progress=False, name=f"seed{seed}", output_dir=folder,
        models={role: {"model": model, "api_base": url, "api_key_env": "SIMULATED_KEY"}
                for role, model in models.items()},
        trainer={"steps": 12, "batch_size": 4, "proposals": 5, "seed": seed})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    import os

    os.environ.setdefault("SIMULATED_KEY", "sk-simulated")
    rows = []
    with simulated_server(responder="object_count_trainer") as url:
        for setting, models in SETTINGS.items():
            results = []
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as folder:
                    results.append(run(url, models, seed, folder))
            dollars = {role: statistics.mean(r.usage[role].cost for r in results) for role in ("task", "backward",
                                                                                              "optimizer")}
            rows.append([setting, f"{statistics.mean(r.test_before for r in results):.3f}",
                         f"{statistics.mean(r.test_after for r in results):.3f}",
                         f"{statistics.mean(sum(u.calls for u in r.usage.values()) for r in results):.0f}",
                         f"{dollars['task']:.4f}", f"{dollars['backward'] + dollars['optimizer']:.4f}",
                         f"{sum(dollars.values()):.4f}"])
    ratio = float(rows[1][-1]) / float(rows[0][-1])
    write_table("role_models", "A role left out uses the task model, against the paper's setting (ObjectCount, "
                f"seeds {args.seeds})",
                ["setting", "test before", "test after", "calls", "$ task", "$ backward + optimizer", "$ total"], rows,
                notes=f"The paper's setting costs {ratio:.2f}x the rule's dollars per run. The simulated provider "
                      "answers alike for every model name, so the test scores differ only by the draws its rules "
                      "make from each request's text; a stronger backward engine's gain on a real provider is not "
                      "measured here.\n`python benchmarks/role_models.py`")


if __name__ == "__main__":
    main()
