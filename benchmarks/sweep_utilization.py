"""The overnight case: 8 optimization runs on one 600 rpm budget, at once and one after another.

The simulated server (its own process) allows 600 requests/minute enforced as 60 per 6 s, answers
in 0.5 s, writes OpenAI's rate-limit headers, and plays task model, backward engine and optimizer.
Eight runs (ObjectCount, one trainer seed each: forward passes, gradients, proposals, two-stage
validation) share the budget through one RateBudget actor. Budget utilization is the requests the
server accepted over what the budget allowed from the first request to the last reply:
calls / (10/s x span). One after another, each run's own utilization is also reported: that is
what a single run leaves of the budget while it waits on its backward and optimizer calls; a third
schedule runs them one after another with both steps of a run as one round and its candidates at once
(trainer.parallel_steps, trainer.parallel_candidates).

    python benchmarks/sweep_utilization.py [--runs 8]
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from common import server_log, simulated_server, write_table

from raygrad.distributed.runtime import connect
from raygrad.distributed.sweep import run_sweep
from raygrad.runs.sweep_plan import load_sweep

RPM, WINDOW, LATENCY = 600, 6.0, 0.5


def sweep(url: str, folder: str, runs: int, concurrency: int, trainer: dict) -> list:
    model = {"model": "openai/simulated", "api_base": url, "rpm": RPM, "max_in_flight": 32}
    plan = {
        "name": "overnight", "output_dir": folder, "concurrency": concurrency,
        "base": {"workflow": {"name": "object_count", "instruction": "Answer.", "output_format": "Reply."},
                 "data": {"generator": {"size": 100, "seed": 5}, "splits": {"train": "0:40", "val": "40:80"}},
                 "models": {"task": model, "backward": model, "optimizer": model},
                 "trainer": {"steps": 2, "batch_size": 6, "proposals": 2, "validation_chunk": 10, **trainer},
                 "runtime": {"workers": 1, "cpus_per_worker": 0.01}},
        "runs": [{"name": "r"}], "grid": {"trainer.seed": list(range(runs))}}
    path = Path(folder) / "sweep.yaml"
    path.write_text(yaml.safe_dump(plan))
    return run_sweep(*load_sweep(path), io.StringIO(), interval_s=3600)


def utilization(log: list[dict]) -> tuple[int, int, float, float]:
    """(accepted, refused, span s, accepted / (rate x span)) of a stretch of the server's log."""
    accepted = [e["time"] for e in log if e["status"] != 429]
    refused = sum(1 for e in log if e["status"] == 429)
    span = max(accepted) + LATENCY - min(e["time"] for e in log)
    return len(accepted), refused, span, len(accepted) / (RPM / 60 * span)


def schedules(runs: int) -> dict[str, tuple[int, dict]]:
    """Label -> (runs at once, trainer settings)."""
    return {f"{runs} runs at once": (runs, {}), f"{runs} runs one after another": (1, {}),
            f"{runs} runs one after another, parallel_steps 2, parallel_candidates 4":
                (1, {"parallel_steps": 2, "parallel_candidates": 4})}


def single_run(created: list[float]) -> float:
    """A run's utilization from its own call records (wall-clock times each call was made)."""
    return len(created) / (RPM / 60 * (max(created) - min(created) + LATENCY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--only", type=int, nargs="+", help="the schedules to run, by position (0: at once)")
    parser.add_argument("--output", default="sweep_utilization")
    args = parser.parse_args()
    connect()
    rows, singles, refused_at = [], {}, {}
    chosen = list(schedules(args.runs).items())
    chosen = [chosen[i] for i in args.only] if args.only else chosen
    for label, (concurrency, trainer) in chosen:
        with simulated_server(rpm=RPM, window_s=WINDOW, latency_s=LATENCY, responder="object_count_trainer") as url, \
                tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            outcomes = sweep(url, folder, args.runs, concurrency, trainer)
            wall = time.monotonic() - started
            log = server_log(url)
            runs_calls = [pq.read_table(Path(folder) / "overnight" / o.name
                                        / "calls.parquet",
                                        columns=["created_at"]).column(0).to_pylist() for o in outcomes]
        calls, refused, span, used = utilization(log)
        start = min(e["time"] for e in log)
        refused_at[label] = [e["time"] - start for e in log if e["status"] == 429]  # where the 429s fall
        finished = sum(o.status == "finished" for o in outcomes)
        rows.append([label, finished, calls, f"{refused} ({100 * refused / len(log):.1f}%)", f"{span:.0f}",
                     f"{wall:.0f}", f"{used:.3f}"])
        if concurrency == 1:  # each run alone: its own calls over its own first call to last reply
            singles[label] = [single_run(calls) for calls in runs_calls]
        print(rows[-1], flush=True)
    options = (f" --only {' '.join(map(str, args.only))}" if args.only else "") + \
        (f" --output {args.output}" if args.output != "sweep_utilization" else "")
    write_table(args.output, f"{args.runs} optimization runs on one {RPM} rpm budget "
                                     f"(60 per 6 s, {LATENCY} s latency)",
                ["schedule", "runs finished", "requests accepted", "refused (429)", "first request to last reply s",
                 "wall s", "budget utilization"], rows,
                notes=f"""Budget utilization = accepted requests / ({RPM / 60:.0f}/s x first request to last reply),
read off the simulated server's log. Goal: at least 0.9 with at most 1% refused, for the runs at once.
One run alone (one after another, each over its own first call to last reply, from its calls.parquet):
""" + "\n".join(f"- {label}: utilization mean {statistics.mean(u):.3f}, range {min(u):.3f} to {max(u):.3f}"
                for label, u in singles.items()) + """
Refused requests, seconds after the schedule's first request:
""" + "\n".join(f"- {label}: {', '.join(f'{t:.1f}' for t in times) or 'none'}" for label, times in refused_at.items())
                + f"""

    python benchmarks/sweep_utilization.py --runs {args.runs}{options}""")


if __name__ == "__main__":
    main()
