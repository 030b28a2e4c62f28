"""Parent selection and merge (GEPA's ideas) against the default, on the built-in tasks and the
conflicting-fixes task: quality, calls, and what each strategy did.

The runs of switches.py (12 steps, batch 4, 5 proposals, from weak prompts, on the simulated provider
over HTTP; calls counted at the server, test scoring left out), with trainer.parents best (the
default) or pareto, joint or per-parameter candidates, and merges off or up to 5. Per strategy: the
steps that built on a pool member other than the best values, the pool's final size, and merges tried
and accepted.

    python benchmarks/parents.py [--seeds 0 1 2 3 4 5]
"""
from __future__ import annotations

import argparse
import logging
import statistics

from common import spread, write_table
from switches import TASKS, run

from raygrad.optim.state import TrainState

STRATEGIES = {
    "best (default)": {},
    "pareto": {"parents": "pareto"},
    "pareto, merges: 5": {"parents": "pareto", "merges": 5},
    "per_parameter": {"candidates": "per_parameter"},
    "per_parameter, pareto": {"candidates": "per_parameter", "parents": "pareto"},
    "per_parameter, pareto, merges: 5": {"candidates": "per_parameter", "parents": "pareto", "merges": 5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows, gains = [], {name: [] for name in STRATEGIES}
    for label in args.tasks:
        task, responder = TASKS[label]
        base = None
        for name, setting in STRATEGIES.items():
            states: list[TrainState] = []
            runs = [run(task, responder, setting, seed, on_state=states.append) for seed in args.seeds]
            tests, calls = [r[2] for r in runs], [r[3] for r in runs]
            base = base or (statistics.mean(tests), statistics.mean(calls))
            gains[name].append((statistics.mean(tests) - base[0], statistics.mean(calls) / base[1]))
            merged = [[r for r in s.steps if r.merged] for s in states]
            rows.append([label, name, spread([best - initial for initial, best, *_ in runs], 3), spread(tests, 3),
                         f"{statistics.mean(calls):.0f}", f"{statistics.mean(calls) / base[1]:.2f}",
                         f"{statistics.mean(sum(r.parent is not None for r in s.steps) for s in states):.1f}",
                         f"{statistics.mean(len(s.pool) for s in states):.1f}" if setting.get("parents") else "-",
                         f"{sum(map(len, merged))} / {sum(r.accepted != [] for m in merged for r in m)}"
                         if setting.get("merges") else "-"])
            print(rows[-1], flush=True)
    summary = "\n".join(f"- {name}: test {statistics.mean(t for t, _ in g):+.3f}, calls "
                        f"{statistics.mean(c for _, c in g):.2f}x (means over the tasks, against the default)"
                        for name, g in gains.items())
    write_table("parents", f"Parent selection and merge on the simulated tasks (12 steps, batch 4, 5 proposals; "
                           f"seeds {args.seeds})",
                ["task", "strategy", "validation gain", "test after", "calls", "calls / default",
                 "steps from another parent", "pool size", "merges tried / accepted"], rows,
                notes=f"""Mean (range) over the seeds, one run each on the simulated provider over HTTP; calls counted
at the server (all roles, test scoring left out). "steps from another parent": steps per run that built
on a pool member other than the best values; merges summed over the seeds.

{summary}

    python benchmarks/parents.py --seeds {' '.join(map(str, args.seeds))}""")


if __name__ == "__main__":
    main()
