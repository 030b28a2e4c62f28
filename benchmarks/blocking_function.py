"""A blocking function in a workflow: 24 samples through a retriever that sleeps 0.25 s, written as a
plain (blocking) function, against the same retriever written async, and against the blocking one
run on the event loop (what raygrad did before: every sample waited on the one before).

Each sample makes one LLM call to the simulated provider (its own process, 20 ms latency), then the
retriever, then a second call. The goal: the blocking version at most 2x the async one.

    python benchmarks/blocking_function.py [--samples 24] [--sleep 0.25] [--repeats 3]
"""
from __future__ import annotations

import argparse
import asyncio
import time

from common import simulated_server, write_table

from raygrad.core.workflow import Function, LLMCall, Parameter, Workflow
from raygrad.data import Example
from raygrad.llm.client import LLMClient
from raygrad.llm.models import ModelConfig
from raygrad.optim.evaluate import evaluate


class OnTheLoop(Function):
    """The ablation: the function is called on the event loop, as raygrad called it before."""

    async def __call__(self, *args, **kwargs):
        from raygrad.core.workflow import current_run

        result = self.fn(*args, **kwargs)
        return current_run().trace.record("function", self.name, {"arg0": args[0]}, result)


class Retrieve(Workflow):
    def __init__(self, retriever: Function):
        self.query_instruction, self.answer_instruction = Parameter("Write a query."), Parameter("Answer.")
        self.query, self.answer = LLMCall(system=[self.query_instruction]), LLMCall(system=[self.answer_instruction])
        self.retrieve = retriever

    async def forward(self, question: str) -> str:
        passages = await self.retrieve(await self.query(question=question))
        return await self.answer(question=question, passages=passages)


def retrievers(sleep_s: float) -> dict[str, Function]:
    def blocking(query: str) -> list[str]:
        time.sleep(sleep_s)
        return [f"a passage about {query}"]

    async def awaiting(query: str) -> list[str]:
        await asyncio.sleep(sleep_s)
        return [f"a passage about {query}"]

    return {"async retriever": Function(awaiting, name="retrieve"),
            "blocking retriever (worker thread)": Function(blocking, name="retrieve"),
            "blocking retriever on the loop (before)": OnTheLoop(blocking, name="retrieve")}


async def timed(workflow: Workflow, examples: list[Example], url: str) -> float:
    client = LLMClient(ModelConfig(model="openai/simulated", api_base=url, temperature=0.5))  # no journal replay
    started = time.perf_counter()
    report = await evaluate(workflow, examples, client, "exact")
    assert report.completed == len(examples), report.samples[0].error
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--sleep", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    examples = [Example(id=str(i), input=f"question {i}", target="x") for i in range(args.samples)]
    times: dict[str, list[float]] = {}
    with simulated_server(latency_s=0.02) as url:
        for _ in range(args.repeats):  # interleaved, so load on the machine hits every variant alike
            for name, retriever in retrievers(args.sleep).items():
                times.setdefault(name, []).append(asyncio.run(timed(Retrieve(retriever), examples, url)))
    base = min(times["async retriever"])
    rows = [[name, f"{min(t):.2f}", f"{max(t):.2f}", f"{min(t) / base:.2f}x"] for name, t in times.items()]
    write_table("blocking_function", f"{args.samples} samples through a {args.sleep} s retriever",
                ["variant", f"best of {args.repeats} (s)", "worst (s)", "best / async best"], rows,
                notes="Goal: the blocking retriever in a worker thread at most 2x the async one. Each sample also "
                      "makes two calls to the simulated provider (20 ms latency, its own process).\n"
                      "`python benchmarks/blocking_function.py`")


if __name__ == "__main__":
    main()
