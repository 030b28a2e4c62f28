"""Ray's overhead, like with like: raygrad on N workers against N plain processes calling the same server.

The simulated server (its own process) answers at once and has no budget, so the client side is
all there is to measure. A plain process sends the same chat completions from an asyncio loop, through
the OpenAI SDK or through litellm; N of them split the samples and start together once each has
imported its client. raygrad's clock starts once its workers are up, their clients imported. raygrad runs
the samples as a sharded validation on N ForwardWorker actors with the same calls in flight in all,
sending through the OpenAI SDK (its default for an OpenAI-compatible server) or through litellm
(`transport: litellm`). Each side in turn, N = 1 then N = 2, `--repeats` times.

    python benchmarks/ray_overhead.py [--samples 5000] [--workers 1 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import ray
from common import simulated_server, table, write_table

from raygrad.distributed.actors import GC_THRESHOLDS
from raygrad.distributed.runtime import connect, distributed_run
from raygrad.llm import import_litellm
from raygrad.runs.assemble import load_split
from raygrad.runs.config import RunConfig
from raygrad.tasks import ObjectCount
from raygrad.tasks.object_count import generate_object_counting

IN_FLIGHT = 64
CLIENTS = ("openai", "litellm")  # the plain loops' clients, and raygrad's transports


async def plain_loop(url: str, questions: list[str], in_flight: int, client: str) -> None:
    gate = asyncio.Semaphore(in_flight)
    workflow = ObjectCount()
    if client == "litellm":
        litellm = import_litellm()

        async def send(messages: list[dict]) -> None:
            await litellm.acompletion(model="openai/simulated", api_base=url, api_key="none", temperature=0.0,
                                      messages=messages)
    else:
        import httpx
        import openai
        from openai.types.chat import ChatCompletion

        sdk = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)

        async def send(messages: list[dict]) -> None:
            if client == "openai-post":  # the request raygrad makes: the body posted as it is, the reply read
                raw = await sdk.post("/chat/completions", cast_to=httpx.Response,
                                     body={"model": "simulated", "temperature": 0.0, "messages": messages},
                                     options={"security": {"bearer_auth": True}})
                ChatCompletion.construct(**raw.json())
            else:
                await sdk.chat.completions.create(model="simulated", temperature=0.0, messages=messages)

    async def one(question: str) -> None:
        async with gate:
            await send(workflow.answer.messages({"question": question}, workflow.state()))

    await asyncio.gather(*(one(q) for q in questions))
    if client != "litellm":
        await sdk.close()  # in this loop: closed after it, the SDK's connections complain


def plain_process(url: str, questions: list[str], in_flight: int, client: str, start: Any, done: Any,
                  gc_thresholds: tuple[int, ...] | None) -> None:
    import_litellm()  # imports openai too
    if gc_thresholds:
        gc.set_threshold(*gc_thresholds)
    start.wait()
    asyncio.run(plain_loop(url, questions, in_flight, client))
    done.put(time.monotonic())


def plain_processes(url: str, questions: list[str], processes: int, client: str,
                    gc_thresholds: tuple[int, ...] | None = None) -> float:
    """Wall time of `processes` plain loops over an equal part of the questions each, started together;
    Python's own garbage collector thresholds unless given."""
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    parts = [questions[i::processes] for i in range(processes)]
    running = [context.Process(target=plain_process,
                               args=(url, part, IN_FLIGHT // processes, client, start, done, gc_thresholds))
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


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user and system) each process of this machine has used, by pid, with its command line."""
    tick, found = os.sysconf("SC_CLK_TCK"), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                fields, command = stat.read().rsplit(")", 1)[1].split(), cmdline.read().replace(b"\0", b" ")
        except OSError:  # ended meanwhile
            continue
        found[int(pid)] = (command.decode(errors="replace"), (int(fields[11]) + int(fields[12])) / tick)
    return found


def process_kind(command: str) -> str:
    if command.startswith("ray::"):
        return command.split(".")[0].split()[0]  # ray::ForwardWorker.score_shard -> ray::ForwardWorker
    if "raygrad.testing.server" in command:
        return "simulated server"
    return next((kind for kind in ("raylet", "gcs_server") if kind in command), "other")


def cpu_spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by kind of process."""
    spent: dict[str, float] = {}
    for pid, (command, seconds) in after.items():
        kind = process_kind(command)
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(pid, (command, 0.0))[1]
    return spent


HTTP = "HTTP (httpx, httpcore, h11, anyio)"
COMPONENTS = [  # a frame's file -> what it belongs to, first match
    ("raygrad/llm/journal", "raygrad: call journal (SQLite)"), ("raygrad/llm/", "raygrad: LLM client and limits"),
    ("raygrad/", "raygrad: trace, workflow, metric, evaluation"), ("openai/", "OpenAI SDK"),
    ("httpx", HTTP), ("httpcore", HTTP), ("h11/", HTTP), ("anyio/", HTTP),
    ("asyncio/", "asyncio event loop"), ("selectors", "asyncio event loop"), ("ray/", "Ray"),
    ("msgpack", "Ray"), ("pydantic", "pydantic"), ("json/", "json"), ("litellm/", "litellm")]


def component(frame: str) -> str:
    return next((name for key, name in COMPONENTS if key in frame), "other")


def profile_tables(raw: str) -> str:
    """py-spy's samples of a worker's busy threads: own time by component, and the top functions."""
    by_component, by_function, total = collections.Counter(), collections.Counter(), 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        by_component[component(leaf)] += int(count)
        by_function[leaf] += int(count)
        total += int(count)
    share = lambda n: f"{100 * n / total:.1f}%"  # noqa: E731
    return (table(["component (the sampled frame's own time)", "share of the worker's busy samples"],
                  [[name, share(n)] for name, n in by_component.most_common()])
            + "\n\n" + table(["function (file:line)", "own share"],
                              [[f"`{name}`", share(n)] for name, n in by_function.most_common(15)])
            + f"\n\n{total} samples at 100 Hz.")


def profiled(pid: int, output: str) -> subprocess.Popen | None:
    """py-spy recording a process until interrupted; None without py-spy (`pip install py-spy`)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if spy is None:
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o", output, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def raygrad_run(url: str, output: str, samples: int, workers: int, transport: str,
                profile: str | None = None) -> tuple[float, int, dict[str, float]]:
    config = RunConfig.model_validate({
        "name": f"overhead-{workers}", "output_dir": output, "workflow": {"name": "object_count"},
        "data": {"generator": {"size": samples, "seed": 2}, "splits": {"val": f"0:{samples}"}},
        "models": {"task": {"model": "openai/simulated", "api_base": url, "max_in_flight": IN_FLIGHT // workers,
                            "transport": transport}},
        "trainer": {"validation_chunk": 250},
        "runtime": {"workers": workers, "cpus_per_worker": 0.5, "shards_per_worker": 2}})
    examples = load_split(config.data, "val")
    with distributed_run(config) as run:
        run.stats()  # every worker is up (its client imported): plain processes start their clocks so too
        spy = None
        if profile:
            worker = next(iter(ray.get(run.optimizer.workers.remote()).values()))
            spy = profiled(ray.get(worker.__ray_call__.remote(lambda _: os.getpid())), profile)
            time.sleep(1)  # py-spy attached
        before, started = cpu_seconds(), time.monotonic()
        result = run.evaluate({}, examples)
        wall = time.monotonic() - started
        spent = cpu_spent(before, cpu_seconds())
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples and exits
            spy.wait()
        return wall, result.evaluated, spent


def one_process(url: str, output: str, samples: int) -> tuple[float, float]:
    """raygrad's evaluation without Ray (through the OpenAI SDK): the same client, journal, tracing and
    scoring in this process."""
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
    started, cpu = time.monotonic(), time.process_time()
    asyncio.run(evaluate(ObjectCount(), examples, client, number_match))
    return time.monotonic() - started, time.process_time() - cpu


def spread(values: list[float]) -> str:
    """The median, and the range over the repeats."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    connect()
    rows, cpu_rows = [], []
    questions = [row["input"] for row in generate_object_counting(args.samples, seed=2)]
    for n in args.workers:
        plain = {client: [] for client in CLIENTS}  # wall times
        ours = {client: [] for client in CLIENTS}
        ratio = {client: [] for client in CLIENTS}  # raygrad / plain, same client, same repeat
        litellm_share, alone, tuned = [], [], []  # tuned: raygrad / a plain loop making raygrad's request, its GC
        with simulated_server(latency_s=0.0, responder="object_count") as url:
            # Not measured: the first runs after Ray starts share the cores with its own processes starting up
            # (a first raygrad run at N = 1 took 1.8 times as long as the next ones).
            plain_processes(url, questions[:1000], n, "openai")
            with tempfile.TemporaryDirectory() as output:
                raygrad_run(url, output, 1000, n, "openai")
            for _ in range(args.repeats):  # each side in turn: the machine's load drifts within minutes
                for client in CLIENTS:
                    plain[client].append(plain_processes(url, questions, n, client))
                    with tempfile.TemporaryDirectory() as output:  # a fresh journal: every call is paid
                        wall, evaluated, spent = raygrad_run(url, output, args.samples, n, client)
                    ours[client].append(wall)
                    ratio[client].append(plain[client][-1] / wall)
                    workers = spent.pop("ray::ForwardWorker", 0.0)
                    cpu_rows.append([n, client, f"{wall:.1f}", f"{workers:.1f} ({workers / wall:.2f} of a core)",
                                     f"{1000 * workers / evaluated:.2f}", f"{spent.get('simulated server', 0):.1f}",
                                     f"{sum(v for k, v in spent.items() if k.startswith('ray::')):.1f}"])
                litellm_share.append(plain["openai"][-1] / plain["litellm"][-1])
                tuned.append(plain_processes(url, questions, n, "openai-post", GC_THRESHOLDS) / ours["openai"][-1])
                if n == 1:
                    with tempfile.TemporaryDirectory() as output:
                        wall, cpu = one_process(url, output, args.samples)
                    alone.append(plain["openai"][-1] / wall)
        rate = {side: {c: f"{args.samples / statistics.median(times[c]):.0f}" for c in CLIENTS}
                for side, times in (("plain", plain), ("ours", ours))}
        rows.append([n, rate["plain"]["openai"], rate["ours"]["openai"], spread(ratio["openai"]),
                     rate["plain"]["litellm"], rate["ours"]["litellm"], spread(ratio["litellm"]),
                     spread(litellm_share), spread(tuned), spread(alone) if alone else "-"])
        print(rows[-1], flush=True)
    with simulated_server(latency_s=0.0, responder="object_count") as url, tempfile.TemporaryDirectory() as output:
        raw = os.path.join(output, "worker.txt")  # one more run at N = 1 through the SDK, a worker profiled
        raygrad_run(url, output, args.samples, 1, "openai", profile=raw)
        profile = profile_tables(open(raw).read()) if os.path.exists(raw) else "py-spy is not installed: no profile."
    write_table("ray_overhead", f"Samples/s at zero latency, no budget ({args.samples} samples, {IN_FLIGHT} in flight, "
                                f"{args.repeats} repeats)",
                ["processes = Ray workers", "plain, OpenAI SDK: samples/s", "raygrad, OpenAI SDK (default): samples/s",
                 "raygrad / plain, OpenAI SDK", "plain, litellm: samples/s", "raygrad, litellm: samples/s",
                 "raygrad / plain, litellm", "plain, samples/s: litellm / OpenAI SDK",
                 "raygrad / plain posting the body as is, with raygrad's GC thresholds, OpenAI SDK",
                 "raygrad without Ray, 1 process / plain, OpenAI SDK"], rows,
                notes="Samples/s are medians over the repeats; ratios are each repeat's (one side right after the "
                      "other, same server), as median (range), after one run of each side at each N that is not "
                      "counted. On this 2-core machine, shared with other work; the server runs on it too. Goal: "
                      "raygrad at least 0.9 of the plain processes at each N, each "
                      "sending through the same client. raygrad's numbers include its journal writes and per-sample "
                      "scoring; the plain processes only send the calls. `plain, samples/s: litellm / OpenAI SDK` is "
                      "litellm's own cost measured apart: the same plain loop through each. raygrad's actors set "
                      f"Python's garbage collector thresholds to {GC_THRESHOLDS} (the default is (700, 10, 10)); "
                      "the plain loops keep the default, as a user's script would. raygrad's SDK transport posts "
                      "the request's body as it is (`client.post`), where the plain loops call "
                      "`chat.completions.create`, which first walks the body against the SDK's typed parameters. "
                      "The column `raygrad / plain posting the body as is, with raygrad's GC thresholds` compares "
                      "with a plain loop that makes raygrad's very request and sets the same thresholds: what is "
                      "left there is raygrad's and Ray's own cost. Without "
                      "Ray: raygrad's own evaluation (client, journal, trace, metric) in one process, which tells "
                      "what of the gap is Ray's.\n\n"
                      "## Where the CPU went during raygrad's runs\n\n"
                      + table(["Ray workers", "transport", "raygrad wall s", "forward workers' CPU s",
                               "worker CPU ms per sample", "simulated server CPU s",
                               "raygrad's other actors and Ray's own (ray::) CPU s"], cpu_rows)
                      + "\n\nCPU seconds each process used between the start and the end of the evaluation, read "
                        "from /proc.\n\n## Where a worker's CPU goes\n\nOne more run on 1 worker through the OpenAI "
                        "SDK, its worker sampled by py-spy while it evaluated (not one of the runs above):\n\n"
                      + profile)


if __name__ == "__main__":
    main()
