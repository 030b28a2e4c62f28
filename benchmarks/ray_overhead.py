"""Ray's overhead: raygrad's samples/s against a plain asyncio loop calling the same server.

The simulated server (its own process) answers at once and has no budget, so the client side is
all there is to measure. The plain loop sends the same chat completions through litellm with the
same number in flight; raygrad runs them as a sharded validation on its ForwardWorker actors.

    python benchmarks/ray_overhead.py [--samples 5000] [--workers 2]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from common import simulated_server, write_table

from raygrad.distributed.runtime import connect, distributed_run
from raygrad.llm import import_litellm
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig
from raygrad.tasks import ObjectCount

IN_FLIGHT = 64


async def plain_loop(url: str, questions: list[str]) -> float:
    litellm = import_litellm()
    gate = asyncio.Semaphore(IN_FLIGHT)
    workflow = ObjectCount()

    def messages(inputs: dict) -> list[dict]:
        return workflow.answer.messages(inputs, workflow.state())

    async def one(question: str) -> None:
        async with gate:
            await litellm.acompletion(model="openai/simulated", api_base=url, api_key="none", temperature=0.0,
                                      messages=messages({"question": question}))

    started = time.monotonic()
    await asyncio.gather(*(one(q) for q in questions))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    connect()
    with simulated_server(latency_s=0.0, responder="object_count") as url, tempfile.TemporaryDirectory() as output:
        config = RunConfig.model_validate({
            "name": "overhead", "output_dir": output, "workflow": {"name": "object_count"},
            "data": {"generator": {"size": args.samples, "seed": 2}, "splits": {"val": f"0:{args.samples}"}},
            "models": {"task": {"model": "openai/simulated", "api_base": url, "max_in_flight": IN_FLIGHT // args.workers}},
            "trainer": {"validation_chunk": 250},
            "runtime": {"workers": args.workers, "cpus_per_worker": 0.5, "shards_per_worker": 2}})
        examples = load_split(config.data, "val")
        plain = asyncio.run(plain_loop(url, [ex.input for ex in examples]))
        with distributed_run(config) as run:
            started = time.monotonic()
            result = run.evaluate({}, examples)
            ours = time.monotonic() - started
    rows = [["plain asyncio loop (litellm, 1 process)", args.samples, f"{plain:.1f}", f"{args.samples / plain:.0f}", "1.00"],
            [f"raygrad on Ray ({args.workers} workers)", result.evaluated, f"{ours:.1f}", f"{args.samples / ours:.0f}",
             f"{plain / ours:.2f}"]]
    write_table("ray_overhead", f"Samples/s at zero latency, no budget ({args.samples} samples, {IN_FLIGHT} in flight)",
                ["runner", "samples", "wall s", "samples/s", "relative"], rows,
                notes="One run on this 2-core machine (the server shares it). Goal: raygrad at least 0.8 of the "
                      "plain loop. raygrad's numbers include its journal writes and per-sample scoring.")


if __name__ == "__main__":
    main()
