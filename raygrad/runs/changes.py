"""What changed in a run's config since its checkpoint was written: a resume of a changed run would mix
scores of one setup with those of another, so it is refused unless the user says what to do.

Compared: the start values (the checkpoint's first value of each parameter), the workflow section
(class, args, built-in and its texts, metric), the data section, and each model's identity and
sampling settings. Not compared: what may change between sessions of one run (trainer steps and
budgets, rate limits, runtime, storage).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raygrad.errors import ConfigError, DamagedFile
from raygrad.runs.config import RunConfig, read_yaml_mapping
from raygrad.runs.rundir import CHECKPOINT, CONFIG

MODEL_FIELDS = ("model", "api_base", "temperature", "max_tokens", "top_p", "seed", "extra", "structured_output")


def _essence(raw: dict[str, Any]) -> dict[str, Any]:
    models = {name: {k: v for k, v in (entry or {}).items() if k in MODEL_FIELDS}
              for name, entry in (raw.get("models") or {}).items()}
    workflow = {k: v for k, v in (raw.get("workflow") or {}).items() if k != "search_path"}
    return {"workflow": workflow, "data": raw.get("data") or {}, "models": models}


def _differences(before: Any, after: Any, path: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [line for key in sorted(set(before) | set(after), key=str)
                for line in _differences(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def changes_since_checkpoint(config: RunConfig, run_dir: Path, start_values: dict[str, str]) -> list[str]:
    """What differs between the run directory's config and checkpoint and the run about to start."""
    checkpoint, saved = run_dir / CHECKPOINT, run_dir / CONFIG
    if not checkpoint.exists():
        return []
    found: list[str] = []
    if saved.exists():
        try:
            before = _essence(read_yaml_mapping(saved, "config"))
        except ConfigError as err:
            raise DamagedFile(f"{err}. Delete it: this run writes it again from its own config, and the "
                              "checkpoint and journal beside it are intact") from None
        after = _essence(json.loads(config.model_dump_json(exclude_defaults=True, by_alias=True)))
        found += _differences(before, after, "")
    try:
        history = json.loads(checkpoint.read_text(encoding="utf-8")).get("history", {})
    except ValueError:
        return found  # a damaged checkpoint is the trainer's to report
    for name, value in start_values.items():
        started = history.get(name, [{}])[0].get("value")
        if started is not None and started != value:
            found.append(f"start value of {name}: {_short(started)!r} -> {_short(value)!r}")
    return found


def refuse_changed(changes: list[str], run_dir: Path) -> None:
    raise ConfigError(f"{run_dir} holds a run whose setup differs from this one's: {'; '.join(changes)}. "
                      "Run again with --restart (the Python API: if_changed='restart') to start it over, or "
                      "--resume-changed (if_changed='resume') to go on from its checkpoint anyway")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
