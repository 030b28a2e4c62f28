"""The driver side of a distributed run: connect to Ray, start the actors, run the trainer there."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from raygrad.config import ROLES, RunConfig
from raygrad.data import Dataset
from raygrad.distributed.actors import GradientAggregator, OptimizerActor, RateBudget
from raygrad.distributed.executor import RuntimeSpec
from raygrad.executor import Stage2Result
from raygrad.llm.client import Usage
from raygrad.llm.endpoints import resolved_models


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` or $RAY_ADDRESS; without either, start a local Ray instance."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


class DistributedRun:
    """One optimization's actors: the rate budget, the gradient aggregator, the optimizer (and its workers)."""

    def __init__(self, spec: RuntimeSpec, checkpoint: Path):
        runtime = spec.config.runtime
        limits = {}
        for role in ROLES:
            model = spec.models[role]
            if model.rpm or model.tpm:
                limits[spec.endpoints[role]] = (model.rpm, model.tpm)
        self.budget = RateBudget.remote(limits)
        self.aggregator = GradientAggregator.options(num_cpus=0).remote(spec, self.budget)
        worker_options = {"num_cpus": runtime.cpus_per_worker, "max_concurrency": 1000}
        self.optimizer = OptimizerActor.options(max_concurrency=1000).remote(
            spec, self.budget, self.aggregator, str(checkpoint), worker_options)

    def fit(self, train: Dataset, val: Dataset) -> Any:
        return ray.get(self.optimizer.fit.remote(_shared(train), _shared(val)))

    def evaluate(self, values: dict[str, str], data: Dataset) -> Stage2Result:
        return ray.get(self.optimizer.evaluate.remote(values, _shared(data)))

    def usage(self) -> dict[str, Usage]:
        return ray.get(self.optimizer.usage.remote())

    def stats(self) -> dict[str, Any]:
        return ray.get(self.optimizer.stats.remote())

    def shutdown(self) -> None:
        workers = ray.get(self.optimizer.workers.remote())
        for actor in [*workers.values(), self.optimizer, self.aggregator, self.budget]:
            ray.kill(actor)


def _shared(data: Dataset) -> Any:
    return ray.put(data) if isinstance(data, list) else data  # a RowSource is only a path and a range


@contextmanager
def distributed_run(config: RunConfig, address: str | None = None, eval_name: str = "eval") -> Iterator[DistributedRun]:
    """Connect (or start Ray), resolve the models (starting the local one if needed), start the actors."""
    connect(address or config.runtime.address)
    with resolved_models(config) as (models, endpoints):
        spec = RuntimeSpec(config=config, models=models, endpoints=endpoints,
                           journal_path=str(Path(config.journal_path).resolve()), eval_name=eval_name)
        Path(spec.journal_path).parent.mkdir(parents=True, exist_ok=True)
        run = DistributedRun(spec, (config.run_dir / "checkpoint.json").resolve())
        try:
            yield run
        finally:
            run.shutdown()
