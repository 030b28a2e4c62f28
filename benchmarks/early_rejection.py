"""Early rejection: calls saved against scoring every candidate on every sample of both stages.

Stage 1 runs the minibatch's error samples first and stops a candidate that fixed none of them; stage
2 stops once the remaining validation samples could not lift a candidate above the best.

The same optimization (same seed, the simulated server's deterministic task, backward and optimizer)
runs twice on Ray, with trainer.early_rejection on and off, each against a fresh server so its log
counts that run's calls alone. Decisions must be identical; only the calls differ.

    python benchmarks/early_rejection.py [--val 400] [--steps 16]
"""
from __future__ import annotations

import argparse
import tempfile

from common import server_log, simulated_server, write_table

from raygrad.distributed.runtime import connect, distributed_run
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig


def run(early: bool, val_size: int, steps: int, output: str) -> tuple[object, int, dict]:
    with simulated_server(latency_s=0.0, responder="object_count_trainer") as url:
        model = {"model": "openai/simulated", "api_base": url, "max_in_flight": 32}
        config = RunConfig.model_validate({
            "name": f"early-{early}", "output_dir": output,
            "workflow": {"name": "object_count", "instruction": "Answer.", "output_format": "Reply."},
            "data": {"generator": {"size": 100 + val_size, "seed": 3},
                     "splits": {"train": "0:100", "val": f"100:{100 + val_size}"}},
            "models": {"task": model, "backward": model, "optimizer": model},
            # Every step runs (no patience): what is compared is the calls of the same steps, with and without.
            "trainer": {"steps": steps, "batch_size": 4, "proposals": 5, "seed": 7, "validation_chunk": 20,
                        "early_rejection": early, "patience": None},
            "runtime": {"workers": 2, "cpus_per_worker": 0.5}})
        with distributed_run(config) as ray_run:
            state = ray_run.fit(load_split(config.data, "train"), load_split(config.data, "val"))
            stats = ray_run.stats()
        return state, len(server_log(url)), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=int, default=400)
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    connect()
    with tempfile.TemporaryDirectory() as output:
        (fast, fast_calls, stats), (full, full_calls, _) = (run(e, args.val, args.steps, output) for e in (True, False))
    assert fast.values == full.values, "early rejection changed a decision"
    stage2 = [c for c in fast.candidates if c.stage2 is not None]
    cut = sum(c.reason.startswith("stage 1: at most") for c in fast.candidates)
    stopped = sum(c.reason.startswith("stage 2: cannot beat") for c in fast.candidates)
    again = [sum(c.reason.startswith("stage 2 before") for c in state.candidates) for state in (full, fast)]
    rows = [["every candidate on every sample", full_calls, "-", len(full.candidates), 0, len(stage2), 0, again[0],
             f"{full.best_val:.3f}"],
            ["early rejection (default)", fast_calls, f"{full_calls - fast_calls} ({100 * (full_calls - fast_calls) / full_calls:.0f}%)",
             len(fast.candidates), cut, len(stage2), f"{stopped} ({stats['cancelled_shards']} shards cancelled in flight)",
             again[1], f"{fast.best_val:.3f}"]]
    write_table("early_rejection", f"Early rejection on Ray ({args.steps} steps, batch 4, 5 proposals, "
                                   f"{args.val} validation samples)",
                ["scoring", "LLM calls (server log)", "calls saved", "candidates", "stopped early in stage 1",
                 "candidates in stage 2", "stopped early in stage 2", "proposed again (not validated twice)",
                 "best validation"], rows,
                notes="Same seed and deterministic simulated provider; identical accepted prompts in both runs. "
                      "Calls are counted at the server and include task, backward and optimizer calls.")


if __name__ == "__main__":
    main()
