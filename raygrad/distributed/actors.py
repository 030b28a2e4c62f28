"""The Ray actors: thin holders of state that call the engine's plain async functions.

RateBudget     one RateLedger per provider endpoint, leased to every worker's LLM clients
ForwardWorker  runs shards of samples with many calls in flight; error traces go to the aggregator
GradientAggregator  runs the backward engine on error samples only
OptimizerActor runs the Trainer, its samples dispatched to the workers by a RayExecutor
"""
from __future__ import annotations

import asyncio
import collections
import gc
import resource
import sys
import time
from pathlib import Path
from typing import Any

import ray

from raygrad.core.workflow import Trace
from raygrad.data import Dataset, take
from raygrad.distributed.dispatch import RowCache, RuntimeSpec, SharedRows
from raygrad.llm.client import Usage
from raygrad.llm.endpoints import RoleClients
from raygrad.llm.ledger import Lease, RateLedger
from raygrad.llm.limits import LeasedWindow
from raygrad.llm.transport import import_transports
from raygrad.optim.evaluate import SampleResult
from raygrad.optim.events import TrainerEvent
from raygrad.optim.execution import (
    BackwardCounts,
    BatchOutcome,
    ScoreSum,
    Stage2Result,
    backward_errors,
    demo_parameters,
    forward_samples,
    rows_of,
    score_samples,
)
from raygrad.runs.results import SampleTables, run_checkpoint
from raygrad.runs.storage import Storage


@ray.remote(num_cpus=0)
class RateBudget:
    def __init__(self, limits: dict[str, tuple[float | None, float | None]]):
        self.ledgers = {endpoint: RateLedger.per_minute(rpm, tpm) for endpoint, (rpm, tpm) in limits.items()}

    def lease(self, endpoint: str, holder: str, count: int, tokens: float, send_delay: float | None,
              send_interval: float) -> Lease:
        return self.ledgers[endpoint].lease(holder, count, time.time(), tokens, send_delay, send_interval)

    def report(self, endpoint: str, holder: str, kind: str, *args: Any) -> None:
        ledger = self.ledgers[endpoint]
        if kind in ("unused", "used"):
            getattr(ledger, kind)(holder, *args)
        else:
            getattr(ledger, kind)(*args)  # "pause_until"

    def release(self, holder: str) -> int:
        return sum(ledger.release(holder, time.time()) for ledger in self.ledgers.values())


@ray.remote(num_cpus=0)
class KeyVault:
    """The driver's API keys, for actors on nodes whose environment lacks them.

    Keys arrive and leave in method calls, which go from caller to actor and are not kept: an actor's
    constructor arguments are kept in Ray's control store (GCS) for restarts, where the state API and
    the dashboard read.
    """

    def __init__(self):
        self._keys: dict[str, str] = {}

    def put(self, keys: dict[str, str]) -> None:
        self._keys.update(keys)

    def get(self, names: list[str]) -> dict[str, str]:
        return {name: self._keys[name] for name in names if name in self._keys}


# An actor's process keeps ~150,000 objects alive (Ray, the SDK, its rows and results) and each LLM call
# allocates a few hundred more. At Python's default thresholds (700, 10, 10) the cyclic collector ran
# 1,370 times per 5,000 calls and took a fifth of raygrad's evaluation time (measured in one process as
# benchmarks/ray_overhead.py runs it); at these, 40 times and a few percent. Reference counting, not the
# collector, frees what a finished call leaves.
GC_THRESHOLDS = (10_000, 10, 10)


def actor_clients(spec: RuntimeSpec, actor: str, budget: Any) -> RoleClients:
    """An actor's LLM clients, created inside its event loop; limited endpoints pace by the shared RateBudget.
    The actor's process is raygrad's own: its collector is set for many calls in flight (GC_THRESHOLDS)."""
    gc.set_threshold(*GC_THRESHOLDS)
    spec.load_api_keys()
    import_transports(spec.models.values())
    holder = spec.holder(actor)

    def shared(endpoint: str) -> LeasedWindow:
        async def lease(count: int, tokens: float, send_delay: float | None, send_interval: float) -> Lease:
            return await budget.lease.remote(endpoint, holder, count, tokens, send_delay, send_interval)

        def report(kind: str, *args: Any) -> None:
            budget.report.remote(endpoint, holder, kind, *args)  # fire and forget, in order
        return LeasedWindow(lease, report)

    return RoleClients(spec.models, spec.endpoints, spec.journal_path, shared if budget is not None else None)


@ray.remote
class ForwardWorker:
    def __init__(self, spec: RuntimeSpec, worker_id: str, budget: Any, aggregator: Any):
        self.spec, self.worker_id, self.aggregator = spec, worker_id, aggregator
        self.workflow, self.metric = spec.workflow, spec.metric
        self.clients = actor_clients(spec, worker_id, budget)
        self.splits = RowCache()  # each split fetched once, not sent with every shard

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def peak_rss_mb(self) -> float:
        return peak_rss_mb()

    async def train_shard(self, values: dict[str, str], train: Dataset | SharedRows, positions: list[int], step: int,
                          demo_parameters: list[str]) -> tuple[BatchOutcome, dict[str, Usage]]:
        """Forward a shard of the minibatch; error traces go straight to the aggregator, not back."""
        results, demos, errors = await forward_samples(
            self.workflow, values, take(self.splits.get(train), positions), self.clients, self.metric,
            self.spec.config.trainer.error_threshold, demo_parameters)
        if errors:
            await self.aggregator.add.remote(step, errors)
        return BatchOutcome(results=results, demos=demos), self.clients.usage_delta()

    async def score_shard(self, values: dict[str, str], data: Dataset | SharedRows, rows: range | list[int],
                          keep_samples: bool = False) -> tuple[ScoreSum, dict[str, Usage]]:
        scored = await score_samples(self.workflow, values, rows_of(self.splits.get(data), rows), self.clients,
                                     self.metric, keep_samples, positions=rows)
        return scored, self.clients.usage_delta()


