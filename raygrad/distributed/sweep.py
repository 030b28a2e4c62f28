"""A sweep on one Ray cluster: runs side by side, one shared rate budget, failures kept to their run.

Each run is an ordinary run (its own optimizer, aggregator and workers); the runs' actors lease from
one RateBudget, where runs on the same endpoint get max-min fair shares (raygrad.distributed.ledger).
The driver polls each running optimizer for progress events and usage, renders them, and enforces
the sweep's limits by telling every running optimizer to stop (a step in progress rolls back to its
checkpoint, so the same command later continues it).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import Any, TextIO

import ray
from pydantic import BaseModel

from raygrad.core.workflow import Workflow
from raygrad.distributed.actors import RateBudget
from raygrad.distributed.dispatch import process_options
from raygrad.distributed.optimize import check_travels, optimize_run
from raygrad.distributed.runtime import DistributedRun, connect, on_driver_node
from raygrad.errors import ConfigError
from raygrad.llm.client import BudgetExhausted, Usage
from raygrad.llm.endpoints import resolved_models
from raygrad.llm.local import LocalModelServer
from raygrad.optim.metrics import Metric
from raygrad.optim.state import TrainState
from raygrad.runs.assemble import build_workflow, check_models, check_workflow
from raygrad.runs.owner import owned
from raygrad.runs.progress import ProgressView
from raygrad.runs.results import RunResult, read_result
from raygrad.runs.rundir import CHECKPOINT, ERROR, record_failure, resume_command, run_status
from raygrad.runs.sweep_plan import PlannedRun, SweepConfig, write_run_config
from raygrad.runs.tracking import start_sweep_tracking


class RunOutcome(BaseModel):
    name: str
    status: str  # finished, skipped (finished before), stopped (a limit), failed
    error: str | None = None
    result: RunResult | None = None


def run_sweep(sweep: SweepConfig, planned: list[PlannedRun], out: TextIO, address: str | None = None,
              interval_s: float = 30.0, live: bool | None = None) -> list[RunOutcome]:
    """Run every unfinished run of the sweep (finished ones are skipped); returns each run's outcome."""
    built = {}  # every key variable, workflow and metric is checked before anything starts; built once
    for run in planned:
        for name, model in run.config.role_models().items():
            try:
                model.api_key()
            except ConfigError as err:
                raise ConfigError(f"{run.origin} ({run.name}), models.{name}: {err}") from None
        try:
            built[run.name] = workflow, metric = build_workflow(run.config.workflow, run.config.data)
            check_models(workflow, run.config.role_models())
            check_workflow(workflow, run.config.trainer.parameters)
            check_travels(workflow, metric)
        except ConfigError as err:
            raise ConfigError(f"{run.origin} ({run.name}), {err}") from None
    with owned(sweep.directory):  # one driver per sweep: a resubmitted sweep stops while the first still runs
        return _run_sweep(sweep, planned, out, address, interval_s, live, built)


def _run_sweep(sweep: SweepConfig, planned: list[PlannedRun], out: TextIO, address: str | None, interval_s: float,
               live: bool | None, built: dict[str, tuple[Workflow, Metric]]) -> list[RunOutcome]:
    parent = start_sweep_tracking(sweep.directory, sweep.name, sweep.model_dump(mode="json"),
                                  [run.config for run in planned])
    connect(address)
    view = ProgressView([r.name for r in planned], out, interval_s, live)
    with ExitStack() as stack:
        local = stack.enter_context(LocalModelServer()) if any(
            model.is_local for r in planned for model in r.config.role_models().values()) else None
        budget = RateBudget.options(num_cpus=0, **on_driver_node(), **process_options(
            min(run.config.runtime.niceness for run in planned))).remote(_shared_limits(planned, local))
        stack.callback(ray.kill, budget)  # now, not whenever its last handle is collected
        runner = _SweepRunner(sweep, view, budget, local, built)
        outcomes = runner.run_all(planned)
    if parent is not None:
        parent.end("FINISHED" if all(o.status in ("finished", "skipped") for o in outcomes) else "FAILED")
    return outcomes


