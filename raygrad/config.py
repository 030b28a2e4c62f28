"""Run configuration: pydantic models loaded from YAML, with errors that name the bad field."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROLES = ("task", "backward", "optimizer")


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message names the place."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """One LLM endpoint for one role. `model=None` means the embedded local model."""

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    rpm: float | None = Field(None, gt=0, description="requests per minute allowed by the provider")
    tpm: float | None = Field(None, gt=0, description="tokens per minute allowed by the provider")
    max_in_flight: int = Field(32, ge=1)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    timeout_s: float = Field(60.0, gt=0, description="one HTTP attempt")
    retry_deadline_s: float = Field(300.0, gt=0, description="give up retrying a call after this long")
    extra: dict[str, Any] = Field(default_factory=dict, description="further litellm sampling params")
    input_cost_per_token: float | None = Field(None, ge=0, description="price for models litellm has no price for")
    output_cost_per_token: float | None = Field(None, ge=0)
    structured_output: Literal["json_schema", "json_object"] = Field(
        "json_schema", description="how to ask for JSON: OpenAI's json_schema, or json_object with a schema "
                                   "(llama.cpp, some OpenAI-compatible servers)")

    @field_validator("model")
    @classmethod
    def _known_provider(cls, model: str | None) -> str | None:
        if model is None:
            return None
        from raygrad.llm import import_litellm  # deferred: litellm is slow to import

        litellm = import_litellm()
        try:
            litellm.get_llm_provider(model)
        except Exception as err:  # litellm raises BadRequestError with a long text
            raise ValueError(f"litellm does not know the provider of {model!r}; "
                             "write it as 'provider/model', e.g. 'openai/gpt-4o-mini'") from err
        return model

    @property
    def is_local(self) -> bool:
        return self.model is None

    def api_key(self) -> str | None:
        """The key, read from the environment at call time; never stored."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(f"environment variable {self.api_key_env} (api_key_env) is not set")
        return value

    def sampling_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.temperature}
        for name in ("max_tokens", "top_p", "seed"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        params.update(self.extra)
        return params

    def pricing(self) -> dict[str, float]:
        """Custom prices for litellm's cost calculation; not sampling, so kept out of journal keys."""
        return {name: getattr(self, name) for name in ("input_cost_per_token", "output_cost_per_token")
                if getattr(self, name) is not None}


class GeneratorConfig(_Strict):
    """A built-in dataset: seeded object-counting questions, or the questions shipped with raygrad
    (40 two-hop questions for multihop_qa and react_agent, 60 TREC-style questions for trec)."""

    name: Literal["object_count", "multihop_qa", "trec"] = "object_count"
    size: int = Field(250, ge=1)
    seed: int = 0


class DataConfig(_Strict):
    """A dataset file (JSON/JSONL/CSV/Parquet) or a seeded generator, and its splits."""

    path: str | None = None
    format: Literal["json", "jsonl", "csv", "parquet"] | None = None
    input_field: str = "input"
    target_field: str = "target"
    generator: GeneratorConfig | None = None
    shards: bool = Field(False, description="read a Parquet/JSONL file a shard at a time on the workers, "
                                            "never all on the driver (for large datasets)")
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "0:50", "val": "50:150", "test": "150:"})
    skip_bad_rows: bool = Field(False, description="leave out rows that cannot be used (each listed in the run's "
                                                   "skipped_rows.json) instead of stopping at the first")

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.skip_bad_rows and self.shards:
            raise ValueError("skip_bad_rows reads the whole file on the driver; it cannot be used with shards")
        if self.path is None and self.generator is None:
            self.generator = GeneratorConfig()
        if self.path is not None and self.generator is not None:
            raise ValueError("give either data.path or data.generator, not both")
        return self


class WorkflowConfig(_Strict):
    name: Literal["generic", "object_count", "trec", "multihop_qa", "react_agent"] = "object_count"
    instruction: str | None = None
    output_format: str | None = None
    eval: Literal["exact", "number", "contains", "f1"] | None = None
    corpus: str | None = Field(None, description="passages (JSONL of id, title, text) that multihop_qa and react_agent "
                                                 "search; default: the small corpus shipped with raygrad")

    @model_validator(mode="after")
    def _corpus_is_searched(self) -> "WorkflowConfig":
        if self.corpus is not None and self.name not in ("multihop_qa", "react_agent"):
            raise ValueError(f"corpus: workflow {self.name} searches no corpus (multihop_qa and react_agent do)")
        return self


class TrainerConfig(_Strict):
    steps: int = Field(12, ge=0)
    batch_size: int = Field(4, ge=1)
    proposals: int = Field(5, ge=1, description="candidates asked of the optimizer per parameter per step")
    error_threshold: float = Field(1.0, description="a sample scoring below this is an error sample")
    seed: int = 0
    max_gradient_samples: int = Field(8, ge=1)
    max_feedback_chars: int = Field(600, ge=50)
    history_size: int = Field(3, ge=0, description="best past values shown to the optimizer")
    validation_chunk: int = Field(16, ge=1, description="validation samples per shard sent to a worker")
    early_rejection: bool = Field(True, description="stop a candidate's stage 2 once it cannot beat the best; "
                                                    "off, every candidate is scored on the whole validation set")
    demos_per_candidate: int = Field(3, ge=1, description="few-shot demos in one candidate of a demos parameter")
    demo_pool_size: int = Field(64, ge=1, description="correct calls kept per demos parameter to draw demos from")
    max_calls: int | None = Field(None, ge=1, description="stop once this many LLM calls were paid for")
    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)
    max_wall_s: float | None = Field(None, gt=0, description="stop once fit() has run this long, over all sessions")


class RuntimeConfig(_Strict):
    """How a run uses Ray. `models.<role>.max_in_flight` is per worker."""

    workers: int = Field(2, ge=1, description="ForwardWorker actors")
    cpus_per_worker: float = Field(0.5, gt=0, description="async workers mostly wait on HTTP")
    shards_per_worker: int = Field(2, ge=1, description="shards one worker runs at once")
    address: str | None = Field(None, description="Ray cluster; else $RAY_ADDRESS, else a local instance")


class RunConfig(_Strict):
    name: str = "run"
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    models: dict[Literal["task", "backward", "optimizer"], ModelConfig] = Field(default_factory=dict)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    output_dir: str = "runs"
    storage: str | None = Field(None, description="a pyarrow filesystem URI or path (s3://bucket/prefix, gs://..., "
                                                  "file:///...) the run's checkpoint and prompts are copied to "
                                                  "after every step; a run missing its local directory resumes "
                                                  "from there")
    journal: str | None = Field(None, description="call journal (SQLite); default <output_dir>/<name>/journal.sqlite")
    samples_table: bool = Field(True, description="write every evaluated sample to <run dir>/samples/ (Parquet)")
    reply_text: bool = Field(False, description="include reply text in calls.parquet")

    def model_for(self, role: str) -> ModelConfig:
        """The endpoint of a role; roles left out use the embedded local model."""
        return self.models.get(role) or ModelConfig()  # type: ignore[call-overload]

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else self.run_dir / "journal.sqlite"


def field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file's top-level mapping (empty file: {}); ConfigError naming the file otherwise."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
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
    return resolve_data_path(config, path)


def resolve_data_path(config: RunConfig, source: Path) -> RunConfig:
    """Data and corpus paths are relative to the config file, so a config travels with its data."""
    def beside_source(path: str | None) -> str | None:
        return path if path is None or Path(path).is_absolute() else str((source.parent / path).resolve())

    config.data.path = beside_source(config.data.path)
    config.workflow.corpus = beside_source(config.workflow.corpus)
    return config
