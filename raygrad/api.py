"""The Python API: `raygrad.optimize` and `raygrad.evaluate`, one call each.

They and the CLI are two doors to one run lifecycle (raygrad.runs.lifecycle): the same checkpoints,
journal, result files and resume, in this process (`runtime="local"`, no Ray) or on Ray.
"""
from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from raygrad.core.workflow import Workflow
from raygrad.data import Example
from raygrad.llm.client import Usage
from raygrad.llm.endpoints import role_clients
from raygrad.llm.models import ModelConfig
from raygrad.optim.evaluate import EvalReport
from raygrad.optim.evaluate import evaluate as evaluate_examples
from raygrad.optim.execution import SamplesFailed
from raygrad.optim.metrics import Metric, as_metric
from raygrad.optim.settings import TrainerConfig
from raygrad.runs.assemble import build_metric, build_workflow, check_inputs, check_models
from raygrad.runs.config import DataConfig, RunConfig, WorkflowConfig
from raygrad.runs.lifecycle import OnProgress, Splits, load_splits, local_runner, run_lifecycle
from raygrad.runs.progress import ProgressEvent, ProgressPrinter, progress_callback
from raygrad.runs.results import RunResult
from raygrad.runs.serving import ServedWorkflow
from raygrad.runs.serving import load as load_run
from raygrad.runs.summary import models_line, result_summary
from raygrad.runs.tracking import TrackingConfig

Runtime = Literal["local", "ray"]
ModelLike = ModelConfig | Mapping[str, Any] | str  # a ModelConfig, its fields, or a litellm model string


