"""The driver side of a distributed run: connect to Ray, start the actors, run the trainer there."""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from raygrad.core.workflow import Workflow
from raygrad.data import Dataset
from raygrad.distributed.actors import GradientAggregator, KeyVault, OptimizerActor, RateBudget
from raygrad.distributed.dispatch import ActorSettings, RuntimeSpec, process_options, share
from raygrad.llm.client import Usage
from raygrad.llm.endpoints import resolved_models
from raygrad.llm.local import LocalModelServer
from raygrad.llm.models import ModelConfig
from raygrad.optim.execution import Stage2Result
from raygrad.optim.metrics import Metric
from raygrad.runs.assemble import build_workflow
from raygrad.runs.config import RunConfig
from raygrad.runs.imports import code_to_ship
from raygrad.runs.lifecycle import OnProgress
from raygrad.runs.rundir import CHECKPOINT, SAMPLES


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` or $RAY_ADDRESS; without either, start a local Ray instance.

    "local" explicitly: Ray's default would join whatever cluster this machine last started, and hang
    for minutes retrying one that has since died.
    """
    if ray.is_initialized():
        return
    in_main_thread = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    if callable(on_sigterm):  # Ray's core replaces it with a handler that aborts the driver (exit -6, no cleanup)
        signal.signal(signal.SIGTERM, on_sigterm)


def upload_code(paths: list[str]) -> list[str]:
    """The user's packages uploaded to the cluster, as URIs an actor's `py_modules` takes: Ray accepts
    local paths only for a whole job (`ray.init`), and a run may join a cluster already connected."""
    if not paths:
        return []
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed

    scratch = ray._private.worker.global_worker.node.get_runtime_env_dir_path()
    return upload_py_modules_if_needed({"py_modules": paths}, include_gitignore=True, scratch_dir=scratch)["py_modules"]


def on_driver_node() -> dict[str, Any]:
    """Actor options that place a coordinator (budget, key vault, aggregator, optimizer: none asks for a
    CPU) beside the driver, so losing a worker node loses only workers, which are replaced. Hard: under a
    soft affinity Ray puts an actor that asks for no resources on any node (measured: 3 of 8 beside the
    driver on a 4-node cluster), and the loss of that node would end the run."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}


class DistributedRun:
    """One optimization's actors: the rate budget, the gradient aggregator, the optimizer (and its workers)."""

    def __init__(self, spec: RuntimeSpec, checkpoint: Path, budget: Any = None):
        runtime = spec.config.runtime
        self.own_budget = budget is None  # a sweep's runs share the sweep's budget
        self.checkpoint = checkpoint
        coordinator = {**on_driver_node(), **process_options(runtime.niceness)}
        self.budget = RateBudget.options(**coordinator).remote(rate_limits(spec)) if budget is None else budget
        self.vault = KeyVault.options(**coordinator).remote()
        ray.get(self.vault.put.remote({name: os.environ[name] for name in spec.key_names() if os.environ.get(name)}))
        spec = spec.model_copy(update={"key_vault": self.vault})
        code = spec.actor_options()
        self.aggregator = GradientAggregator.options(num_cpus=0, **on_driver_node(), **code).remote(spec, self.budget)
        # Spread: workers use every node's CPUs and network, and a lost node takes few of them.
        worker_options = {"num_cpus": runtime.cpus_per_worker, "max_concurrency": 1000, "scheduling_strategy": "SPREAD",
                          **code}
        self.optimizer = OptimizerActor.options(max_concurrency=1000, **on_driver_node(), **code).remote(
            spec, self.budget, self.aggregator, str(checkpoint), worker_options)

    def fit(self, train: Dataset, val: Dataset, on_progress: OnProgress | None = None, poll_s: float = 2.0) -> Any:
        done = self.optimizer.fit.remote(share(train), share(val))
        if on_progress is not None:  # the driver draws what the optimizer actor reports while it works
            while not ray.wait([done], timeout=poll_s)[0]:
                on_progress(*ray.get(self.optimizer.progress.remote()))
            on_progress(*ray.get(self.optimizer.progress.remote()))
        return ray.get(done)

    def evaluate(self, values: dict[str, str], data: Dataset, label: str = "") -> Stage2Result:
        return ray.get(self.optimizer.evaluate.remote(values, share(data), label))

    def usage(self) -> dict[str, Usage]:
        return ray.get(self.optimizer.usage.remote())

    def stats(self) -> dict[str, Any]:
        return ray.get(self.optimizer.stats.remote())

    def shutdown(self) -> None:
        try:
            workers = list(ray.get(self.optimizer.workers.remote()).values())
        except ray.exceptions.RayActorError:  # the optimizer died with its node; its workers may live
            workers = []
        own = [self.vault, *([self.budget] if self.own_budget else [])]
        for actor in [*workers, self.optimizer, self.aggregator, *own]:
            ray.kill(actor)
        # An evaluation cut short leaves its samples table half-written; a resume replays it from the journal.
        for partial in (self.checkpoint.parent / SAMPLES).glob("_*.parquet.partial"):
            partial.unlink(missing_ok=True)


def rate_limits(spec: RuntimeSpec) -> dict[str, tuple[float | None, float | None]]:
    """(rpm, tpm) per endpoint with a limit, for the RateBudget; every role or model on it shares it."""
    limits = {}
    for name, model in spec.models.items():
        if model.rpm or model.tpm:
            limits[spec.endpoints[name]] = (model.rpm, model.tpm)
    return limits


def runtime_spec(config: RunConfig, workflow: Workflow, metric: Metric, models: dict[str, ModelConfig],
                 endpoints: dict[str, str]) -> RuntimeSpec:
    spec = RuntimeSpec(config=ActorSettings.of(config), workflow=workflow, metric=metric, models=models,
                       endpoints=endpoints,
                       journal_path=str(Path(config.journal_path).resolve()),
                       py_modules=upload_code(code_to_ship([type(workflow), metric.fn])))
    Path(spec.journal_path).parent.mkdir(parents=True, exist_ok=True)
    return spec


@contextmanager
def distributed_run(config: RunConfig, address: str | None = None, budget: Any = None,
                    local: LocalModelServer | None = None, workflow: Workflow | None = None,
                    metric: Metric | None = None, checkpoint: Path | None = None) -> Iterator[DistributedRun]:
    """Connect (or start Ray), resolve the models (starting the local one unless given), start the actors.

    The workflow and metric are the config's unless given (a user's objects, from raygrad.optimize).
    `budget`: a RateBudget actor shared with other runs (a sweep's); by default the run has its own.
    """
    if workflow is None or metric is None:
        workflow, metric = build_workflow(config.workflow, config.data)
    connect(address or config.runtime.address)
    with resolved_models(config.role_models(), local=local) as (models, endpoints):
        spec = runtime_spec(config, workflow, metric, models, endpoints)
        run = DistributedRun(spec, checkpoint or (config.run_dir / CHECKPOINT).resolve(), budget)
        try:
            yield run
        finally:
            run.shutdown()