@ray.remote
class GradientAggregator:
    def __init__(self, spec: RuntimeSpec, budget: Any):
        self.spec = spec
        self.workflow = spec.workflow
        self.clients = actor_clients(spec, "aggregator", budget)
        self.pending: dict[int, list[tuple[SampleResult, Trace]]] = {}

    def add(self, step: int, errors: list[tuple[SampleResult, Trace]]) -> None:
        self.pending.setdefault(step, []).extend(errors)

    async def backward(self, step: int, forget_before: int) -> tuple[list, BackwardCounts, dict[str, Usage]]:
        """Gradients for the error samples of a step (and only those), in sample order; the errors of steps
        before `forget_before` are dropped (rolled back at a budget: their backward never came)."""
        # One entry per sample (a shard redone after a worker died may have sent it twice), in id order.
        by_sample = {r.id: (r, t) for r, t in self.pending.pop(step, [])}
        for stale in [s for s in self.pending if s < forget_before]:
            del self.pending[stale]
        errors = [by_sample[i] for i in sorted(by_sample, key=lambda i: (len(i), i))]
        gradients, counts = [], BackwardCounts()
        if errors:  # each trace holds the parameter values its calls used: no copy of the workflow needed
            gradients, counts = await backward_errors(self.workflow, errors, self.clients["backward"],
                                                      self.spec.metric.name)
        return gradients, counts, self.clients.usage_delta()


@ray.remote(num_cpus=0)
class OptimizerActor:
    """Holds parameter state and history (the Trainer), proposes, validates through the workers, checkpoints."""

    def __init__(self, spec: RuntimeSpec, budget: Any, aggregator: Any, checkpoint: str, worker_options: dict):
        from raygrad.distributed.dispatch import RayExecutor
        from raygrad.optim.trainer import Trainer

        self.spec = spec
        self.workflow = spec.workflow
        self.clients = actor_clients(spec, "optimizer", budget)

        def make_worker(worker_id: str) -> Any:
            return ForwardWorker.options(**worker_options).remote(spec, worker_id, budget, aggregator)

        self.samples = SampleTables(Path(checkpoint).parent) if spec.config.samples_table else None
        self.executor = RayExecutor(spec, budget, aggregator, make_worker, demo_parameters(self.workflow),
                                    sample_sink=self.samples.write if self.samples else None)
        storage = Storage(spec.config.storage) if spec.config.storage else None
        self.events: collections.deque[TrainerEvent] = collections.deque(maxlen=1000)  # the driver drains them
        self.trainer = Trainer(self.workflow, spec.metric, {"optimizer": _LazyClient(self.clients, "optimizer")},
                               spec.config.trainer, executor=self.executor,
                               checkpoint=run_checkpoint(Path(checkpoint), storage, Path(spec.journal_path)),
                               on_event=self.events.append)

    async def fit(self, train: Dataset, val: Dataset) -> Any:
        try:
            return await self.trainer.fit(train, val)
        finally:
            self._close_samples()

    async def evaluate(self, values: dict[str, str], data: Dataset, label: str = "") -> Stage2Result:
        try:
            return await self.executor.validate(values, data, chunk=self.spec.config.trainer.validation_chunk,
                                                label=label)
        finally:
            self._close_samples()

    def _close_samples(self) -> None:
        if self.samples is not None:
            self.samples.close()

    def usage(self) -> dict[str, Usage]:
        return self.trainer.usage()

    def progress(self) -> tuple[list[TrainerEvent], dict[str, Usage]]:
        """Events since the last call, and usage so far: what the driver renders."""
        events = list(self.events)
        self.events.clear()
        return events, self.trainer.usage()

    def stop(self, reason: str) -> None:
        """Stop at the next budget check, like a spent budget: the step rolls back to its checkpoint."""
        self.trainer.stop(reason)

    async def stats(self) -> dict[str, Any]:
        workers = dict(self.executor.workers)
        # A worker lost after its last shard is only found dead here: it has no peak, and fails nothing.
        peaks = await asyncio.gather(*(w.peak_rss_mb.remote() for w in workers.values()), return_exceptions=True)
        return {"cluster": ray.get_runtime_context().gcs_address, "workers": list(workers),
                "replaced": self.executor.replaced,
                "cancelled_shards": self.executor.cancelled_shards,
                "peak_rss_mb": {"optimizer": peak_rss_mb(),
                                **{w: p for w, p in zip(workers, peaks) if not isinstance(p, BaseException)}}}

    def workers(self) -> dict[str, Any]:
        return dict(self.executor.workers)


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


class _LazyClient:
    """The optimizer's client, made on first use inside the actor's event loop."""

    def __init__(self, clients: RoleClients, role: str):
        self._clients, self._role = clients, role
        self.budget_guard = None

    @property
    def usage(self) -> Usage:
        return self._clients[self._role].usage

    async def complete_structured(self, *args: Any, **kwargs: Any) -> Any:
        client = self._clients[self._role]
        client.budget_guard = self.budget_guard
        return await client.complete_structured(*args, **kwargs)
