"""RayExecutor: the trainer's samples dispatched in shards to ForwardWorker actors (same interface as LocalExecutor).

Shards, not samples or calls, cross actor boundaries, and a split crosses once: a shard call carries the
split's object-store reference and its row positions (SharedRows), and each worker keeps the split it
fetched (RowCache), packed (PackedRows) so it unpacks only its shards' rows. Actors get the settings
they read (ActorSettings), not the run's whole config. A worker that dies mid-shard is replaced and
its shard redone on another (calls it had journaled are replayed, not paid again); its unused rate
lease goes back to the budget. Stage 2 stops dispatching, and cancels shards in flight, as soon as
the candidate can no longer beat the incumbent.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayActorError, TaskCancelledError

from raygrad.core.workflow import Workflow
from raygrad.data import Dataset, PackedRows
from raygrad.llm.client import Usage, check_budget
from raygrad.llm.models import ROLES, ModelConfig, role_of
from raygrad.optim.evaluate import SampleResult
from raygrad.optim.execution import BatchOutcome, ScoreSum, Stage2Result, Stage2Tally
from raygrad.optim.metrics import Metric
from raygrad.optim.settings import TrainerConfig
from raygrad.runs.config import RunConfig, RuntimeConfig


class ActorSettings(BaseModel):
    """The parts of a run's config its actors read; its data, workflow, models and tracking sections stay on the
    driver (the spec is every actor's constructor argument, pickled into each)."""

    name: str
    trainer: TrainerConfig
    runtime: RuntimeConfig
    storage: str | None = None
    samples_table: bool = True

    @classmethod
    def of(cls, config: RunConfig) -> ActorSettings:
        return cls(name=config.name, trainer=config.trainer, runtime=config.runtime, storage=config.storage,
                   samples_table=config.samples_table)


class RuntimeSpec(BaseModel):
    """What every actor of a run needs: its settings, the workflow and metric (built once, on the driver),
    resolved endpoints, the journal's path, and the user's code to ship to workers."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    config: ActorSettings
    workflow: Workflow  # travels pickled: no clients, locks or open files in it (they live in the run context)
    metric: Metric
    models: dict[str, ModelConfig]  # per role or named model, the local model resolved to its server
    endpoints: dict[str, str]  # per role or named model, the endpoint id (budget and journal key)
    journal_path: str
    py_modules: list[str] = Field(default_factory=list)  # the user's packages, for Ray's runtime_env
    # The run's KeyVault actor (a handle: no key travels in this spec, which is every actor's
    # constructor argument and so kept in Ray's control store).
    key_vault: Any = None

    def holder(self, actor: str) -> str:
        """The name an actor leases budget under: runs of a sweep share a budget fairly, run by run."""
        return f"{self.config.name}/{actor}"

    def actor_options(self) -> dict[str, Any]:
        """Ray options for an actor's process on any node: its niceness, and the user's code."""
        return process_options(self.config.runtime.niceness, self.py_modules)

    def key_names(self) -> list[str]:
        """The environment variables that hold the API keys of the run's models."""
        return sorted({model.api_key_env for model in self.models.values() if model.api_key_env})

    def load_api_keys(self) -> None:
        """In an actor: the keys this node's environment lacks, asked of the run's KeyVault (the node's own win)."""
        missing = [name for name in self.key_names() if name not in os.environ]
        if missing and self.key_vault is not None:
            os.environ.update(ray.get(self.key_vault.get.remote(missing)))


def process_options(niceness: int, py_modules: list[str] | None = None) -> dict[str, Any]:
    """Ray options for the process of one of raygrad's actors. Ray renices each worker process it starts to
    `RAY_worker_niceness` (15 unless set), read from the process's environment: an LLM client at 15 waits for
    every other process of its node, and its sends leave late or fall behind a budget (the budget test in
    tests/distributed/test_runtime.py runs beside a busy process)."""
    runtime_env: dict[str, Any] = {"env_vars": {"RAY_worker_niceness": str(niceness)}}
    if py_modules:
        runtime_env["py_modules"] = py_modules
    return {"runtime_env": runtime_env}


class SharedRows:
    """A split in Ray's object store: its reference and length. What crosses an actor boundary in a shard call,
    so a split is sent to each worker once (ForwardWorker keeps it), not with every shard. The trainer needs only
    its length; the rows are read where the samples run."""

    def __init__(self, ref: Any, size: int):
        self.ref, self.size = ref, size

    def __len__(self) -> int:
        return self.size


def share(data: Dataset) -> Dataset | SharedRows:
    """Examples in memory put in the object store once (packed); a RowSource (a path and a range) travels as it is."""
    if isinstance(data, list):
        data = PackedRows.pack(data)
    return SharedRows(ray.put(data), len(data)) if isinstance(data, PackedRows) else data


class RowCache:
    """A worker's splits by reference, fetched on first use (a run has train and val, and test at the end)."""

    def __init__(self, keep: int = 4):
        self.keep, self._rows = keep, collections.OrderedDict()

    def get(self, data: Dataset | SharedRows) -> Dataset:
        if not isinstance(data, SharedRows):
            return data
        key = data.ref.hex()
        if key not in self._rows:
            self._rows[key] = ray.get(data.ref)
            while len(self._rows) > self.keep:
                self._rows.popitem(last=False)
        self._rows.move_to_end(key)
        return self._rows[key]


class RayExecutor:
    def __init__(self, spec: RuntimeSpec, budget: Any, aggregator: Any, make_worker: Callable[[str], Any],
                 demo_parameters: list[str], sample_sink: Callable[[str, list[SampleResult]], None] | None = None):
        self.spec, self.budget, self.aggregator, self.make_worker = spec, budget, aggregator, make_worker
        self.demo_parameters = demo_parameters
        self.sample_sink = sample_sink  # per-sample results of labelled evaluations, shard by shard
        self._ids = itertools.count()
        self.workers: dict[str, Any] = {}
        for _ in range(spec.config.runtime.workers):
            wid = self._next_id()
            self.workers[wid] = make_worker(wid)
        self.replaced: list[str] = []  # workers that died and were replaced
        self.cancelled_shards = 0
        self._usage = {role: Usage() for role in ROLES}
        self._step = itertools.count()
        self._batches_running: set[int] = set()  # steps whose minibatch is out (several, with parallel_steps)
        self.budget_guard: Callable[[], str | None] | None = None

    def _next_id(self) -> str:
        return f"worker-{next(self._ids)}"

    def usage(self) -> dict[str, Usage]:
        return {role: u for role, u in self._usage.items() if role != "optimizer"}

    def _count(self, delta: dict[str, Usage]) -> None:
        for name, usage in delta.items():
            self._usage[role_of(name)] = self._usage[role_of(name)].add(usage)

    # -- dispatch ------------------------------------------------------------------------------
    async def _map(self, method: str, shards: Iterable[tuple], stop: Callable[[int, tuple, Any], bool] | None = None,
                   keep: bool = True) -> list[Any]:
        """Run shards on the workers, a few per worker at a time; results in shard order.

        `shards` is consumed lazily, so a million-row validation never lists its shards at once;
        with `keep=False` results are only passed to `stop`, not collected. `stop(number, shard, result)`, called in
        completion order, True: dispatch nothing more, cancel what is in flight. A budget running out
        stops dispatch too; shards in flight finish (their calls are journaled), then BudgetExhausted
        is raised.
        """
        fresh, redo, running, results = enumerate(shards), deque(), {}, {}
        per_worker = self.spec.config.runtime.shards_per_worker
        stopped, exhausted, drained = False, None, False
        while (not (drained and not redo) and not stopped and exhausted is None) or running:
            load = {wid: 0 for wid in self.workers}
            for _, wid, _ in running.values():
                if wid in load:  # a replaced worker's other shards are still running out (and will be redone)
                    load[wid] += 1
            while not stopped and exhausted is None:
                wid = min(self.workers, key=lambda w: load[w])
                if load[wid] >= per_worker:
                    break
                exhausted = self.budget_guard() if self.budget_guard else None
                if exhausted:
                    break
                job = redo.popleft() if redo else next(fresh, None)
                if job is None:
                    drained = True
                    break
                ref = getattr(self.workers[wid], method).remote(*job[1])
                running[asyncio.ensure_future(_await(ref))] = (job, wid, ref)
                load[wid] += 1
            if not running:
                break
            try:
                done, _ = await asyncio.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # the caller needs these shards no more: calls sent are journaled
                for _, _, ref in running.values():
                    ray.cancel(ref)
                    self.cancelled_shards += 1
                raise
            for future in done:
                job, wid, _ = running.pop(future)
                try:
                    result, usage = future.result()
                except TaskCancelledError:
                    continue
                except RayActorError:
                    self._replace(wid)
                    redo.append(job)  # redone on a live worker; journaled calls are free
                    continue
                self._count(usage)
                if keep:
                    results[job[0]] = result
                if stop is not None and not stopped and stop(*job, result):
                    stopped = True
                    for _, _, ref in running.values():
                        ray.cancel(ref)
                        self.cancelled_shards += 1
        check_budget(lambda: exhausted)
        return [results[i] for i in sorted(results)]

    def _replace(self, wid: str) -> None:
        if wid in self.workers:
            self.budget.release.remote(self.spec.holder(wid))  # its unused future send times go back to the budget
            del self.workers[wid]
            self.replaced.append(wid)
            new = self._next_id()
            self.workers[new] = self.make_worker(new)

    # -- the Executor interface --------------------------------------------------------------------
    async def train_batch(self, values: dict[str, str], train: Dataset, positions: list[int],
                          label: str = "") -> BatchOutcome:
        step = next(self._step)
        self._batches_running.add(step)
        try:
            shards = [(values, train, part, step, self.demo_parameters) for part in self._across_workers(positions)]
            outcomes: list[BatchOutcome] = await self._map("train_shard", shards)
            check_budget(self.budget_guard)  # the backward engine's calls for this batch come next
            # Errors of earlier steps no longer running were left by a step rolled back: the aggregator drops them.
            gradients, counts, usage = await self.aggregator.backward.remote(step, min(self._batches_running))
        finally:
            self._batches_running.discard(step)
        demos: dict[str, list] = {name: [d for o in outcomes for d in o.demos.get(name, [])]
                                  for name in self.demo_parameters}
        self._count(usage)
        results = [r for o in outcomes for r in o.results]
        self._sink(label, results)
        return BatchOutcome(results=results, demos=demos, gradients=gradients, backward=counts)

    async def score(self, values: dict[str, str], train: Dataset, positions: list[int], label: str = "") -> float:
        """Stage 1: the minibatch over every worker, as the minibatch's forward pass is (the sum is the same)."""
        keep = self._keeps(label)
        parts: list[ScoreSum] = await self._map("score_shard", [(values, train, part, keep)
                                                                for part in self._across_workers(positions) or [[]]])
        self._sink(label, [s for part in parts for s in part.samples])
        return functools.reduce(ScoreSum.add, parts, ScoreSum()).strict_mean

    async def validate(self, values: dict[str, str], val: Dataset, must_beat: float | None = None,
                       chunk: int = 16, label: str = "", first: Sequence[int] = (),
                       accept_confidence: float | None = None) -> Stage2Result:
        tally, keep = Stage2Tally(len(val), first, must_beat, accept_confidence), self._keeps(label)

        def decided(number: int, shard: tuple, result: ScoreSum) -> bool:
            self._sink(label, result.samples)
            return tally.add(number, shard[2], result.model_copy(update={"samples": []}))  # the sink has them

        await self._map("score_shard", ((values, val, rows, keep) for rows in tally.shards(chunk)), stop=decided,
                        keep=False)
        return tally.result()

    def _across_workers(self, positions: list[int]) -> list[list[int]]:
        """A minibatch's positions in one shard per worker (none for no positions)."""
        size = max(1, -(-len(positions) // len(self.workers)))
        return [positions[i:i + size] for i in range(0, len(positions), size)]

    def _keeps(self, label: str) -> bool:
        return bool(label) and self.sample_sink is not None

    def _sink(self, label: str, samples: list[SampleResult]) -> None:
        if self._keeps(label) and samples:
            self.sample_sink(label, samples)


async def _await(ref: Any) -> Any:
    return await ref
