"""Throughput of `raygrad eval` under a provider's rate budget, read off the simulated server's log.

The server allows 600 requests/minute, enforced as at most 60 requests in any 6 s window, with 0.5 s
latency, and writes OpenAI's rate-limit headers (the minute's limit, remaining and reset; nothing
about the 6 s window). N samples paced at 600/minute need (N-1)/10 + 0.5 s: the paced limit. We
report wall time against it, and the requests refused with 429.

    python benchmarks/rate_limit.py [--samples 3000]
"""
from __future__ import annotations

import argparse
import asyncio
import time

from common import max_in_window, server_log, simulated_server, write_table

from raygrad.data import Example
from raygrad.llm.client import LLMClient
from raygrad.optim.evaluate import evaluate
from raygrad.optim.metrics import number_match
from raygrad.runs.config import ModelConfig
from raygrad.tasks import ObjectCount
from raygrad.tasks.object_count import generate_object_counting

RPM, WINDOW, LATENCY = 600, 6.0, 0.5


async def run(samples: int) -> list[object]:
    with simulated_server(rpm=RPM, window_s=WINDOW, latency_s=LATENCY, responder="object_count") as url:
        client = LLMClient(ModelConfig(model="openai/simulated", api_base=url, rpm=RPM, max_in_flight=256))
        examples = [Example(id=str(i), **row) for i, row in enumerate(generate_object_counting(samples, seed=1))]
        started = time.monotonic()
        report = await evaluate(ObjectCount(), examples, client, number_match)
        wall = time.monotonic() - started
        log = server_log(url)
    refused = sum(1 for e in log if e["status"] == 429)
    accepted = [e["time"] for e in log if e["status"] != 429]
    paced = (samples - 1) * 60 / RPM + LATENCY
    return [samples, f"{wall:.1f}", f"{paced:.1f}", f"{wall / paced:.3f}",
            f"{refused} ({100 * refused / len(log):.1f}%)", report.failed,
            f"{max_in_window(accepted, WINDOW)} / {int(RPM * WINDOW / 60)}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    row = asyncio.run(run(args.samples))
    write_table("rate_limit", "raygrad eval under a 600 RPM budget (60 per 6 s window, 0.5 s latency)",
                ["samples", "wall s", "paced limit s", "wall/paced", "refused (429)", "failed samples",
                 "most in any 6 s window / allowed"], [row],
                notes="Counts are read off the simulated server's request log; wall time includes importing "
                      "litellm. Goal: wall/paced <= 1.02 with <= 1% refused.")


if __name__ == "__main__":
    main()
