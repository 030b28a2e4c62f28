"""Sweep plans: many runs from one YAML file, expanded and validated before anything runs (no Ray here).

    name: nightly
    output_dir: sweeps            # run directories: <output_dir>/<name>/<run>/ (local disk: the journal is SQLite)
    storage: s3://bucket/raygrad  # optional copy of each run's results: <storage>/<name>/<run>/
    concurrency: 4                # runs at once
    limits: {max_calls: 200000, max_cost: 50, max_wall_s: 28800}   # for the whole sweep
    base: {workflow: {name: object_count}, models: {...}, trainer: {steps: 12}}   # shared by every run
    runs:                         # each a run config merged over `base`; default: one run
      - {name: oc}
      - {name: mh, workflow: {name: multihop_qa}, data: {generator: {name: multihop_qa}}}
    grid:                         # every run once per combination (a product over dotted paths)
      trainer.seed: [0, 1]
      models.task.temperature: [0.0, 0.7]

A run directory holds `config.yaml` (the run's config as expanded), the call journal, the checkpoint
(rewritten atomically after every step), results, and `result.json` once it finished or
`error.json` if it failed. Running the sweep again skips finished runs and resumes the others.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raygrad.errors import ConfigError
from raygrad.optim.settings import SpendLimits
from raygrad.runs.config import RunConfig, field_path, load_config, read_yaml_mapping, resolve_data_path, write_config
from raygrad.runs.rundir import CONFIG, SWEEP_FILE


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: str = "sweeps"
    storage: str | None = None
    concurrency: int = Field(2, ge=1, description="runs at once")
    retries: int = Field(1, ge=0, description="times a run whose actors died (a lost node) is resumed at once")
    limits: SpendLimits = Field(default_factory=SpendLimits, description="for the whole sweep (max_wall_s: for "
                                "this invocation); per run: each run's trainer.max_* settings")
    base: dict[str, Any] = Field(default_factory=dict)
    runs: list[dict[str, Any]] = Field(default_factory=lambda: [{}])
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) / self.name


class PlannedRun(BaseModel):
    """One run of a sweep: its name, its expanded config, and where it came from (for error messages)."""

    name: str
    config: RunConfig
    origin: str

    @property
    def directory(self) -> Path:
        return self.config.run_dir


def load_sweep(path: str | Path) -> tuple[SweepConfig, list[PlannedRun]]:
    """Read a sweep file and expand its runs; every error names the file and the place in it."""
    path = Path(path)
    raw = read_yaml_mapping(path, "sweep")
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: " + "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in err.errors())) from None
    return sweep, expand(sweep, path)


def expand(sweep: SweepConfig, source: Path) -> list[PlannedRun]:
    """Every run x every grid combination, each validated as a RunConfig before anything runs."""
    keys = list(sweep.grid)
    if not sweep.runs:
        raise ConfigError(f"{source}: runs: an empty list plans no run; list a run ({{name: ...}}), or leave runs "
                          "out for one run of the base")
    for key in keys:
        if not sweep.grid[key]:
            raise ConfigError(f"{source}: grid.{key}: an empty list plans no run; give it at least one value")
    combinations = list(itertools.product(*(sweep.grid[k] for k in keys))) or [()]
    planned: list[PlannedRun] = []
    for index, overrides in enumerate(sweep.runs):
        if not isinstance(overrides, dict):
            raise ConfigError(f"{source}: runs[{index}]: must be a mapping (a run config)")
        for combination in combinations:
            raw = _merge(copy.deepcopy(sweep.base), overrides)
            origin = f"runs[{index}]"
            for key, value in zip(keys, combination):
                _set_dotted(raw, key, value, source)
            if keys:
                origin += " with " + ", ".join(f"{k}={v!r}" for k, v in zip(keys, combination))
            base_name = str(raw.get("name") or f"run{index}")
            suffix = "-".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combination))
            raw["name"] = _safe(f"{base_name}-{suffix}" if suffix else base_name)
            raw["output_dir"] = str(sweep.directory)
            if sweep.storage:
                raw["storage"] = f"{sweep.storage.rstrip('/')}/{sweep.name}/{raw['name']}"
            try:
                config = RunConfig.model_validate(raw)
            except ValidationError as err:
                problems = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in err.errors())
                raise ConfigError(f"{source}: {origin}: {problems}") from None
            resolve_data_path(config, source)
            _check_name_fits(config, origin, source)
            planned.append(PlannedRun(name=config.name, config=config, origin=origin))
    seen: dict[str, PlannedRun] = {}
    for run in planned:
        if run.name in seen:
            first = seen[run.name]
            fix = ("give those grid values names that differ in letters, digits or . _ = - (other characters "
                   "become _)") if first.origin.split(" ")[0] == run.origin.split(" ")[0] \
                else "give each run in `runs` its own name"
            raise ConfigError(f"{source}: {first.origin} and {run.origin} are both named {run.name!r}: {fix}")
        seen[run.name] = run
    return planned


def _check_name_fits(config: RunConfig, origin: str, source: Path) -> None:
    """A run's name is a directory's: one the file system cannot create fails only once Ray has started."""
    limit = _name_max(Path(config.output_dir))
    if len(config.name.encode()) > limit:
        raise ConfigError(f"{source}: {origin}: its run name is {len(config.name.encode())} bytes and the file system "
                          f"takes {limit} ({config.name[:60]}...); give the run a shorter name, or shorter grid values")


def _name_max(directory: Path) -> int:
    """The longest file name the file system under `directory` takes (its nearest existing parent's)."""
    for folder in [directory, *directory.parents]:
        if folder.exists():
            try:
                return os.pathconf(folder, "PC_NAME_MAX")
            except (OSError, ValueError, AttributeError):
                break
    return 255


def _merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _set_dotted(raw: dict, key: str, value: Any, source: Path) -> None:
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: grid.{key}: {part!r} is not a section")
    node[last] = copy.deepcopy(value)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


# -- a sweep's directory ---------------------------------------------------------------------------
def write_run_config(run: PlannedRun) -> None:
    write_config(run.config, run.directory)


def write_sweep_file(sweep: SweepConfig, planned: list[PlannedRun]) -> None:
    """The sweep's settings and its runs' names, so `raygrad resume DIR` needs nothing else."""
    sweep.directory.mkdir(parents=True, exist_ok=True)
    record = {"sweep": sweep.model_dump(mode="json"), "runs": [p.name for p in planned]}
    (sweep.directory / SWEEP_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")


def load_sweep_dir(directory: Path) -> tuple[SweepConfig, list[PlannedRun]]:
    """A sweep from its directory: the settings it ran with, each run from its own config.yaml."""
    try:
        record = json.loads((directory / SWEEP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{directory}: neither a sweep directory ({SWEEP_FILE}) nor a run directory "
                          f"({CONFIG})") from None
    sweep = SweepConfig.model_validate(record["sweep"])
    planned = []
    for name in record["runs"]:
        config = load_config(directory / name / CONFIG)
        config.output_dir = str(directory)  # the directory may have moved since
        planned.append(PlannedRun(name=name, config=config, origin=name))
    sweep.output_dir = str(directory.parent)
    sweep.name = directory.name
    return sweep, planned