class OptimizeResult(BaseModel):
    """What `raygrad.optimize` returns: the workflow with its best values loaded, and the run's result."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    workflow: Workflow
    result: RunResult
    run_dir: Path

    @property
    def values(self) -> dict[str, str]:
        return self.result.values

    @property
    def initial_val(self) -> float:
        return self.result.initial_val

    @property
    def best_val(self) -> float:
        return self.result.best_val

    @property
    def test_before(self) -> float | None:
        return self.result.test_before

    @property
    def test_after(self) -> float | None:
        return self.result.test_after

    @property
    def usage(self) -> dict[str, Usage]:
        return self.result.usage


def optimize(workflow: Workflow, train: Iterable[Example | Mapping[str, Any]],
             val: Iterable[Example | Mapping[str, Any]], *, test: Iterable[Example | Mapping[str, Any]] | None = None,
             metric: Metric | Callable[..., Any] | str | None = None, models: Mapping[str, ModelLike] | None = None,
             trainer: TrainerConfig | Mapping[str, Any] | None = None, runtime: Runtime = "local",
             address: str | None = None, name: str = "run", output_dir: str | Path = "runs",
             storage: str | None = None, workers: int | None = None,
             if_changed: Literal["refuse", "restart", "resume"] = "refuse",
             progress: bool | Callable[[ProgressEvent], None] = True,
             tracking: TrackingConfig | Mapping[str, Any] | None = None,
             allow_overlap: bool = False) -> OptimizeResult:
    """Optimize a workflow's parameters; resumes from `output_dir/name` when that run was started before.

    Examples are `raygrad.Example`s or mappings with a `target` (an `input`, or several named inputs
    passed to `forward` as keyword arguments). `metric`: a built-in's name ("exact", "number",
    "contains", "f1"), an import path, or a function of (prediction, example) returning a score in
    [0, 1] or (score, feedback); default: the workflow's `default_eval`. `models`: per role (task,
    backward, optimizer) and per model an LLMCall names; roles left out use the task model (with no task
    model either, the embedded local model). `if_changed`: when `output_dir/name` holds a run whose
    start values, data or models differ, refuse (a ConfigError saying what changed), restart it, or
    resume it anyway. `progress`: shown as the CLI shows it (a live bar on a terminal, a line per phase
    and step elsewhere, a notebook included), then the summary; False for silence; a function to
    receive each ProgressEvent instead. `tracking`: as a config's, e.g. {"mlflow": {"uri": ..., "experiment": ...}}.
    `allow_overlap`: let val (or test) hold examples of train; refused by default, as a config's splits are.
    """
    config = RunConfig(name=name, output_dir=str(output_dir), storage=storage,
                       models={key: _model(value) for key, value in (models or {}).items()},
                       trainer=TrainerConfig.model_validate(trainer or {}) if not isinstance(trainer, TrainerConfig)
                       else trainer,
                       workflow=WorkflowConfig.model_construct(class_=_class_path(type(workflow))))
    config.if_changed = if_changed
    if tracking is not None:
        config.tracking = TrackingConfig.model_validate(tracking)
    if workers is not None:
        config.runtime.workers = workers
    splits = Splits(train=_examples(train, "train"), val=_examples(val, "val"),
                    test=_examples(test, "test") if test is not None else None)
    if not allow_overlap:
        _check_disjoint(splits)
    first = splits.train[0]
    check_inputs(workflow, DataConfig(input_fields=list(first.inputs)) if first.keywords else DataConfig())
    printer = ProgressPrinter(name, sys.stdout) if progress is True else None
    on_progress = progress_callback(name, progress) if callable(progress) else printer
    if printer is not None:
        print(models_line(config))
    try:
        result = run_optimization(config, workflow, _metric(metric, workflow), splits, runtime, address, on_progress)
    finally:
        if printer is not None:
            printer.close()
    if printer is not None:
        print("\n".join(result_summary(result, config.run_dir)))
    workflow.load_state(result.values)
    return OptimizeResult(workflow=workflow, result=result, run_dir=config.run_dir)


def evaluate(workflow: Workflow, examples: Iterable[Example | Mapping[str, Any]], *,
             metric: Metric | Callable[..., Any] | str | None = None, model: ModelLike | None = None,
             models: Mapping[str, ModelLike] | None = None, journal: str | Path | None = None,
             strict: bool = False) -> EvalReport:
    """Score a workflow on examples with its current values: `model` (or `models["task"]`) for the task
    (default: the embedded local model), `models` for the models its LLMCalls name; completed calls go to
    `journal` if given. The report's score is None when no sample completed; with `strict`, a sample that
    failed (its calls never succeeded) raises SamplesFailed instead of being reported."""
    named = {key: _model(value) for key, value in (models or {}).items()}
    if model is not None and "task" in named:
        raise ValueError("give the task model once: model=... or models={'task': ...}")
    task = {"task": _model(model) if model is not None else named.pop("task", ModelConfig())}
    check_models(workflow, {**named, **task})
    chosen = _examples(examples, "examples")
    with tempfile.TemporaryDirectory() as scratch:
        with role_clients({**named, **task}, journal or Path(scratch) / "journal.sqlite") as clients:
            report = asyncio.run(evaluate_examples(workflow, chosen, clients, _metric(metric, workflow)))
    if strict and report.failed:
        first = next(s.error for s in report.samples if s.failed)
        raise SamplesFailed(f"{report.failed} of {len(report.samples)} samples failed (the first: {first})")
    return report


def load(run_dir: str | Path, *, workflow: Workflow | None = None, models: Mapping[str, ModelLike] | None = None,
         values: str | Path | None = None) -> ServedWorkflow:
    """A run's workflow with its best values and the run's task models, ready to call from an application:
    `wf(**inputs)` from sync code, `await wf.acall(**inputs)`, `wf.batch([...])`; close it when done.
    `models` replace the run's entries (another key, another endpoint); `workflow` is the instance to
    load the values into (by default built from the run's config); `values` a prompts file instead."""
    return load_run(run_dir, workflow=workflow, values=values,
                    models={key: _model(value) for key, value in (models or {}).items()})


def optimize_config(config: RunConfig, runtime: Runtime = "ray", address: str | None = None,
                    on_progress: OnProgress | None = None) -> RunResult:
    """What `raygrad optimize CONFIG` runs: the config's workflow, metric and splits, built and read
    before anything starts, so a mistake in them stops the run before any call."""
    splits = load_splits(config)
    workflow, metric = build_workflow(config.workflow, config.data)
    return run_optimization(config, workflow, metric, splits, runtime, address, on_progress)


def run_optimization(config: RunConfig, workflow: Workflow, metric: Metric, splits: Splits, runtime: Runtime,
                     address: str | None = None, on_progress: OnProgress | None = None) -> RunResult:
    if runtime == "local":
        return run_lifecycle(config, workflow, splits, local_runner(config, workflow, metric), on_progress)
    if runtime != "ray":
        raise ValueError(f"runtime must be 'local' or 'ray', not {runtime!r}")
    from raygrad.distributed.optimize import optimize_run  # Ray is imported only for a run on Ray

    return optimize_run(config, address, workflow=workflow, metric=metric, splits=splits, on_progress=on_progress)


def _model(value: ModelLike) -> ModelConfig:
    if isinstance(value, ModelConfig):
        return value
    return ModelConfig(model=value) if isinstance(value, str) else ModelConfig.model_validate(dict(value))


def _metric(metric: Metric | Callable[..., Any] | str | None, workflow: Workflow) -> Metric:
    if metric is None:
        metric = getattr(workflow, "default_eval", "exact")
    if isinstance(metric, str):
        return build_metric(metric)
    return as_metric(metric)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _check_disjoint(splits: Splits) -> None:
    """No example of train is in val or test (same inputs and target): a score on seen examples says nothing."""
    def key(example: Example) -> str:
        return json.dumps([example.inputs, example.target], sort_keys=True, default=str)

    seen = {key(e): number for number, e in enumerate(splits.train)}
    for split in ("val", "test"):
        shared = [(number, seen[key(e)]) for number, e in enumerate(getattr(splits, split) or []) if key(e) in seen]
        if shared:
            (mine, theirs), count = shared[0], len(shared)
            raise ValueError(f"{split} shares {count} example{'s' * (count > 1)} with train ({split}[{mine}] is "
                             f"train[{theirs}]); pass allow_overlap=True if that is meant")


def _examples(rows: Iterable[Example | Mapping[str, Any]], split: str) -> list[Example]:
    """Examples from Examples or mappings of inputs and a `target`; ValueError naming the split and row."""
    examples = []
    for number, row in enumerate(rows):
        if isinstance(row, Example):
            examples.append(row)
            continue
        if not isinstance(row, Mapping) or "target" not in row:
            raise ValueError(f"{split}[{number}]: expected an Example or a mapping with a 'target', got {row!r:.80}")
        inputs = {key: value for key, value in row.items() if key not in ("target", "id")}
        if not inputs:
            raise ValueError(f"{split}[{number}]: no input fields, only a target")
        examples.append(Example(id=str(row.get("id", number)), inputs=inputs, target=row["target"],
                                keywords=list(inputs) != ["input"]))
    if not examples:
        raise ValueError(f"{split}: no examples")
    return examples
