"""A run's directory: every file name in it, and the one way files there are written (atomically).

    config.yaml         the run as expanded (a sweep's runs, and runs made by `raygrad optimize`)
    journal.sqlite      every completed LLM call (unless `journal:` puts it elsewhere)
    checkpoint.json     the trainer's state, rewritten after every step
    prompts.json        the best values, loadable with `workflow.load_state(...)`
    result.json         once the run finished; error.json if it failed
    skipped_rows.json   bad rows left out (data.skip_bad_rows)
    steps.parquet, candidates.parquet, calls.parquet, samples/   the results tables

The bottom of runs/: imports nothing else from raygrad but its errors.
"""
from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raygrad.errors import DamagedFile

CONFIG, JOURNAL, CHECKPOINT, PROMPTS = "config.yaml", "journal.sqlite", "checkpoint.json", "prompts.json"
RESULT, ERROR, SKIPPED_ROWS = "result.json", "error.json", "skipped_rows.json"
STEPS, CANDIDATES, CALLS, SAMPLES = "steps.parquet", "candidates.parquet", "calls.parquet", "samples"
SWEEP_FILE = "sweep.json"  # in a sweep's directory, beside its runs' directories


class CheckpointError(OSError):
    """A file of the run could not be written (disk full, unwritable); the previous version is intact."""


def save_atomically(path: Path, text: str) -> None:
    """Write a file so that a reader (or a crash) sees the old version or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {err.strerror or err}; the previous version of it is "
                              "intact") from None


class CheckpointFile:
    """The trainer's checkpoint as a file: read back on resume, written atomically after every step.

    `after_save` runs once each new checkpoint is on disk (a run copies it to durable storage).
    """

    def __init__(self, path: str | Path, after_save: Callable[[Path], None] | None = None):
        self.path, self.after_save = Path(path), after_save

    def load(self) -> str | None:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else None

    def save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(self.path, text)
        if self.after_save is not None:
            self.after_save(self.path)


def read_json(path: Path, remedy: str) -> Any:
    """A JSON file of the run; DamagedFile naming it and `remedy` (what to do) when it is cut short or not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text)
    except UnicodeDecodeError as err:
        found = f"not UTF-8 text (byte {err.start})"
    except ValueError as err:
        found = "empty" if not text.strip() else f"not valid JSON (cut short?): {err}"
    raise DamagedFile(f"{path} is {found}; {remedy}")


def rewritten_by_resume(run_dir: Path) -> str:
    """What to do with a damaged result file (result.json, a results table): a resume writes it again."""
    return f"delete it and run `{resume_command(run_dir)}`: the checkpoint and journal rewrite it without a new call"


def record_failure(directory: Path, err: BaseException) -> str:
    """error.json for a run that failed (its status becomes `failed`); returns the error's first line."""
    err = getattr(err, "cause", None) or err  # raised in a Ray actor: its own error, not Ray's wrapper
    message = f"{type(err).__name__}: {err}".strip()
    if directory.is_dir():
        save_atomically(directory / ERROR, json.dumps({"error": message, "traceback": traceback.format_exception(err),
                                                       "resume": resume_command(directory)}, indent=2))
    return message.splitlines()[0][:300]


def run_status(directory: Path) -> str:
    """finished, failed (resumable), started (resumable) or new."""
    if (directory / RESULT).exists():
        return "finished"
    if (directory / ERROR).exists():
        return "failed"
    return "started" if (directory / CHECKPOINT).exists() else "new"


def resume_command(directory: Path) -> str:
    return f"raygrad resume {directory}"
