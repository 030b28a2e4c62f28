"""Large validation sets: what early acceptance saves and costs in quality, and what stage 1 saves.

Each accepted candidate pays for the whole validation set unless trainer.early_acceptance lets stage
2 stop once the candidate beats the best with that confidence; each rejected one pays at least for
the current prompt's misses, which stage 2 runs first, unless stage 1 (the minibatch) rejects it
before. The same optimization of ObjectCount's instruction and output format (12 steps, batch 4, 5
proposals) runs by default, with early acceptance at 0.95, and with stage 1 off, on the simulated
provider that does not know the answer (raygrad.tasks.simulated), for each validation size and
trainer seed. Calls are counted at the server (all roles, training only). An early acceptance
reports an estimated validation score, so each run's final prompt is also scored on the whole
validation set and on held-out test questions, uncounted.

    python benchmarks/early_acceptance.py [--val 400 1000] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import tempfile

from common import server_requests, simulated_server, write_table

from raygrad.llm.endpoints import role_clients
from raygrad.optim.evaluate import evaluate
from raygrad.optim.metrics import number_match
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.runs.config import ModelConfig, RunConfig
from raygrad.tasks import ObjectCount
from raygrad.testing import object_count_examples

SETTINGS = {"whole validation set (default)": {}, "early_acceptance: 0.95": {"early_acceptance": 0.95},
            "stage1: false": {"stage1": False}}
TRAIN, TEST = 100, 500


def run(val_size: int, seed: int, switches: dict) -> dict[str, float]:
    rows = object_count_examples(TRAIN + val_size + TEST, seed=11)
    train, val, test = rows[:TRAIN], rows[TRAIN:TRAIN + val_size], rows[TRAIN + val_size:]
    with simulated_server(latency_s=0.0, responder="object_count_trainer") as url, \
            tempfile.TemporaryDirectory() as folder:
        config = RunConfig(name="accept", output_dir=folder,
                           models={role: ModelConfig(model="openai/simulated", api_base=url)
                                   for role in ("task", "backward", "optimizer")})
        workflow = ObjectCount(instruction="Answer.", output_format="Reply.")

        async def fit() -> dict[str, float]:
            with role_clients(config.role_models(), config.journal_path) as clients:
                settings = TrainerConfig(steps=12, batch_size=4, proposals=5, seed=seed, **switches)
                state = await Trainer(workflow, number_match, clients, settings).fit(train, val)
                calls = server_requests(url)[0]
                whole = (await evaluate(workflow, val, clients["task"], number_match)).score
                after = (await evaluate(workflow, test, clients["task"], number_match)).score
            accepted = [c for c in state.candidates if c.accepted]
            ran = [int(m.group(1)) if (m := re.match(r"accepted after (\d+)/", c.reason)) else val_size
                   for c in accepted]
            return {"calls": calls, "reported": state.best_val, "whole": whole, "test": after,
                    "accepted": len(accepted), "early": sum(n < val_size for n in ran),
                    "share": statistics.mean(ran) / val_size if ran else 1.0}

        return asyncio.run(fit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=int, nargs="+", default=[400, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    for val_size in args.val:
        baseline = None
        for name, switches in SETTINGS.items():
            runs = [run(val_size, seed, switches) for seed in args.seeds]
            print(val_size, name, runs, flush=True)

            def mean(key: str, form: str) -> str:
                values = [r[key] for r in runs]
                low, high = form.format(min(values)), form.format(max(values))
                return form.format(statistics.mean(values)) + ("" if low == high else f" ({low}-{high})")

            calls = statistics.mean(r["calls"] for r in runs)
            baseline = baseline or calls
            rows.append([val_size, name, mean("calls", "{:.0f}"), f"{calls / baseline:.2f}", mean("reported", "{:.3f}"),
                         mean("whole", "{:.3f}"), mean("test", "{:.3f}"),
                         f"{sum(r['early'] for r in runs)} of {sum(r['accepted'] for r in runs)}",
                         mean("share", "{:.2f}")])
    write_table("early_acceptance", f"Early acceptance and stage 1 on large validation sets (ObjectCount, 12 steps, "
                                    f"batch 4, 5 proposals; seeds {args.seeds})",
                ["validation size", "trainer setting", "calls", "calls / default", "best validation reported",
                 "final prompt on the whole validation set", f"test ({TEST} held out)",
                 "acceptances early / all", "share of the validation set an acceptance ran"], rows,
                notes=f"""Mean (range) over the seeds; one run each on the simulated provider over HTTP, calls counted at
the server (all roles; the final scoring on validation and test left out). {TRAIN} training
questions; validation and test questions are generated apart from them.

    python benchmarks/early_acceptance.py --val {' '.join(map(str, args.val))} --seeds {' '.join(map(str, args.seeds))}""")


if __name__ == "__main__":
    main()
