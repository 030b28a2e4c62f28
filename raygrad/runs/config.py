"""Run configuration: the YAML a user writes, as pydantic models, with errors that name the bad field.

A RunConfig composes the sections each layer owns (ModelConfig from llm/, TrainerConfig from optim/)
with the ones that only make sense for a run: workflow, data, runtime, output.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from raygrad.data.remote import check_uri, is_uri
from raygrad.errors import ConfigError
from raygrad.llm.models import ROLES, ModelConfig, Strict
from raygrad.optim.metrics import EVALS
from raygrad.optim.settings import TrainerConfig
from raygrad.runs.rundir import CONFIG, JOURNAL, save_atomically
from raygrad.runs.tracking import TrackingConfig

BUILTIN_METRICS = tuple(EVALS)

__all__ = ["ROLES", "ConfigError", "DataConfig", "GeneratorConfig", "ModelConfig", "RunConfig", "RuntimeConfig",
           "TrainerConfig", "WorkflowConfig", "load_config", "read_yaml_mapping"]


class GeneratorConfig(Strict):
    """A built-in dataset: seeded object-counting questions or things to name the kind of (item_kind), or the
    questions shipped with raygrad (40 two-hop questions for multihop_qa and react_agent, 60 TREC-style
    questions for trec)."""

    name: Literal["object_count", "item_kind", "multihop_qa", "trec"] = "object_count"
    size: int = Field(250, ge=1)
    seed: int = 0


def _quoted_range(value: Any) -> Any:
    """YAML reads an unquoted `6:10` as the base-60 number 370: say so, instead of "not a valid string"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        example = f"{int(value) // 60}:{int(value) % 60}" if value >= 60 else "start:end"
        raise ValueError(f"YAML read this range as the number {value} (to YAML an unquoted a:b is a base-60 "
                         f'number); quote it, e.g. "{example}"')
    return value


class DataConfig(Strict):
    """A dataset file (JSON/JSONL/CSV/Parquet) or a seeded generator, and its splits."""

    path: str | None = None
    format: Literal["json", "jsonl", "csv", "parquet"] | None = None
    input_field: str = Field("input", description="the input field, passed to the workflow's forward() as its argument")
    input_fields: list[str] | None = Field(None, min_length=1, description="several input fields, passed to "
                                           "forward() as keyword arguments (instead of input_field)")
    target_field: str = Field("target", description="the target: any JSON value (a label, a list, an object)")
    generator: GeneratorConfig | None = None
    shards: bool = Field(False, description="read a Parquet/JSONL file a shard at a time on the workers, "
                                            "never all on the driver (for large datasets)")
    splits: dict[str, Annotated[str, BeforeValidator(_quoted_range)]] = Field(
        default_factory=lambda: {"train": "0:50", "val": "50:150", "test": "150:"})
    skip_bad_rows: bool = Field(False, description="leave out rows that cannot be used (each listed in the run's "
                                                   "skipped_rows.json; with shards, as the workers meet them) "
                                                   "instead of stopping at the first; other rows keep their splits")
    allow_overlap: bool = Field(False, description="let splits share rows (an error otherwise: a prompt chosen on "
                                                   "rows it is then tested on scores too well)")

    @property
    def inputs(self) -> str | list[str]:
        """What Example readers take: one field (positional) or a list (keyword arguments)."""
        return self.input_fields if self.input_fields is not None else self.input_field

    @field_validator("path")
    @classmethod
    def _no_credentials(cls, path: str | None) -> str | None:
        if path is not None and is_uri(path):
            check_uri(path, "data.path")
        return path

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.path is None and self.generator is None:
            self.generator = GeneratorConfig()
        if self.path is not None and self.generator is not None:
            raise ValueError("give either data.path or data.generator, not both")
        return self