class _SweepRunner:
    def __init__(self, sweep: SweepConfig, view: ProgressView, budget: Any, local: LocalModelServer | None,
                 built: dict[str, tuple[Workflow, Metric]]):
        self.sweep, self.view, self.budget, self.local = sweep, view, budget, local
        self.built = built  # each run's workflow and metric, built when the sweep was checked
        self.active: dict[str, DistributedRun] = {}
        self.lock = threading.Lock()
        self.stop_reason: str | None = None
        self.started = time.monotonic()

    def run_all(self, planned: list[PlannedRun]) -> list[RunOutcome]:
        outcomes: dict[str, RunOutcome] = {}
        todo = []
        for run in planned:
            write_run_config(run)
            if run_status(run.directory) == "finished":
                result = read_result(run.directory)
                outcomes[run.name] = RunOutcome(name=run.name, status="skipped", result=result)
                shown = self.view.runs[run.name]
                shown.spend(result.usage)
                shown.step = shown.steps = result.steps
                shown.initial_val, shown.best_val = result.initial_val, result.best_val
                self.view.ended(run.name, "skipped", "finished before")
            else:
                self.view.runs[run.name].spend(load_usage(run))  # sweep limits count earlier sessions too
                todo.append(run)
        with ThreadPoolExecutor(max_workers=self.sweep.concurrency, thread_name_prefix="run") as pool:
            pending: dict[Future, PlannedRun] = {pool.submit(self._run_one, run): run for run in todo}
            try:
                while pending:
                    done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        run = pending.pop(future)
                        outcomes[run.name] = future.result()
                        outcome = outcomes[run.name]
                        self.view.ended(run.name, outcome.status, outcome.error or "")
                    self._poll()
                    self._enforce_limits()
                    self.view.render()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every run stops now; their paid calls are journaled
                self._abandon()
                raise
        self.view.render(force=True)
        return [outcomes[run.name] for run in planned]

    # -- one run, in a thread ------------------------------------------------------------------
    def _run_one(self, run: PlannedRun) -> RunOutcome:
        for attempt in range(self.sweep.retries + 1):
            if self.stop_reason:
                return RunOutcome(name=run.name, status="stopped", error=f"not started: {self.stop_reason}")
            self.view.runs[run.name].status = "running"
            try:
                workflow, metric = self.built[run.name]
                result = optimize_run(run.config, budget=self.budget, local=self.local, workflow=workflow,
                                      metric=metric, on_started=lambda started: self._register(run.name, started))
            except ray.exceptions.RayActorError as err:
                if self.stop_reason:  # its actors were killed to stop it (the sweep was interrupted): not failed
                    (run.directory / ERROR).unlink(missing_ok=True)
                    return RunOutcome(name=run.name, status="stopped", error=self.stop_reason)
                if attempt < self.sweep.retries:  # its node was lost: resume from the checkpoint at once
                    self.view.runs[run.name].note = f"actors lost, resuming (attempt {attempt + 2})"
                    continue
                return self._failed(run, err)
            except BudgetExhausted as err:  # a limit reached before its first step could start
                return RunOutcome(name=run.name, status="stopped", error=str(err))
            except Exception as err:  # one bad run must not sink the sweep
                return self._failed(run, err)
            finally:
                with self.lock:
                    self.active.pop(run.name, None)
            (run.directory / ERROR).unlink(missing_ok=True)
            self.view.runs[run.name].spend(result.usage)
            return RunOutcome(name=run.name, status="stopped" if result.stopped else "finished",
                              error=result.stopped, result=result)
        raise AssertionError("unreachable")

    def _register(self, name: str, run: DistributedRun) -> None:
        with self.lock:
            self.active[name] = run
            if self.stop_reason:
                run.optimizer.stop.remote(self.stop_reason)

    def _failed(self, run: PlannedRun, err: BaseException) -> RunOutcome:
        first_line = record_failure(run.directory, err)
        return RunOutcome(name=run.name, status="failed", error=f"{first_line}; to resume: "
                                                                 f"{resume_command(run.directory)}")

    # -- the driver's loop ------------------------------------------------------------------------
    def _poll(self) -> None:
        with self.lock:
            active = dict(self.active)
        refs = {name: run.optimizer.progress.remote() for name, run in active.items()}
        for name, ref in refs.items():
            try:
                events, usage = ray.get(ref, timeout=10)
            except (ray.exceptions.RayError, TimeoutError):
                continue  # a lost actor: its run's thread sees the error and resumes or fails it
            self.view.update(name, events, usage)

    def _abandon(self) -> None:
        """Stop every run at once (the pool would otherwise wait for each to finish): no new one starts, and
        the running ones' actors are killed, which ends their threads."""
        with self.lock:
            self.stop_reason = self.stop_reason or "interrupted"
            active = list(self.active.values())
        for run in active:
            run.shutdown()

    def _enforce_limits(self) -> None:
        if self.stop_reason:
            return
        totals = self.view.totals()
        reason = self.sweep.limits.reached(totals.calls, totals.tokens, totals.cost, time.monotonic() - self.started,
                                           scope="sweep ")
        if reason:
            with self.lock:
                self.stop_reason = reason
                for run in self.active.values():
                    run.optimizer.stop.remote(reason)


def _shared_limits(planned: list[PlannedRun], local: LocalModelServer | None) -> dict[str, tuple]:
    """One (rpm, tpm) per endpoint over every run; two runs that disagree about one are an error."""
    limits: dict[str, tuple] = {}
    where: dict[str, str] = {}
    for run in planned:
        with resolved_models(run.config.role_models(), local=local) as (models, endpoints):
            for name, model in models.items():
                endpoint = endpoints[name]
                if not (model.rpm or model.tpm):
                    continue
                if endpoint in limits and limits[endpoint] != (model.rpm, model.tpm):
                    raise ConfigError(f"{run.origin} ({run.name}), models.{name}: rpm/tpm {model.rpm}/{model.tpm} "
                                      f"differ from {where[endpoint]}'s {limits[endpoint]} for the same endpoint")
                limits[endpoint], where[endpoint] = (model.rpm, model.tpm), run.name
    return limits


def load_usage(run: PlannedRun) -> dict[str, Usage]:
    """What a run spent in earlier sessions (its checkpoint), for sweep totals."""
    checkpoint = run.directory / CHECKPOINT
    if not checkpoint.exists():
        return {}
    return TrainState.model_validate_json(checkpoint.read_text(encoding="utf-8")).usage
