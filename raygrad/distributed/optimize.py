"""One optimization run on Ray, from its config to its result files: what `raygrad optimize` and each
run of a sweep do."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from raygrad.distributed.runtime import DistributedRun, distributed_run
from raygrad.llm.local import LocalModelServer
from raygrad.optim.trainer import TrainState
from raygrad.runs.assemble import build_workflow, load_split
from raygrad.runs.config import RunConfig
from raygrad.runs.results import RunResult, write_tables
from raygrad.runs.rundir import (
    CHECKPOINT,
    JOURNAL,
    PROMPTS,
    RESULT,
    SKIPPED_ROWS,
    save_atomically,
)
from raygrad.runs.storage import Storage


def optimize_run(config: RunConfig, address: str | None = None, budget: Any = None,
                 local: LocalModelServer | None = None, on_started: Callable[[DistributedRun], None] | None = None,
                 eval_name: str | None = None) -> RunResult:
    """Optimize one run, resuming from its checkpoint (local, else storage's); write its results.

    Data is read first, so a bad dataset stops the run before any call is made.
    """
    skipped: list[str] = []
    train, val, test = (load_split(config.data, split, skipped) for split in ("train", "val", "test"))
    workflow, _ = build_workflow(config.workflow)
    start_values = workflow.state()
    run_dir = config.run_dir
    storage = Storage(config.storage) if config.storage else None
    if storage:
        storage.check()
    checkpoint = run_dir / CHECKPOINT
    resumed_from = str(checkpoint) if checkpoint.exists() else None
    if storage and not resumed_from and storage.get(CHECKPOINT, checkpoint):
        resumed_from = f"{config.storage}/{CHECKPOINT}"
        if not config.journal_path.exists():
            storage.get(JOURNAL, config.journal_path)  # calls made before are replayed, not paid again
    started = time.monotonic()
    with distributed_run(config, address, eval_name=eval_name or config.workflow.eval or "workflow's",
                         budget=budget, local=local) as run:
        if on_started is not None:
            on_started(run)
        before = run.evaluate(start_values, test, "test-before")
        state: TrainState = run.fit(train, val)
        after = None if state.stopped else run.evaluate(state.values, test, "test-after")
        usage, stats = run.usage(), run.stats()
    result = RunResult(
        name=config.name, workflow=config.workflow.name, steps=state.step,
        accepted=sum(c.accepted for c in state.candidates), candidates=len(state.candidates),
        initial_val=state.initial_val, best_val=state.best_val, val_size=len(val), test_before=before.score,
        test_after=after.score if after else None, test_size=len(test),
        failed_samples=before.failed + (after.failed if after else 0), values=state.values,
        start_values=start_values, usage=usage, wall_s=time.monotonic() - started, stopped=state.stopped,
        resumed_from=resumed_from, skipped_rows=len(skipped), ray=stats)
    run_dir.mkdir(parents=True, exist_ok=True)
    if skipped:
        save_atomically(run_dir / SKIPPED_ROWS, json.dumps(skipped, indent=2, ensure_ascii=False))
    save_atomically(run_dir / PROMPTS, json.dumps(state.values, indent=2, ensure_ascii=False))
    write_tables(run_dir, state, config.journal_path, reply_text=config.reply_text)
    if not state.stopped:  # a run stopped at a budget is not finished: the same command continues it
        save_atomically(run_dir / RESULT, result.model_dump_json(indent=2))
    if storage:
        storage.put_run(run_dir, config.journal_path)
    return result
