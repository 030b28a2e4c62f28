"""One run's wall time with its steps and candidates at once: quality, calls and wall time against one at a time.

The built-in tasks as `switches.py` runs them (weak prompts, 12 steps, batch 4, 5 proposals), on the
simulated provider over HTTP with no rate limit and a fixed latency per call, so wall time is round
trips. Settings: `parallel_candidates` (candidates whose stage 1 runs at once, decided in order, the first
to pass accepted), `parallel_steps` (steps run at once, each with its own minibatch) and, with
`parents: pareto`, each of those steps built on its own pool member (GEPA's parallel proposals from
several parents). Mean over trainer seeds, with the range; calls counted at the server (test scoring
left out).

    python benchmarks/parallel_search.py [--seeds 0 1 2 3 4] [--latency 0.1]
"""
from __future__ import annotations

import argparse
import logging
import statistics

from common import spread, write_table
from switches import TASKS, run

from raygrad.optim.state import TrainState

SETTINGS = {"one at a time (default)": {},
            "parallel_candidates: 5": {"parallel_candidates": 5},
            "parallel_steps: 2, parallel_candidates: 5": {"parallel_steps": 2, "parallel_candidates": 5},
            "parallel_steps: 3, parallel_candidates: 10": {"parallel_steps": 3, "parallel_candidates": 10},
            "parents: pareto": {"parents": "pareto"},
            "parents: pareto, parallel_steps: 3, parallel_candidates: 10": {"parents": "pareto", "parallel_steps": 3,
                                                                          "parallel_candidates": 10}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server takes to answer a call")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="the rows to run (the first is what the others are compared with)")
    parser.add_argument("--output", default="parallel_search")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    settings = {name: SETTINGS[name] for name in args.settings}
    rows, ratios = [], {name: ([], [], []) for name in settings}
    for label in args.tasks:
        task, responder = TASKS[label]
        base = None
        for name, setting in settings.items():
            states: list[TrainState] = []
            runs = [run(task, responder, setting, seed, args.latency, on_state=states.append) for seed in args.seeds]
            by_role = " / ".join(f"{statistics.mean(s.usage[role].calls for s in states):.0f}"
                                 for role in ("task", "backward", "optimizer"))
            tests, calls, walls = ([r[i] for r in runs] for i in (2, 3, 4))
            base = base or (statistics.mean(tests), statistics.mean(calls), statistics.mean(walls))
            wall_ratio, call_ratio = statistics.mean(walls) / base[2], statistics.mean(calls) / base[1]
            ratios[name][0].append(wall_ratio)
            ratios[name][1].append(call_ratio)
            ratios[name][2].append(statistics.mean(tests) - base[0])
            rows.append([label, name, spread([best - initial for initial, best, *_ in runs], 3), spread(tests, 3),
                         spread(calls, 0), by_role, spread(walls, 1), f"{wall_ratio:.2f}", f"{call_ratio:.2f}"])
            print(rows[-1], flush=True)
    summary = "\n".join(f"- {name}: wall {statistics.mean(w):.2f}x, calls {statistics.mean(c):.2f}x, test "
                        f"{statistics.mean(t):+.3f} (means over the tasks of the ratios to the first row)"
                        for name, (w, c, t) in ratios.items())
    options = "" if args.settings == list(SETTINGS) else " --settings " + " ".join(f"'{n}'" for n in args.settings)
    options += "" if args.output == "parallel_search" else f" --output {args.output}"
    write_table(args.output, f"One run's steps and candidates at once (12 steps, batch 4, 5 proposals; "
                                   f"{args.latency} s a call, no rate limit; seeds {args.seeds})",
                ["task", "trainer setting", "validation gain", "test after", "calls", "task / backward / optimizer",
                 "wall s", "wall / default", "calls / default"], rows,
                notes=f"""Mean (range) over the seeds, one run each on the simulated provider over HTTP; calls counted
at the server (all roles, test scoring left out), and per role by the trainer's clients (where the calls
go: the task model's forward passes and validations, the backward engine's gradients, the optimizer's
proposals). Goal: a third of the default's wall time for at
most 1.2x its calls and no lower test score.

{summary}

    python benchmarks/parallel_search.py --seeds {' '.join(map(str, args.seeds))} --latency {args.latency}{options}""")


if __name__ == "__main__":
    main()
