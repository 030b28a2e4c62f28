"""Tokens per second of the embedded local model (SmolLM2-135M-Instruct, llama.cpp, CPU), through litellm.

    python benchmarks/local_model.py [--requests 8]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

from common import write_table

from raygrad.llm.client import LLMClient
from raygrad.llm.local import LOCAL_ENDPOINT_ID, LocalModelServer
from raygrad.tasks.object_count import generate_object_counting


async def measure(server: LocalModelServer, requests: int) -> list[object]:
    client = LLMClient(server.model_config(), endpoint_id=LOCAL_ENDPOINT_ID)
    await client.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)  # warm-up
    started = time.monotonic()
    for example in generate_object_counting(requests, seed=11):
        await client.complete([{"role": "system", "content": "Think step by step, then answer."},
                               {"role": "user", "content": example["input"]}], max_tokens=128)
    wall = time.monotonic() - started
    u = client.usage
    return [requests, os.cpu_count(), f"{wall:.1f}", u.prompt_tokens, u.completion_tokens,
            f"{u.completion_tokens / wall:.1f}", f"{(u.prompt_tokens + u.completion_tokens) / wall:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    with LocalModelServer() as server:
        row = asyncio.run(measure(server, args.requests))
    write_table("local_model", "Embedded local model throughput (one request at a time)",
                ["requests", "cores", "wall s", "prompt tokens", "completion tokens", "completion tok/s",
                 "total tok/s"], [row])


if __name__ == "__main__":
    main()
