"""raygrad, DSPy and AdalFlow evaluating the same 1,000 samples under the same provider budget.

The simulated server (its own process) allows 600 requests/minute, enforced as at most 60 in any 6 s
window, with 0.5 s latency, OpenAI's rate-limit headers, and 429 with OpenAI's error body,
retry-after-ms and retry-after beyond the budget. It always answers the counting question right
(`object_count_exact`, in DSPy's field format when the prompt shows it), so every sample a framework
scores below 1 was lost to the budget, not misanswered. Each runner gets a fresh server; counts come
from the server's log. The paced limit for N samples is (N-1)/10 + 0.5 s.

- raygrad: a sharded evaluation on 1 and on 4 Ray workers leasing from one budget (`rpm: 600`).
- DSPy 3.x: `dspy.Evaluate` over `dspy.Predict("question -> answer")`: with 16 threads and the LM's
  default retries (3, litellm's exponential backoff); and as a careful user would set it, with the
  threads the budget needs (rate x latency = 10/s x 0.5 s = 5) and `num_retries=8`, what DSPy's
  maintainers chose as enough to ride out rate limiting (stanfordnlp/dspy#1753).
- AdalFlow 1.1.3: `AdalComponent.validation_step` over a Generator on `OpenAIClient` (Responses API;
  AdalFlow's 5 s backoff over the OpenAI SDK's retries): with 16 threads and the SDK's default 2
  retries; and with 5 threads and the SDK's retries raised to 8.

    pip install -e ".[bench]"; cd benchmarks && python peers_throughput.py [--samples 1000]
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from adalflow_task import object_count_task, samples
from common import server_log, simulated_server, write_table
from ray_budget import LATENCY, RPM, WINDOW, budget_use

from raygrad.tasks.object_count import generate_object_counting

THREADS, CAREFUL_THREADS, CAREFUL_RETRIES = 16, 5, 8
SERVER = {"rpm": RPM, "window_s": WINDOW, "latency_s": LATENCY, "responder": "object_count_exact"}


def run_raygrad(url: str, rows: list[dict], workers: int) -> tuple[list[float], int]:
    """Scores of the completed samples, and how many failed (reported apart, never scored)."""
    from raygrad.data import Example
    from raygrad.distributed.runtime import distributed_run
    from raygrad.runs.config import RunConfig

    with tempfile.TemporaryDirectory() as output:
        config = RunConfig.model_validate({
            "name": f"peers-{workers}", "output_dir": output, "workflow": {"name": "object_count"},
            "models": {"task": {"model": "openai/simulated", "api_base": url, "rpm": RPM, "max_in_flight": 256}},
            "trainer": {"validation_chunk": max(1, len(rows) // (4 * workers))},
            "runtime": {"workers": workers, "cpus_per_worker": 0.25, "shards_per_worker": 4}})
        examples = [Example(id=str(i), **row) for i, row in enumerate(rows)]
        with distributed_run(config) as ray_run:
            result = ray_run.evaluate({}, examples)
    right = round(result.score * result.evaluated)
    return [1.0] * right + [0.0] * (result.evaluated - right), result.failed


def run_dspy(url: str, rows: list[dict], threads: int, retries: int | None = None) -> tuple[list[float], int]:
    import dspy

    settings = {} if retries is None else {"num_retries": retries}
    dspy.configure(lm=dspy.LM("openai/simulated", api_base=url, api_key="sk-bench", cache=False, temperature=0.0,
                              **settings))
    devset = [dspy.Example(question=r["input"], answer=r["target"]).with_inputs("question") for r in rows]
    evaluate = dspy.Evaluate(devset=devset, num_threads=threads, display_progress=False, max_errors=len(rows) + 1,
                             metric=lambda example, prediction, trace=None:
                             float(str(getattr(prediction, "answer", "")).strip() == example.answer))
    result = evaluate(dspy.Predict("question -> answer"))
    return [float(score) for _, _, score in result.results], 0  # DSPy logs errors and scores them as failures


def run_adalflow(url: str, rows: list[dict], threads: int, retries: int | None = None) -> tuple[list[float], int]:
    task = object_count_task(url, "<SYS>{{system_prompt}}</SYS>\n{{input_str}}",
                             {"system_prompt": "You will answer a reasoning question. End with 'Answer: N'."},
                             max_retries=retries, use_cache=False)  # every runner sends every call
    result = task.validation_step(samples(rows), 0, num_workers=threads)
    return [float(score) for score in result.per_item_scores], 0  # a failed call is printed and scored 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=["raygrad", "dspy", "adalflow"],
                        default=["raygrad", "dspy", "adalflow"])
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the peers log one line per error; their counts are in the table
    os.environ["TQDM_DISABLE"] = "1"  # and draw progress bars per sample
    rows = generate_object_counting(args.samples, seed=1)
    runners = []
    if "raygrad" in args.only:
        from raygrad.distributed.runtime import connect

        connect()
        runners += [(f"raygrad, {n} Ray worker{'s' * (n > 1)}", lambda url, n=n: run_raygrad(url, rows, n)) for n in (1, 4)]
    careful = f"{CAREFUL_THREADS} threads, {CAREFUL_RETRIES} retries"
    if "dspy" in args.only:
        runners += [(f"DSPy Evaluate, {THREADS} threads, default retries", lambda url: run_dspy(url, rows, THREADS)),
                    (f"DSPy Evaluate, {careful}",
                     lambda url: run_dspy(url, rows, CAREFUL_THREADS, CAREFUL_RETRIES))]
    if "adalflow" in args.only:
        runners += [(f"AdalFlow validation_step, {THREADS} threads, default retries",
                     lambda url: run_adalflow(url, rows, THREADS)),
                    (f"AdalFlow validation_step, {careful}",
                     lambda url: run_adalflow(url, rows, CAREFUL_THREADS, CAREFUL_RETRIES))]
    table = []
    for name, runner in runners:
        with simulated_server(**SERVER) as url:
            started = time.monotonic()
            scores, failed = runner(url)
            wall = time.monotonic() - started
            log = server_log(url)
        span, paced, refused, most = budget_use(log, args.samples)
        lost = sum(1 for score in scores if score < 1.0)
        table.append([name, f"{wall:.1f}", f"{span:.1f}", f"{span / paced:.3f}", refused, failed,
                      f"{lost} ({100 * lost / args.samples:.1f}%)", most])
        print(table[-1], flush=True)
    write_table("peers_throughput", f"{args.samples} samples under one 600 RPM budget (60 per 6 s, 0.5 s latency)",
                ["runner", "wall s", "first request to last reply s", "ratio to paced limit", "refused (429)",
                 "failed (reported)", "scored wrong (lost)", "most in any 6 s window / allowed"], table,
                notes=f"One run of each on this 2-core machine, each against a fresh simulated server in its own "
                      f"process. The paced limit for {args.samples} samples is {paced:.1f} s. The server always "
                      "answers right, so a sample scored wrong is one the framework lost to the budget: DSPy and "
                      "AdalFlow log the error and score it 0; raygrad retries within the budget and reports a "
                      "sample whose calls never succeeded as failed, never as wrong. Wall time includes starting "
                      "Ray actors for raygrad.")


if __name__ == "__main__":
    main()
