"""Experiment tracking: each raygrad run logged as one MLflow run (nested under its sweep's).

The config as params; per step the scores and, per role, the calls, tokens and dollars spent in it as
metrics; at the end every candidate as a table, the best values and the HTML report as artifacts.
The MLflow run's id is kept in the run directory (`tracking.json`), so a resumed run goes on logging
into the same MLflow run. Logging goes through an `MlflowClient` for the configured URI: no global
MLflow state (active run, tracking URI) is touched. MLflow is an optional extra (`raygrad[tracking]`).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from raygrad.errors import MissingExtra
from raygrad.llm.models import ROLES, Strict
from raygrad.optim.events import Started, StepEnded
from raygrad.runs.progress import RunEvent
from raygrad.runs.rundir import save_atomically

TRACKING = "tracking.json"  # in a run's (and a sweep's) directory: the MLflow run it logs into


class MlflowSettings(Strict):
    uri: str = Field(description="the tracking server (http://host:5000) or store (file:/path, sqlite:///path)")
    experiment: str = "raygrad"


class TrackingConfig(Strict):
    mlflow: MlflowSettings | None = None
    parent_run_id: str | None = Field(None, exclude=True, description="set by a sweep: its own MLflow run")


def start_tracking(tracking: TrackingConfig | None, run_dir: Path, name: str, params: dict[str, Any]
                   ) -> RunTracker | None:
    """The tracker of a run whose config asks for one (its MLflow run created, or found again)."""
    if tracking is None or tracking.mlflow is None:
        return None
    return RunTracker(MlflowRun(tracking.mlflow, run_dir, name, params, tracking.parent_run_id))


def _client(settings: MlflowSettings) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtra("tracking.mlflow needs MLflow, which is not installed: pip install 'raygrad[tracking]'"
                           ) from None
    return MlflowClient(tracking_uri=settings.uri)


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """A config as MLflow params: dotted keys, values as text (MLflow keeps 6,000 characters of each)."""
    if isinstance(value, dict):
        found: dict[str, str] = {}
        for key, item in value.items():
            found.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: json.dumps(value)[:6000] if not isinstance(value, str) else value[:6000]}


class MlflowRun:
    """The MLflow run of one raygrad run (or of a sweep): created once, found again from `tracking.json`."""

    def __init__(self, settings: MlflowSettings, folder: Path, name: str, params: dict[str, Any],
                 parent_run_id: str | None = None):
        from mlflow.entities import Param

        self.client, self.folder = _client(settings), folder
        saved = folder / TRACKING
        if saved.exists():
            self.run_id = json.loads(saved.read_text())["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(settings.experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(settings.experiment)
        tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
        self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        folder.mkdir(parents=True, exist_ok=True)
        save_atomically(saved, json.dumps({"run_id": self.run_id, "uri": settings.uri}))
        flat = list(_flat(params).items())
        for start in range(0, len(flat), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat[start:start + 100]])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class RunTracker:
    """What a raygrad run logs while it works: per step, its scores and spending; at the end, the rest."""

    def __init__(self, mlflow_run: MlflowRun):
        self.mlflow = mlflow_run
        self._spent: dict[str, dict[str, float]] = {}  # per role, the running totals at the last step logged

    def observe(self, events: list[RunEvent], usage: Any) -> None:
        for event in events:
            if isinstance(event, Started):
                self.mlflow.log_metrics({"best_val": event.best_val, "initial_val": event.initial_val}, event.step)
            elif isinstance(event, StepEnded):
                metrics = {"best_val": event.best_val}
                for role, spent in event.usage.items():
                    totals = {"calls": spent.calls, "tokens": spent.prompt_tokens + spent.completion_tokens,
                              "dollars": spent.cost}
                    before = self._spent.get(role, {})
                    metrics.update({f"{role}_{name}": value - before.get(name, 0.0) for name, value in totals.items()})
                    self._spent[role] = totals
                self.mlflow.log_metrics(metrics, event.step)

    @contextmanager
    def ended_on_error(self) -> Iterator[None]:
        """An exception out of the run ends its MLflow run as FAILED (KILLED for Ctrl-C); a resume reopens it."""
        try:
            yield
        except BaseException as err:
            self.mlflow.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise

    def finish(self, result: Any, candidates: list[dict], report_dir: Path | None) -> None:
        final = {"initial_val": result.initial_val, "best_val": result.best_val}
        final.update({f"test_{when}": value for when, value in (("before", result.test_before),
                                                               ("after", result.test_after)) if value is not None})
        final.update({f"{role}_calls_total": result.usage[role].calls for role in ROLES if role in result.usage})
        final["dollars_total"] = result.cost
        self.mlflow.log_metrics(final, result.steps)
        client, run_id = self.mlflow.client, self.mlflow.run_id
        client.log_dict(run_id, result.values, "prompts.json")
        columns = list(candidates[0]) if candidates else ["step", "parameter", "value", "accepted", "reason"]
        client.log_table(run_id, {c: [row.get(c) for row in candidates] for c in columns}, "candidates.json")
        if report_dir is not None and report_dir.exists():
            client.log_artifacts(run_id, str(report_dir), "report")
        self.mlflow.end("FINISHED" if not result.stopped else "KILLED")


def start_sweep_tracking(sweep_dir: Path, name: str, params: dict[str, Any], runs: list[Any]) -> MlflowRun | None:
    """A sweep's own MLflow run, the parent of its runs' (each `runs` item a config whose tracking asks
    for MLflow, which is told the parent's id); None when no run tracks."""
    tracked = [config.tracking for config in runs if config.tracking is not None and config.tracking.mlflow]
    if not tracked:
        return None
    parent = MlflowRun(tracked[0].mlflow, sweep_dir, name, params)
    for tracking in tracked:
        tracking.parent_run_id = parent.run_id
    return parent
