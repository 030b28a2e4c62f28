"""16 runs at once on this machine, each validating on 1,000 samples, on one shared rate budget.

A sweep of `--runs` runs (the same task, one trainer seed each), all at once, against the simulated
server (its own process; `--latency` s per answer), which enforces `--rpm` requests per minute as
rpm/10 per 6 s window and writes OpenAI's rate-limit headers. Reported per run:
samples lost (validation samples that were neither scored nor failed, or failed), the peak memory
of its optimizer and of its largest worker, and its share of the calls made while every run was at
work (a fair share is 1/runs; Jain's index over the runs is 1.0 when the shares are equal).

    python benchmarks/sweep_load.py [--runs 16] [--val 1000] [--rpm 12000]
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from common import server_requests, simulated_server, write_table

from raygrad.distributed.runtime import connect
from raygrad.distributed.sweep import run_sweep
from raygrad.runs.sweep_plan import load_sweep


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if any(values) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=12000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    connect()
    with simulated_server(latency_s=args.latency, responder="object_count_trainer", rpm=args.rpm, window_s=6) as url, \
            tempfile.TemporaryDirectory() as folder:
        model = {"model": "openai/simulated", "api_base": url, "rpm": args.rpm, "max_in_flight": 16}
        sweep = {
            "name": "load", "output_dir": folder, "concurrency": args.runs,
            "base": {"workflow": {"name": "object_count", "instruction": "Answer.", "output_format": "Reply."},
                     "data": {"generator": {"size": 40 + args.val, "seed": 5},
                              "splits": {"train": "0:40", "val": f"40:{40 + args.val}"}},
                     "models": {"task": model, "backward": model, "optimizer": model},
                     "trainer": {"steps": 1, "batch_size": 4, "proposals": 1, "validation_chunk": 100},
                     "runtime": {"workers": 1, "cpus_per_worker": 0.01}},
            "runs": [{"name": "r"}], "grid": {"trainer.seed": list(range(args.runs))}}
        path = Path(folder) / "sweep.yaml"
        path.write_text(yaml.safe_dump(sweep))
        started = time.monotonic()
        outcomes = run_sweep(*load_sweep(path), io.StringIO(), interval_s=3600)
        wall = time.monotonic() - started
        requests, refused = server_requests(url)
        rows, windows, calls = [], [], {}
        for outcome in outcomes:
            run_dir = Path(folder) / "load" / outcome.name
            initial = pq.read_table(run_dir / "samples" / "val-initial.parquet").to_pylist()
            lost = args.val - sum(1 for s in initial if s["score"] is not None)
            result = json.loads((run_dir / "result.json").read_text()) if outcome.status == "finished" else {}
            peaks = (result.get("ray") or {}).get("peak_rss_mb", {})
            times = sorted(pq.read_table(run_dir / "calls.parquet", columns=["created_at"]).column(0).to_pylist())
            windows.append((times[0], times[-1]))
            calls[outcome.name] = times
            rows.append([outcome.name, outcome.status, len(initial), lost, len(times),
                         f"{peaks.get('optimizer', 0):.0f}",
                         f"{max((v for k, v in peaks.items() if k != 'optimizer'), default=0):.0f}"])
        start, end = max(w[0] for w in windows), min(w[1] for w in windows)
        shares = {name: sum(start <= t <= end for t in times) for name, times in calls.items()}
        total = sum(shares.values()) or 1
        for row in rows:
            row.append(f"{shares[row[0]] / total:.3f}")
    fairness = jain(list(shares.values()))
    memory = [float(r[5]) for r in rows] + [float(r[6]) for r in rows]
    write_table(f"sweep_load_{args.rpm}rpm", f"{args.runs} runs at once, {args.val} validation samples each, one {args.rpm} rpm "
                              "budget (simulated server)",
                ["run", "status", "validation samples scored or failed", "lost", "calls", "optimizer peak MB",
                 "largest worker peak MB", "share of calls while all ran"], rows,
                notes=f"""{len(outcomes)} runs in {wall:.0f} s; {requests} requests at the server, {refused} refused (429); samples lost in all:
{sum(r[3] for r in rows)}.
Peak resident memory per actor (ru_maxrss): max {max(memory):.0f} MB, median {statistics.median(memory):.0f} MB.
While all {args.runs} ran ({end - start:.0f} s), each run's share of the calls: fair is {1 / args.runs:.3f};
Jain's fairness index {fairness:.3f} (1.0 = equal shares).
    python benchmarks/sweep_load.py --runs {args.runs} --val {args.val} --rpm {args.rpm}""")


if __name__ == "__main__":
    main()
