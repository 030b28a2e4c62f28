"""One provider budget shared by 1 and by 4 Ray workers: time against the paced limit, refusals.

The simulated server (its own process) allows 600 requests/minute, enforced as at most 60 in any
6 s window, with 0.5 s latency and OpenAI's rate-limit headers (the minute's figures only). Workers
lease send times from one RateBudget actor. Paced at 600/minute, N samples need (N-1)/10 + 0.5 s
from the first request to the last reply (300.4 s for 3,000): the ratio is taken over that span,
read off the server's log; wall time also counts starting the actors and importing litellm.

    python benchmarks/ray_budget.py [--samples 3000] [--workers 1 4]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from common import max_in_window, server_log, simulated_server, write_table

from raygrad.distributed.runtime import connect, distributed_run
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig

RPM, WINDOW, LATENCY = 600, 6.0, 0.5


def run(samples: int, workers: int, output: str, responder: str = "object_count") -> list[object]:
    """One row of the table: the samples evaluated by `workers` Ray workers under one budget."""
    with simulated_server(rpm=RPM, window_s=WINDOW, latency_s=LATENCY, responder=responder) as url:
        model = {"model": "openai/simulated", "api_base": url, "rpm": RPM, "max_in_flight": 256}
        config = RunConfig.model_validate({
            "name": f"budget-{workers}", "output_dir": output, "workflow": {"name": "object_count"},
            "data": {"generator": {"size": samples, "seed": 1}, "splits": {"val": f"0:{samples}"}},
            "models": {"task": model},
            "trainer": {"validation_chunk": max(1, samples // (4 * workers))},
            "runtime": {"workers": workers, "cpus_per_worker": 0.25, "shards_per_worker": 4}})
        with distributed_run(config) as ray_run:
            started = time.monotonic()
            result = ray_run.evaluate({}, load_split(config.data, "val"))
            wall = time.monotonic() - started
        log = server_log(url)
    span, paced, refused, most = budget_use(log, samples)
    return [workers, samples, f"{wall:.1f}", f"{span:.1f}", f"{paced:.1f}", f"{span / paced:.3f}", refused,
            result.failed, most]


def budget_use(log: list[dict], samples: int) -> tuple[float, float, str, str]:
    """From a server log: first request to last reply, the paced limit for `samples`, refusals, busiest window."""
    refused = sum(1 for e in log if e["status"] == 429)
    accepted = [e["time"] for e in log if e["status"] != 429]
    span = max(accepted) + LATENCY - min(e["time"] for e in log)
    paced = (samples - 1) * 60 / RPM + LATENCY
    return (span, paced, f"{refused} ({100 * refused / max(len(log), 1):.1f}%)",
            f"{max_in_window(accepted, WINDOW)} / {int(RPM * WINDOW / 60)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    connect()
    with tempfile.TemporaryDirectory() as output:
        rows = [run(args.samples, n, output) for n in args.workers]
    write_table("ray_budget", "One 600 RPM budget (60 per 6 s, 0.5 s latency) shared by Ray workers",
                ["workers", "samples", "wall s", "first request to last reply s", "paced limit s", "ratio",
                 "refused (429)", "failed samples",
                 "most in any 6 s window / allowed"], rows,
                notes="Counts are read off the simulated server's request log; one run, same machine. Goal: "
                      "ratio <= 1.02 with <= 1% refused, on 1 and on 4 workers.")


if __name__ == "__main__":
    main()
