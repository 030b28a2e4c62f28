"""One optimization run on Ray, from its config (or a user's workflow object) to its result files:
what `raygrad optimize` and each run of a sweep do (the lifecycle itself is raygrad.runs.lifecycle)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raygrad.core.workflow import Workflow
from raygrad.distributed.runtime import DistributedRun, distributed_run
from raygrad.errors import ConfigError
from raygrad.llm.local import LocalModelServer
from raygrad.optim.metrics import Metric
from raygrad.runs.assemble import build_workflow, first_unpicklable
from raygrad.runs.config import RunConfig
from raygrad.runs.lifecycle import OnProgress, Runner, Splits, StartRunner, load_splits, run_lifecycle
from raygrad.runs.results import RunResult


def ray_runner(config: RunConfig, workflow: Workflow, metric: Metric, address: str | None = None,
               budget: Any = None, local: LocalModelServer | None = None,
               on_started: Callable[[DistributedRun], None] | None = None) -> StartRunner:
    """Start a run's actors on Ray (joining `address`, $RAY_ADDRESS, or a local instance)."""
    @contextmanager
    def start(checkpoint: Path) -> Iterator[Runner]:
        with distributed_run(config, address, budget, local, workflow, metric, checkpoint) as run:
            if on_started is not None:
                on_started(run)
            yield run
    return start


def check_travels(workflow: Workflow, metric: Metric) -> None:
    """The workflow and metric can be sent to Ray's actors; else a ConfigError naming the attribute that cannot,
    before Ray starts (Ray's own error names no attribute, and comes once the actors are being made)."""
    from ray import cloudpickle  # Ray's serializer, without starting Ray

    for value, name in ((workflow, "workflow"), (metric, "metric")):
        where = first_unpicklable(value, cloudpickle.dumps, name)
        if where is not None:
            raise ConfigError(f"{name}: {where} cannot be sent to Ray's workers; create it on first use inside "
                              "forward (or leave it out in __getstate__), or run with --local (runtime='local')")


def optimize_run(config: RunConfig, address: str | None = None, budget: Any = None,
                 local: LocalModelServer | None = None, on_started: Callable[[DistributedRun], None] | None = None,
                 workflow: Workflow | None = None, metric: Metric | None = None,
                 splits: Splits | None = None, on_progress: OnProgress | None = None) -> RunResult:
    """Optimize one run on Ray, resuming from its checkpoint (local, else storage's); write its results.

    The workflow, metric and data are the config's unless given. They are built and read first, so
    a bad dataset or a workflow that cannot be built stops the run before Ray starts or any call is made.
    """
    splits = splits or load_splits(config)
    if workflow is None or metric is None:
        workflow, metric = build_workflow(config.workflow, config.data)
    check_travels(workflow, metric)
    return run_lifecycle(config, workflow, splits,
                         ray_runner(config, workflow, metric, address, budget, local, on_started), on_progress)
