"""The driver side of a distributed run: connect to Ray, start the actors, run the trainer there."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from pydantic import SecretStr

from raygrad.data import Dataset
from raygrad.distributed.actors import GradientAggregator, OptimizerActor, RateBudget
from raygrad.distributed.dispatch import RuntimeSpec
from raygrad.llm.client import Usage
from raygrad.llm.endpoints import resolved_models
from raygrad.llm.local import LocalModelServer
from raygrad.llm.models import ROLES, ModelConfig
from raygrad.optim.execution import Stage2Result
from raygrad.runs.config import RunConfig
from raygrad.runs.rundir import CHECKPOINT


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` or $RAY_ADDRESS; without either, start a local Ray instance."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


def on_driver_node() -> dict[str, Any]:
    """Actor options that place a coordinator (budget, aggregator, optimizer) beside the driver, so
    losing a worker node loses only workers, which are replaced (soft: elsewhere if it cannot fit)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)}


class DistributedRun:
    """One optimization's actors: the rate budget, the gradient aggregator, the optimizer (and its workers)."""

    def __init__(self, spec: RuntimeSpec, checkpoint: Path, budget: Any = None):
        runtime = spec.config.runtime
        self.own_budget = budget is None  # a sweep's runs share the sweep's budget
        self.budget = RateBudget.options(**on_driver_node()).remote(rate_limits(spec)) if budget is None else budget
        self.aggregator = GradientAggregator.options(num_cpus=0, **on_driver_node()).remote(spec, self.budget)
        # Spread: workers use every node's CPUs and network, and a lost node takes few of them.
        worker_options = {"num_cpus": runtime.cpus_per_worker, "max_concurrency": 1000, "scheduling_strategy": "SPREAD"}
        self.optimizer = OptimizerActor.options(max_concurrency=1000, **on_driver_node()).remote(
            spec, self.budget, self.aggregator, str(checkpoint), worker_options)

    def fit(self, train: Dataset, val: Dataset) -> Any:
        return ray.get(self.optimizer.fit.remote(_shared(train), _shared(val)))

    def evaluate(self, values: dict[str, str], data: Dataset, label: str = "") -> Stage2Result:
        return ray.get(self.optimizer.evaluate.remote(values, _shared(data), label))

    def usage(self) -> dict[str, Usage]:
        return ray.get(self.optimizer.usage.remote())

    def stats(self) -> dict[str, Any]:
        return ray.get(self.optimizer.stats.remote())

    def shutdown(self) -> None:
        try:
            workers = list(ray.get(self.optimizer.workers.remote()).values())
        except ray.exceptions.RayActorError:  # the optimizer died with its node; its workers may live
            workers = []
        for actor in [*workers, self.optimizer, self.aggregator, *([self.budget] if self.own_budget else [])]:
            ray.kill(actor)


def rate_limits(spec: RuntimeSpec) -> dict[str, tuple[float | None, float | None]]:
    """(rpm, tpm) per endpoint with a limit, for the RateBudget."""
    limits = {}
    for role in ROLES:
        model = spec.models[role]
        if model.rpm or model.tpm:
            limits[spec.endpoints[role]] = (model.rpm, model.tpm)
    return limits


def _shared(data: Dataset) -> Any:
    return ray.put(data) if isinstance(data, list) else data  # a RowSource is only a path and a range


def runtime_spec(config: RunConfig, models: dict[str, ModelConfig], endpoints: dict[str, str],
                 eval_name: str = "eval") -> RuntimeSpec:
    key_names = {models[role].api_key_env for role in ROLES if models[role].api_key_env}
    spec = RuntimeSpec(config=config, models=models, endpoints=endpoints,
                       journal_path=str(Path(config.journal_path).resolve()), eval_name=eval_name,
                       api_keys={name: SecretStr(os.environ[name]) for name in key_names if os.environ.get(name)})
    Path(spec.journal_path).parent.mkdir(parents=True, exist_ok=True)
    return spec


@contextmanager
def distributed_run(config: RunConfig, address: str | None = None, eval_name: str = "eval", budget: Any = None,
                    local: LocalModelServer | None = None) -> Iterator[DistributedRun]:
    """Connect (or start Ray), resolve the models (starting the local one unless given), start the actors.

    `budget`: a RateBudget actor shared with other runs (a sweep's); by default the run has its own.
    """
    connect(address or config.runtime.address)
    with resolved_models(config.role_models(), local=local) as (models, endpoints):
        spec = runtime_spec(config, models, endpoints, eval_name)
        run = DistributedRun(spec, (config.run_dir / CHECKPOINT).resolve(), budget)
        try:
            yield run
        finally:
            run.shutdown()
