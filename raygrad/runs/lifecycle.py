"""One run's life, whatever runs it: resume from the checkpoint (local, else storage's), score the
test split before, train, score it after, write the result files.

The CLI and `raygrad.optimize` are two doors to this one lifecycle. A Runner does the work: LocalRun
in this process with no Ray (the Ray-free executor: a breakpoint in a workflow stops there), or a
distributed run on Ray (raygrad.distributed.optimize), each behind the same four methods.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from raygrad.core.workflow import Workflow
from raygrad.data import Dataset
from raygrad.llm.client import BudgetExhausted, Usage
from raygrad.llm.endpoints import role_clients
from raygrad.llm.local import LocalModelServer
from raygrad.optim.execution import LocalExecutor, Stage2Result
from raygrad.optim.metrics import Metric
from raygrad.optim.state import TrainState
from raygrad.optim.stopping import Stopper
from raygrad.optim.trainer import Trainer, select_trainable
from raygrad.runs.assemble import check_models, check_workflow, load_split
from raygrad.runs.changes import changes_since_checkpoint, refuse_changed
from raygrad.runs.config import RunConfig, write_config
from raygrad.runs.owner import owned
from raygrad.runs.progress import Phase, RunEvent
from raygrad.runs.report import write_report
from raygrad.runs.results import (
    RunResult,
    SampleTables,
    candidate_rows,
    no_gradient,
    run_checkpoint,
    run_raised,
    write_tables,
)
from raygrad.runs.rundir import (
    CHECKPOINT,
    ERROR,
    JOURNAL,
    PROMPTS,
    RESULT,
    SKIPPED_ROWS,
    record_failure,
    save_atomically,
)
from raygrad.runs.storage import Storage
from raygrad.runs.tracking import start_tracking

T = TypeVar("T")
# Receives the trainer's events since the last call (steps, acceptances) and the usage so far (None: unchanged).
OnProgress = Callable[[list[RunEvent], dict[str, Usage] | None], None]


class Runner(Protocol):
    """Runs a run's samples and its trainer: in this process (LocalRun) or on Ray."""

    def fit(self, train: Dataset, val: Dataset, on_progress: OnProgress | None = None) -> TrainState: ...

    def evaluate(self, values: dict[str, str], data: Dataset, label: str = "") -> Stage2Result: ...

    def usage(self) -> dict[str, Usage]: ...

    def stats(self) -> dict[str, Any]: ...


StartRunner = Callable[[Path], AbstractContextManager[Runner]]  # given the checkpoint's path


