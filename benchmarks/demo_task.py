"""What `make demo` learns on the embedded model (SmolLM2-135M-Instruct), over seeds, with its ablations.

Runs the demo's config (raygrad/configs/item_kind_local.yaml) in this process against one local
model server, each run with a fresh journal so every call is paid:
  - the demo as configured (trains the demos parameter), for each seed;
  - every parameter trained (the local model also writing gradients and proposing instructions);
  - labeled demos off (only bootstrapped demos: from samples the model already got right);
  - the accepted demos of the first seed shown inside the system prompt instead of as chat turns.
Before and after are the same run's test scores on the same samples.

    python benchmarks/demo_task.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import write_table

from raygrad.llm.endpoints import role_clients
from raygrad.llm.local import LocalModelServer
from raygrad.optim.evaluate import evaluate
from raygrad.runs.assemble import build_workflow
from raygrad.runs.config import load_config
from raygrad.runs.lifecycle import load_splits, local_runner, run_lifecycle
from raygrad.runs.results import RunResult

CONFIG = Path(__file__).resolve().parents[1] / "raygrad" / "configs" / "item_kind_local.yaml"


def run(server: LocalModelServer, output: str, name: str, **trainer: object) -> tuple[RunResult, float]:
    config = load_config(str(CONFIG))
    config = config.model_copy(update={"name": name, "output_dir": output,
                                       "trainer": config.trainer.model_copy(update=trainer)})
    workflow, metric = build_workflow(config.workflow)
    started = time.monotonic()
    result = run_lifecycle(config, workflow, load_splits(config), local_runner(config, workflow, metric, server))
    return result, time.monotonic() - started


def test_with_demos_in_system_prompt(server: LocalModelServer, output: str, demos: str) -> float:
    """The same demos as free text at the end of the instruction: what the system prompt alone does."""
    config = load_config(str(CONFIG))
    workflow, metric = build_workflow(config.workflow)
    workflow.instruction.value += "\n\n" + demos
    test = load_splits(config).test
    with role_clients(config.role_models(), Path(output) / "system-demos.sqlite", server) as clients:
        return asyncio.run(evaluate(workflow, test, clients, metric)).score


def row(label: str, results: list[tuple[RunResult, float]]) -> list[object]:
    def spread(values: list[float]) -> str:
        mean = statistics.mean(values)
        return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"

    gains = [100 * (r.test_after - r.test_before) for r, _ in results]
    return [label, len(results), spread([r.initial_val for r, _ in results]), spread([r.best_val for r, _ in results]),
            spread([r.test_before for r, _ in results]), spread([r.test_after for r, _ in results]),
            f"{statistics.mean(gains):+.1f} ({min(gains):+.0f} to {max(gains):+.0f})",
            results[0][0].test_size, f"{statistics.mean(s for _, s in results):.0f}",
            f"{statistics.mean(sum(u.calls for u in r.usage.values()) for r, _ in results):.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with LocalModelServer() as server, tempfile.TemporaryDirectory() as output:
        demo = [run(server, output, f"demo-{seed}", seed=seed) for seed in args.seeds]
        every = [run(server, output, f"all-{seed}", seed=seed, parameters=None) for seed in args.seeds]
        unlabeled = [run(server, output, "unlabeled", seed=args.seeds[0], labeled_demos=False)]
        first = demo[0][0]
        in_system = test_with_demos_in_system_prompt(server, output, first.values["demos"])
    rows = [row("the demo: demos trained (labeled + bootstrapped), shown as chat turns", demo),
            row("every parameter trained (the local model also writes gradients and proposals)", every),
            row("ablation: labeled demos off (bootstrapped only)", unlabeled)]
    write_table("demo_task", "`make demo`: ItemKind on the embedded SmolLM2-135M (exact match)",
                ["run", "seeds", "validation before", "validation after", "test before", "test after",
                 "test gain, points (range)", "test samples", "wall s", "LLM calls"], rows,
                notes=f"""Seeds {', '.join(map(str, args.seeds))} (trainer.seed: minibatch order, demo draws); mean
(min-max).
Data: raygrad/configs/item_kind_local.yaml (train 40, validation 40, test 100 of the seeded generator).
The first seed's accepted demos, shown inside the system prompt instead of as chat turns: test
{in_system:.3f} (as turns: {first.test_after:.3f}).
Run in one process against one llama.cpp server on 2 cores (`make demo` runs the same config on Ray).
    python benchmarks/demo_task.py --seeds {' '.join(map(str, args.seeds))}""")


if __name__ == "__main__":
    main()