class WorkflowConfig(Strict):
    """A built-in workflow by `name`, or a user's own by import path: `{class: "my_pkg.module:MyWorkflow",
    args: {...}}`. `eval` is a built-in metric's name or a function's import path."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: Literal["generic", "object_count", "item_kind", "trec", "multihop_qa", "react_agent"] | None = None
    class_: str | None = Field(None, alias="class", pattern=r"^[\w.]+:[\w.]+$",
                               description="a Workflow subclass, 'my_pkg.module:MyWorkflow'")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the class's constructor")
    instruction: str | None = None
    output_format: str | None = None
    eval: str | None = Field(None, description=f"a built-in metric ({', '.join(BUILTIN_METRICS)}) or a function "
                                               "of (prediction, example), 'my_pkg.metrics:score'")
    corpus: str | None = Field(None, description="passages (JSONL of id, title, text) that multihop_qa and react_agent "
                                                 "search; default: the small corpus shipped with raygrad")
    search_path: list[str] = Field(default_factory=list, description="folders searched first for `class` and `eval` "
                                                                     "modules; the config file's folder when loaded")

    @model_validator(mode="after")
    def _one_workflow(self) -> "WorkflowConfig":
        if self.name is not None and self.class_ is not None:
            raise ValueError("give either workflow.name (a built-in) or workflow.class (your own), not both")
        if self.class_ is None:
            self.name = self.name or "object_count"
            if self.args:
                raise ValueError("args: only a workflow given by `class` takes args")
        elif self.instruction is not None or self.output_format is not None or self.corpus is not None:
            raise ValueError("instruction, output_format and corpus are for built-in workflows; pass your "
                             "class's own settings in workflow.args")
        if self.eval is not None and self.eval not in BUILTIN_METRICS and ":" not in self.eval:
            raise ValueError(f"eval: {self.eval!r} is neither a built-in metric ({', '.join(BUILTIN_METRICS)}) nor "
                             "an import path like 'my_pkg.metrics:score'")
        if self.corpus is not None and self.name not in ("multihop_qa", "react_agent"):
            raise ValueError(f"corpus: workflow {self.name} searches no corpus (multihop_qa and react_agent do)")
        return self

    @property
    def label(self) -> str:
        """The built-in's name or the class's import path."""
        return self.class_ or self.name or ""


class RuntimeConfig(Strict):
    """How a run uses Ray. `models.<role>.max_in_flight` is per worker."""

    workers: int = Field(2, ge=1, description="ForwardWorker actors")
    cpus_per_worker: float = Field(0.5, gt=0, description="async workers mostly wait on HTTP")
    shards_per_worker: int = Field(2, ge=1, description="shards one worker runs at once")
    address: str | None = Field(None, description="Ray cluster; else $RAY_ADDRESS, else a local instance")
    niceness: int = Field(0, ge=0, le=19, description="OS niceness of raygrad's actors. Ray starts its workers at 15, "
                                                        "below every other process of a node, so any busy process "
                                                        "there delays their sends; 0 is a plain process's")


class RunConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.=-]+$",
                      description="the run directory's name under output_dir: letters, digits and _ . = -")
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="the roles task, backward and optimizer, "
                                           "and models that LLMCalls name (LLMCall(..., model='router'))")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    output_dir: str = "runs"
    storage: str | None = Field(None, description="a pyarrow filesystem URI or path (s3://bucket/prefix, gs://..., "
                                                  "file:///...) the run's checkpoint and a snapshot of its call "
                                                  "journal are copied to after every step, and its results at the "
                                                  "end; a run missing its local directory resumes from there")
    journal: str | None = Field(None, description="call journal (SQLite), relative to the run's directory and inside "
                                                  "output_dir; default <output_dir>/<name>/journal.sqlite")
    samples_table: bool = Field(True, description="write every evaluated sample to <run dir>/samples/ (Parquet)")
    reply_text: bool = Field(False, description="include reply text in calls.parquet")
    tracking: TrackingConfig | None = Field(None, description="log the run to an experiment tracker: "
                                            "{mlflow: {uri: ..., experiment: ...}}")
    if_changed: Literal["refuse", "restart", "resume"] = Field(
        "refuse", exclude=True, description="a run directory whose setup (start values, workflow, data, models) "
        "differs from this config's: refuse (the default), restart the run, or resume it anyway; never saved")

    def model_for(self, role: str) -> ModelConfig:
        """The endpoint of a role. A role left out uses the task model (a hosted task model never silently
        hands the backward engine or the optimizer to the embedded 135M model); with no task model either,
        the embedded local model."""
        return self.models.get(role) or self.models.get("task") or ModelConfig()  # type: ignore[call-overload]

    def role_models(self) -> dict[str, ModelConfig]:
        """Every role's endpoint (the embedded local model for roles left out), and every named model."""
        return {**{role: self.model_for(role) for role in ROLES}, **self.models}

    @model_validator(mode="after")
    def _model_names(self) -> "RunConfig":
        if self.storage is not None:
            check_uri(self.storage, "storage")
        if self.name in (".", ".."):
            raise ValueError(f"name: {self.name!r} is not a folder of output_dir of its own")
        if self.journal is not None:
            base = os.path.abspath(self.output_dir)
            if os.path.commonpath([base, os.path.abspath(self.journal_path)]) != base:
                raise ValueError(f"journal: {self.journal!r} leaves output_dir ({self.output_dir})")
        for name in self.models:
            if not name.isidentifier():
                raise ValueError(f"models.{name}: a model's name must be an identifier (as in LLMCall(model=...))")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def journal_path(self) -> Path:
        return Path(os.path.join(self.run_dir, self.journal)) if self.journal else self.run_dir / JOURNAL


def check_keys(config: RunConfig, source: str | os.PathLike | None = None) -> None:
    """Every API key variable a run needs is set: checked before Ray starts or any call is made."""
    for name, model in config.role_models().items():
        try:
            model.api_key()
        except ConfigError as err:
            raise ConfigError(f"{source or 'config'}: models.{name}: {err}") from None


def write_config(config: RunConfig, directory: Path) -> None:
    """The run as expanded, as `config.yaml` in its directory: what `raygrad resume DIR` reads back."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = json.loads(config.model_dump_json(exclude_defaults=True, by_alias=True))
    save_atomically(directory / CONFIG, yaml.safe_dump(raw, sort_keys=False))


def field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file's top-level mapping (empty file: {}); ConfigError naming the file otherwise."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a {what} file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:  # its message spans lines (a context, a caret): one line, where and what
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(raw).__name__}")
    return raw


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate a YAML run config; raise ConfigError naming the file and field."""
    path = Path(path)
    raw = read_yaml_mapping(path, "config")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: {problems}") from None
    # Output paths are the working directory's, fixed now: a Ray job's driver may lose its cwd later.
    config.output_dir = str(Path(config.output_dir).absolute())
    return resolve_data_path(config, path)


def resolve_data_path(config: RunConfig, source: Path) -> RunConfig:
    """Data, corpus and code paths are relative to the config file, so a config travels with its data and code."""
    def beside_source(path: str | None) -> str | None:
        if path is None or is_uri(path) or Path(path).is_absolute():
            return path  # a URI is read where it lives
        return str((source.parent / path).resolve())

    config.data.path = beside_source(config.data.path)
    config.workflow.corpus = beside_source(config.workflow.corpus)
    workflow = config.workflow
    if not workflow.search_path and (workflow.class_ or ":" in (workflow.eval or "")):  # found beside the config first
        workflow.search_path = [str(source.parent.resolve())]
    return config