class Splits(BaseModel):
    """A run's data: train and val, and test when the config has one."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    train: Any
    val: Any
    test: Any = None
    skipped: list[str] = []  # bad rows left out (data.skip_bad_rows)


def load_splits(config: RunConfig) -> Splits:
    """Every split, read before anything starts: a bad dataset stops the run before any call."""
    skipped: list[str] = []
    train, val = (load_split(config.data, split, skipped) for split in ("train", "val"))
    test = load_split(config.data, "test", skipped) if "test" in config.data.splits else None
    return Splits(train=train, val=val, test=test, skipped=skipped)


def run_lifecycle(config: RunConfig, workflow: Workflow, splits: Splits, start: StartRunner,
                  on_progress: OnProgress | None = None) -> RunResult:
    """Optimize one run, resuming from its checkpoint (local, else storage's); write its results. The run
    directory is this process's while it works (a second process on it stops at once)."""
    with owned(config.run_dir):
        return _run_lifecycle(config, workflow, splits, start, on_progress)


def _run_lifecycle(config: RunConfig, workflow: Workflow, splits: Splits, start: StartRunner,
                   on_progress: OnProgress | None) -> RunResult:
    def phase(status: str) -> None:
        if on_progress is not None:
            on_progress([Phase(status=status, steps=config.trainer.steps)], None)

    check_models(workflow, config.role_models())
    select_trainable(workflow, config.trainer.parameters)  # before any actor gets a copy of the workflow
    check_workflow(workflow, config.trainer.parameters)
    start_values = workflow.state()
    run_dir = config.run_dir
    checkpoint = run_dir / CHECKPOINT
    changes = changes_since_checkpoint(config, run_dir, start_values)
    if changes and config.if_changed == "refuse":
        refuse_changed(changes, run_dir)
    restarting = bool(changes) and config.if_changed == "restart"
    if restarting:  # the old run's state is set aside, not deleted; its journal still replays identical calls
        checkpoint.replace(checkpoint.with_name(f"{CHECKPOINT}.before-restart"))
        phase(f"restarting: {'; '.join(changes)}")
    elif changes:
        phase(f"resuming although {'; '.join(changes)}")
    write_config(config, run_dir)  # every run directory can be resumed: `raygrad resume RUN_DIR`
    storage = Storage(config.storage) if config.storage else None
    if storage:
        storage.check()
    resumed_from = str(checkpoint) if checkpoint.exists() else None
    if resumed_from and (done := _steps_done(checkpoint)) >= config.trainer.steps:
        phase(f"the checkpoint is at step {done} and trainer.steps is {config.trainer.steps}: no step left "
              "to run (raise trainer.steps to go on)")
    if storage and not resumed_from and not restarting and storage.get(CHECKPOINT, checkpoint):
        resumed_from = f"{config.storage}/{CHECKPOINT}"
        if not config.journal_path.exists():
            storage.get(JOURNAL, config.journal_path)  # calls made before are replayed, not paid again
    tracker = start_tracking(config.tracking, run_dir, config.name,
                             json.loads(config.model_dump_json(exclude_defaults=True, by_alias=True)))
    if tracker is not None:
        on_progress = _both(on_progress, tracker.observe)
    started = time.monotonic()
    with _failure_recorded(run_dir), tracker.ended_on_error() if tracker else nullcontext(), \
            start(checkpoint.resolve()) as run:
        before = None
        if splits.test is not None:
            phase("testing the start values")
            before = run.evaluate(start_values, splits.test, "test-before")
        phase("training")
        state: TrainState = run.fit(splits.train, splits.val, on_progress)
        after = None
        if splits.test is not None and not state.stopped:
            phase("testing the best values")
            after = run.evaluate(state.values, splits.test, "test-after")
        usage, stats = run.usage(), run.stats()
    result = RunResult(
        name=config.name, workflow=config.workflow.label, steps=state.step,
        accepted=sum(c.accepted for c in state.candidates), candidates=len(state.candidates),
        initial_val=state.initial_val, best_val=state.best_val, val_size=len(splits.val),
        best_val_samples=state.best_val_samples,
        test_before=before.score if before else None, test_after=after.score if after else None,
        test_size=len(splits.test) if splits.test is not None else 0,
        failed_samples=(before.failed if before else 0) + (after.failed if after else 0), values=state.values,
        start_values=start_values, usage=usage, wall_s=time.monotonic() - started, stopped=state.stopped,
        stalled=_stalled(state, config),
        resumed_from=resumed_from, ray=stats, raised=run_raised(state, before, after),
        failed_gradients=sum(step.failed_gradients for step in state.steps),
        failed_proposals=sum(step.failed_proposals for step in state.steps),
        unparsed_gradients=sum(step.unparsed_gradients for step in state.steps),
        unparsed_proposals=sum(step.unparsed_proposals for step in state.steps),
        unparsed_example=next((step.unparsed_example for step in state.steps if step.unparsed_example), None),
        no_gradient=no_gradient(state, [n for n, p in workflow.parameters().items()
                                        if p.trainable and p.role != "demos"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    skipped = list(dict.fromkeys([*splits.skipped, *state.skipped_rows, *(before.skipped if before else []),
                                  *(after.skipped if after else [])]))
    result.skipped_rows = len(skipped)
    if skipped:
        save_atomically(run_dir / SKIPPED_ROWS, json.dumps(skipped, indent=2, ensure_ascii=False))
    save_atomically(run_dir / PROMPTS, json.dumps(state.values, indent=2, ensure_ascii=False))
    write_tables(run_dir, state, config.journal_path, reply_text=config.reply_text)
    if not state.stopped:  # a run stopped at a budget is not finished: the same command continues it
        save_atomically(run_dir / RESULT, result.model_dump_json(indent=2))
    if storage:
        storage.put_run(run_dir, config.journal_path)
    if tracker is not None:
        tracker.finish(result, candidate_rows(state), write_report(run_dir).parent)
    return result


@contextmanager
def _failure_recorded(run_dir: Path) -> Iterator[None]:
    """A run that fails leaves error.json (`raygrad report` shows it failed, with its error); one that then
    finishes has it removed. A budget reached is a stop, not a failure."""
    try:
        yield
    except BudgetExhausted:
        raise
    except Exception as err:
        record_failure(run_dir, err)
        raise
    (run_dir / ERROR).unlink(missing_ok=True)


def _both(first: OnProgress | None, second: OnProgress) -> OnProgress:
    def both(events: list[RunEvent], usage: dict[str, Usage] | None) -> None:
        if first is not None:
            first(events, usage)
        second(events, usage)
    return both


async def cancel_the_rest() -> None:
    """Cancel every other task of the running loop and wait for them: what asyncio.run does as it ends."""
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


async def _ticking(work: Awaitable[T], tick: Callable[[], None], every_s: float = 2.0) -> T:
    """Await `work`, calling `tick` every `every_s` until it is done."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=every_s)
        if not task.done():
            tick()
    return task.result()


def _steps_done(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text(encoding="utf-8")).get("step", 0))
    except (OSError, ValueError, AttributeError):
        return 0  # a damaged checkpoint is the trainer's to report


class LocalRun:
    """A run in this process and one event loop, with no Ray: the trainer and a LocalExecutor."""

    def __init__(self, config: RunConfig, workflow: Workflow, metric: Metric, clients: dict[str, Any],
                 checkpoint: Path):
        storage = Storage(config.storage) if config.storage else None
        self.samples = SampleTables(checkpoint.parent) if config.samples_table else None
        self.chunk = config.trainer.validation_chunk
        self.executor = LocalExecutor(workflow, metric, clients, error_threshold=config.trainer.error_threshold,
                                      sample_sink=self.samples.write if self.samples else None)
        self.trainer = Trainer(workflow, metric, clients, config.trainer, executor=self.executor,
                               checkpoint=run_checkpoint(checkpoint, storage, config.journal_path))
        self._loop = asyncio.new_event_loop()  # the clients' limits and locks live in one loop

    def _run(self, work: Any) -> Any:
        try:
            return self._loop.run_until_complete(work)
        finally:
            if self.samples is not None:
                self.samples.close()

    def fit(self, train: Dataset, val: Dataset, on_progress: OnProgress | None = None) -> TrainState:
        if on_progress is None:
            return self._run(self.trainer.fit(train, val))
        self.trainer.on_event = lambda event: on_progress([event], self.trainer.usage())
        # Between events too (as a Ray run's driver polls): calls being retried for minutes show why.
        return self._run(_ticking(self.trainer.fit(train, val), lambda: on_progress([], self.trainer.usage())))

    def evaluate(self, values: dict[str, str], data: Dataset, label: str = "") -> Stage2Result:
        return self._run(self.executor.validate(values, data, chunk=self.chunk, label=label))

    def usage(self) -> dict[str, Usage]:
        return self.trainer.usage()

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """As asyncio.run ends: cancel what still runs in the loop (litellm's logging worker), then close it."""
        self._loop.run_until_complete(cancel_the_rest())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


def local_runner(config: RunConfig, workflow: Workflow, metric: Metric,
                 local: LocalModelServer | None = None) -> StartRunner:
    """Start a LocalRun: the run's clients (the embedded model started if a role needs it), in this process."""
    @contextmanager
    def start(checkpoint: Path) -> Iterator[Runner]:
        with role_clients(config.role_models(), config.journal_path, local) as clients:
            run = LocalRun(config, workflow, metric, clients, checkpoint)
            try:
                yield run
            finally:
                run.close()
    return start


def _stalled(state: TrainState, config: RunConfig) -> str | None:
    """Why a run that was not stopped ended before its steps, when trainer.patience ended it."""
    cfg = config.trainer
    return None if state.stopped or state.step >= cfg.steps else Stopper(cfg.steps, cfg, cfg.patience).stalled(state)
