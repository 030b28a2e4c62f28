"""Each trainer switch against the default, on the built-in tasks: quality and calls.

The tasks as their local configs ship them (data and splits), from weak prompts ("Answer.",
"Reply."), optimized for 12 steps, batch 4, 5 proposals, on the simulated provider that does not
know the answer (raygrad.tasks.simulated: each question hides a cause of failure that only the
feedback on its error samples can name), served over HTTP on loopback. Calls are counted at the
server, all roles, the test scoring left out. ObjectCount has one call with two text parameters;
TREC one call with an instruction, demos and an output format; multi-hop QA two calls (a query
instruction used once per hop, then an answer instruction and format); the ReAct agent a loop of
tool calls. The conflicting-fixes task is ObjectCount under raygrad.tasks.conflicts' rules (the fix
named most often conflicts with two others, which together fix more), validated on 50 questions and
tested on 100. Mean over trainer seeds.

    python benchmarks/switches.py [--seeds 0 1 2 3 4 5]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Callable

from common import write_table

from raygrad.llm.endpoints import role_clients
from raygrad.optim.evaluate import evaluate
from raygrad.optim.state import TrainState
from raygrad.optim.trainer import Trainer
from raygrad.runs.assemble import build_workflow, load_split
from raygrad.runs.config import RunConfig
from raygrad.testing import ServerSettings, SimulatedServer
from raygrad.testing.weak_prompts import weak_prompt_config

TASKS = {"ObjectCount": ("objectcount", "object_count_trainer"), "TREC": ("trec", "trec_trainer"),
         "multi-hop QA": ("multihop", "multihop_trainer"), "ReAct agent": ("agent", "react_agent_trainer"),
         "conflicting fixes": ("conflicts", "conflicts_trainer")}
SWITCHES = {"default": {}, "early_rejection: false": {"early_rejection": False},
            "candidates: per_parameter": {"candidates": "per_parameter"},
            "error_pool: 0": {"error_pool": 0},
            "candidates: per_parameter, error_pool: 0 (the paper's loop)": {"candidates": "per_parameter",
                                                                             "error_pool": 0},
            "stage2_per_parameter: 1": {"stage2_per_parameter": 1},
            "batches_until_error: 4": {"batches_until_error": 4},
            "parallel_candidates: 5": {"parallel_candidates": 5},
            "early_acceptance: 0.95": {"early_acceptance": 0.95},
            "stage1: false": {"stage1": False},
            "stage1: false, batches_until_error: 4": {"stage1": False, "batches_until_error": 4},
            "parents: pareto": {"parents": "pareto"},
            "parents: pareto, merges: 5": {"parents": "pareto", "merges": 5},
            "parents: pareto, candidates: per_parameter": {"parents": "pareto", "candidates": "per_parameter"},
            "parents: pareto, candidates: per_parameter, merges: 5": {"parents": "pareto", "merges": 5,
                                                                     "candidates": "per_parameter"},
            "min_gain: 0.03": {"min_gain": 0.03}, "min_gain: 0.05": {"min_gain": 0.05}}


def run(task: str, responder: str, switches: dict, seed: int, latency_s: float = 0.0,
        on_state: Callable[[TrainState], None] | None = None) -> tuple[float, float, float, int, float]:
    """(initial validation, best validation, test after, calls, wall s of the optimization) of one run;
    `on_state` is given the trainer's final state."""
    raw = weak_prompt_config(task)
    served = ServerSettings(responder=responder, latency_s=latency_s)
    with SimulatedServer(served) as server, tempfile.TemporaryDirectory() as folder:
        raw.update(output_dir=folder, models={role: {"model": "openai/simulated", "api_base": server.url}
                                              for role in ("task", "backward", "optimizer")})
        config = RunConfig.model_validate(raw)
        workflow, metric = build_workflow(config.workflow)
        train, val, test = (load_split(config.data, split) for split in ("train", "val", "test"))

        async def fit() -> tuple[float, float, float, int, float]:
            with role_clients(config.role_models(), config.journal_path) as clients:
                settings = config.trainer.model_copy(update={"steps": 12, "batch_size": 4, "proposals": 5,
                                                             "seed": seed, **switches})
                started = time.monotonic()
                state = await Trainer(workflow, metric, clients, settings).fit(train, val)
                wall_s, calls = time.monotonic() - started, len(server.log)
                # With early acceptance the trainer's best validation is an estimate: score the prompt on it all.
                best = (await evaluate(workflow, val, clients["task"], metric)).score
                assert state.best_val_samples is not None or abs(best - state.best_val) < 1e-9
                after = (await evaluate(workflow, test, clients["task"], metric)).score
                if on_state is not None:
                    on_state(state)
                return state.initial_val, best, after, calls, wall_s

        return asyncio.run(fit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--switches", nargs="+", default=list(SWITCHES), choices=list(SWITCHES),
                        help="the settings to run (the first is the baseline of 'calls / default')")
    parser.add_argument("--output", default="switches", help="the results file's name (a subset of the switches "
                                                               "writes its own file beside the whole table)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    for label in args.tasks:
        task, responder = TASKS[label]
        baseline = None
        for name in args.switches:
            switches = SWITCHES[name]
            runs = [run(task, responder, switches, seed) for seed in args.seeds]
            gain = statistics.mean(best - initial for initial, best, *_ in runs)
            test = statistics.mean(after for _, _, after, *_ in runs)
            calls = statistics.mean(c for *_, c, _ in runs)
            baseline = baseline or calls
            rows.append([label, name, f"{gain:+.3f}", f"{test:.3f}", f"{calls:.0f}", f"{calls / baseline:.2f}"])
            print(rows[-1], flush=True)
    named = " ".join(f'"{name}"' for name in args.switches)
    subset = "" if args.switches == list(SWITCHES) else f" --switches {named} --output {args.output}"
    write_table(args.output, f"Trainer switches on the built-in tasks (12 steps, batch 4, 5 proposals; "
                            f"seeds {args.seeds})",
                ["task", "trainer setting", "validation gain", "test after", "calls", "calls / default"], rows,
                notes=f"""Mean over the seeds, one run each on the simulated provider over HTTP; calls counted at the
server (all roles, test scoring left out). Validation and test are the tasks' own small splits.

    python benchmarks/switches.py --seeds {' '.join(map(str, args.seeds))}{subset}""")


if __name__ == "__main__":
    main()
