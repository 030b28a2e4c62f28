"""Re-run every benchmark the README quotes, each as the README runs it, and rewrite its results files.

Each script writes its tables to benchmarks/results/ naming the commit it ran on; this one runs them in
turn in their own processes (a failure does not stop the rest) and writes run_all.md: each benchmark's
exit status, its minutes, and the results files it rewrote. Some need more than `make install`:
the peers need `pip install -e ".[bench]"`, the embedded model's need its weights (downloaded once).

    cd benchmarks && python run_all.py [--only switches parents] [--skip peers_cost] [--list]

All of them take several hours on 2 cores; run them on a quiet machine, since the wall-time ratios they
quote are measured within one run.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, measured_on, write_table

SEEDS = ["--seeds", "0", "1", "2", "3", "4"]
# name -> (script, arguments, what it needs beyond `make install`)
BENCHMARKS: dict[str, tuple[str, list[str], str]] = {
    "rate_limit": ("rate_limit.py", [], ""),
    "ray_budget": ("ray_budget.py", [], ""),
    "ray_overhead": ("ray_overhead.py", [], ""),
    "ray_scale": ("ray_scale.py", ["--rows", "10000", "100000"], ""),
    "blocking_function": ("blocking_function.py", [], ""),
    "early_rejection": ("early_rejection.py", [], ""),
    "early_acceptance": ("early_acceptance.py", ["--val", "400", "1000", *SEEDS], ""),
    "gradient_ablation": ("gradient_ablation.py", [*SEEDS, "--steps", "4"], ""),
    "simulator_ceiling": ("simulator_ceiling.py", ["--prompts", "200"], ""),
    "simulator_ceiling_val200": ("simulator_ceiling.py", ["--prompts", "200", "--val", "200"], ""),
    "switches": ("switches.py", ["--seeds", "0", "1", "2", "3", "4", "5", "6", "7"], ""),
    "parents": ("parents.py", [*SEEDS, "5"], ""),
    "parallel_search": ("parallel_search.py", [*SEEDS, "--latency", "0.1"], ""),
    "sweep_utilization": ("sweep_utilization.py", ["--runs", "8"], ""),
    "sweep_utilization_4runs": ("sweep_utilization.py", ["--runs", "4", "--only", "0", "--output",
                                                         "sweep_utilization_4runs"], ""),
    "sweep_load_3000rpm": ("sweep_load.py", ["--runs", "16", "--val", "1000", "--rpm", "3000"], ""),
    "sweep_load_12000rpm": ("sweep_load.py", ["--runs", "16", "--val", "1000", "--rpm", "12000"], ""),
    "role_models": ("role_models.py", [], ""),
    "peers_throughput": ("peers_throughput.py", [], "bench extras"),
    "peers_cost": ("peers_cost.py", ["--seeds", *map(str, range(10))], "bench extras"),
    "peers_cost_val200": ("peers_cost.py", ["--seeds", *map(str, range(10)), "--val", "200", "--only", "raygrad",
                                            "raygrad, stage 1 off", "raygrad, early acceptance at 0.95", "AdalFlow",
                                            "AdalFlow, again"], "bench extras"),
    "peers_budget": ("peers_budget.py", [*SEEDS, "--peers", "gepa", "mipro", "adalflow"], "bench extras"),
    "peers_budget_gepa_package": ("peers_budget.py", [*SEEDS, "--peers", "gepa-package", "--output",
                                                      "peers_budget_gepa_package"], "bench extras"),
    "peers_budget_settings": ("peers_budget.py", [*SEEDS, "--peers", "--raygrad", '{"patience": null}',
                                                  '{"min_gain": 0.05}', "--output", "peers_budget_settings"],
                              "bench extras"),
    "peers_budget_patience": ("peers_budget.py", [*SEEDS, "--budgets", "250", "500", "1000", "--peers", "--raygrad",
                                                  '{"patience": 6}', '{"patience": 12}', "--output",
                                                  "peers_budget_patience"], "bench extras"),
    "peers_budget_roles": ("peers_budget.py", [*SEEDS, "--budgets", "250", "500", "--peers", "gepa-package",
                                               "--output", "peers_budget_roles"], "bench extras"),
    "peers_budget_proposals": ("peers_budget.py", [*SEEDS, "--peers", "--raygrad", '{"proposals": 3}',
                                                   '{"proposals": 2}', "--output", "peers_budget_proposals"],
                               "bench extras"),
    "local_model": ("local_model.py", [], "the embedded model"),
    "demo_task": ("demo_task.py", ["--seeds", "0", "1", "2"], "the embedded model"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[])
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args()
    chosen = [name for name in args.only if name not in args.skip]
    here = Path(__file__).parent
    if args.list:
        for name in chosen:
            script, arguments, needs = BENCHMARKS[name]
            print(shlex.join(["python", script, *arguments]) + (f"    # needs {needs}" if needs else ""))
        return
    rows = []
    for name in chosen:
        script, arguments, needs = BENCHMARKS[name]
        before = {path: path.stat().st_mtime for path in RESULTS.glob("*.md")}
        started = time.monotonic()
        command = shlex.join(["python", script, *arguments])
        print(f"== {name}: {command}", flush=True)
        status = subprocess.call([sys.executable, script, *arguments], cwd=here)
        written = sorted(path.name for path in RESULTS.glob("*.md")
                         if path.name != "run_all.md" and before.get(path) != path.stat().st_mtime)
        rows.append([name, command, needs or "-",
                     "ok" if status == 0 else f"exit {status}", f"{(time.monotonic() - started) / 60:.1f}",
                     ", ".join(written) or "-"])
    write_table("run_all", f"Benchmarks re-run on commit {measured_on()}",
                ["benchmark", "command (in benchmarks/)", "needs", "status", "minutes", "results rewritten"], rows,
                notes="    cd benchmarks && python run_all.py" + (f" --only {' '.join(chosen)}"
                                                                 if chosen != list(BENCHMARKS) else ""))
    if any(row[3] != "ok" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
