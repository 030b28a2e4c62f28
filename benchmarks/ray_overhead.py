"""Ray's overhead, like with like: raygrad on N workers against N plain processes calling the same server.

The simulated server (its own process) answers at once and has no budget, so the client side is
all there is to measure. A plain process sends the same chat completions through litellm from an
asyncio loop; N of them split the samples and start together once each has imported litellm (as
raygrad's workers have before its clock starts). raygrad runs the samples as a sharded validation
on N ForwardWorker actors with the same calls in flight in all. Both sides: N = 1, then N = 2.

    python benchmarks/ray_overhead.py [--samples 5000] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from typing import Any

from common import simulated_server, write_table

from raygrad.distributed.runtime import connect, distributed_run
from raygrad.llm import import_litellm
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig
from raygrad.tasks import ObjectCount
from raygrad.tasks.object_count import generate_object_counting

IN_FLIGHT = 64


async def plain_loop(url: str, questions: list[str], in_flight: int) -> None:
    litellm = import_litellm()
    gate = asyncio.Semaphore(in_flight)
    workflow = ObjectCount()

    def messages(inputs: dict) -> list[dict]:
        return workflow.answer.messages(inputs, workflow.state())

    async def one(question: str) -> None:
        async with gate:
            await litellm.acompletion(model="openai/simulated", api_base=url, api_key="none", temperature=0.0,
                                      messages=messages({"question": question}))

    await asyncio.gather(*(one(q) for q in questions))


def plain_process(url: str, questions: list[str], in_flight: int, start: Any, done: Any) -> None:
    import_litellm()
    start.wait()
    asyncio.run(plain_loop(url, questions, in_flight))
    done.put(time.monotonic())


def plain_processes(url: str, questions: list[str], processes: int) -> float:
    """Wall time of `processes` plain loops over an equal part of the questions each, started together."""
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    parts = [questions[i::processes] for i in range(processes)]
    running = [context.Process(target=plain_process, args=(url, part, IN_FLIGHT // processes, start, done))
               for part in parts]
    for process in running:
        process.start()
    time.sleep(15)  # every process has imported litellm
    started = time.monotonic()
    start.set()
    ended = max(done.get() for _ in running)
    for process in running:
        process.join()
    return ended - started


def raygrad_run(url: str, output: str, samples: int, workers: int) -> tuple[float, int]:
    config = RunConfig.model_validate({
        "name": f"overhead-{workers}", "output_dir": output, "workflow": {"name": "object_count"},
        "data": {"generator": {"size": samples, "seed": 2}, "splits": {"val": f"0:{samples}"}},
        "models": {"task": {"model": "openai/simulated", "api_base": url, "max_in_flight": IN_FLIGHT // workers}},
        "trainer": {"validation_chunk": 250},
        "runtime": {"workers": workers, "cpus_per_worker": 0.5, "shards_per_worker": 2}})
    examples = load_split(config.data, "val")
    with distributed_run(config) as run:
        started = time.monotonic()
        result = run.evaluate({}, examples)
        return time.monotonic() - started, result.evaluated


def one_process(url: str, output: str, samples: int) -> float:
    """raygrad's evaluation without Ray: the same client, journal, tracing and scoring in this process."""
    from raygrad.llm.client import LLMClient
    from raygrad.llm.journal import Journal
    from raygrad.optim.evaluate import evaluate
    from raygrad.optim.metrics import number_match
    from raygrad.runs.config import ModelConfig

    examples = load_split(RunConfig.model_validate({
        "name": "x", "output_dir": output, "workflow": {"name": "object_count"},
        "data": {"generator": {"size": samples, "seed": 2}, "splits": {"val": f"0:{samples}"}}}).data, "val")
    client = LLMClient(ModelConfig(model="openai/simulated", api_base=url, max_in_flight=IN_FLIGHT),
                       journal=Journal(f"{output}/one-process.sqlite"))
    started = time.monotonic()
    asyncio.run(evaluate(ObjectCount(), examples, client, number_match))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    connect()
    rows = []
    for n in args.workers:
        with simulated_server(latency_s=0.0, responder="object_count") as url, tempfile.TemporaryDirectory() as output:
            questions = [row["input"] for row in generate_object_counting(args.samples, seed=2)]
            plain = plain_processes(url, questions, n)
            ours, evaluated = raygrad_run(url, output, args.samples, n)
            alone = one_process(url, output, args.samples) if n == 1 else None
        rows.append([n, args.samples, f"{plain:.1f}", f"{args.samples / plain:.0f}", f"{ours:.1f}",
                     f"{evaluated / ours:.0f}", f"{plain / ours:.2f}",
                     f"{args.samples / alone:.0f} ({plain / alone:.2f})" if alone else "-"])
        print(rows[-1], flush=True)
    write_table("ray_overhead", f"Samples/s at zero latency, no budget ({args.samples} samples, {IN_FLIGHT} in flight)",
                ["processes = Ray workers", "samples", "plain processes wall s", "plain samples/s", "raygrad wall s",
                 "raygrad samples/s", "raygrad / plain", "raygrad without Ray, 1 process: samples/s (/ plain)"], rows,
                notes="One run on this 2-core machine (the server shares it). Goal: raygrad at least 0.8 of the "
                      "plain processes at each N. raygrad's numbers include its journal writes and per-sample "
                      "scoring; the plain processes only send the calls. Without Ray, raygrad's own evaluation (client, journal, "
                      "trace, metric) in one process: what of the gap is Ray's.")


if __name__ == "__main__":
    main()
