"""The trainer: forward a minibatch, backward its errors, propose, validate in two stages, checkpoint."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from raygrad.core.backward import Gradient, aggregate
from raygrad.core.workflow import ChatClient, Parameter, Workflow, gather_all
from raygrad.data import Dataset
from raygrad.errors import ConfigError, DamagedFile, WorkflowError
from raygrad.llm.client import BudgetExhausted, Usage
from raygrad.llm.models import ROLES
from raygrad.optim.demos import BootstrapDemos, add_to_pool
from raygrad.optim.evaluate import add_raised, count_raised, raised_text
from raygrad.optim.execution import TIE, BatchOutcome, Executor, LocalExecutor, SamplesFailed
from raygrad.optim.metrics import Metric
from raygrad.optim.optimizer import Optimizer, ProposalContext, ScoredValue
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.state import (
    CandidateRecord,
    CheckpointStore,
    PooledError,
    StepRecord,
    TrainState,
    note_skipped,
    shown,
    values_digest,
)
from raygrad.optim.tgd import TextualGradientDescent


def select_trainable(workflow: Workflow, names: list[str] | None) -> None:
    """Train only the named parameters (trainer.parameters); the rest keep their values. An unknown name
    is a ConfigError before any call."""
    if names is None:
        return
    parameters = workflow.parameters()
    for name in names:
        if name not in parameters:
            raise ConfigError(f"trainer.parameters: the workflow has no parameter {name!r} "
                              f"(it has: {', '.join(parameters)})")
    for name, parameter in parameters.items():
        parameter.trainable = parameter.trainable and name in names


class Trainer:
    """The optimization loop. Samples run on an executor: this process by default, Ray workers in the runtime.

    `clients` holds the optimizer's client, and the task and backward clients when no executor is given.
    """

    def __init__(self, workflow: Workflow, metric: Metric | Any, clients: dict[str, ChatClient],
                 config: TrainerConfig | None = None, checkpoint: CheckpointStore | None = None,
                 eval_name: str = "", executor: Executor | None = None,
                 on_event: Callable[[dict], None] | None = None):
        self.workflow, self.clients = workflow, clients
        self.on_event = on_event or (lambda event: None)  # progress, for whoever renders it
        self.stop_reason: str | None = None  # set from outside (a sweep's limit): stops like a budget
        self.config = config or TrainerConfig()
        select_trainable(workflow, self.config.parameters)
        self.checkpoint = checkpoint
        self.executor = executor or LocalExecutor(workflow, metric, clients, eval_name=eval_name,
                                                  error_threshold=self.config.error_threshold)
        self.optimizers: list[Optimizer] = [BootstrapDemos(self.config.demos_per_candidate),
                                            TextualGradientDescent(clients["optimizer"])]
        self._spent_before = {role: Usage() for role in ROLES}
        self._elapsed_before, self._started = 0.0, time.monotonic()

    # -- state ---------------------------------------------------------------------------
    def usage(self) -> dict[str, Usage]:
        spent = {**self.executor.usage(), "optimizer": getattr(self.clients["optimizer"], "usage", Usage())}
        return {role: self._spent_before[role].add(spent.get(role, Usage())) for role in ROLES}

    def _save(self, state: TrainState) -> None:
        state.values, state.usage = self.workflow.state(), self.usage()
        state.elapsed_s = self.elapsed_s()
        if self.checkpoint is not None:
            self.checkpoint.save(state.model_dump_json())

    def elapsed_s(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def _over_budget(self) -> str | None:
        if self.stop_reason:
            return self.stop_reason
        spent = Usage()
        for usage in self.usage().values():
            spent = spent.add(usage)
        return self.config.reached(spent.calls, spent.prompt_tokens + spent.completion_tokens, spent.cost,
                                   self.elapsed_s())

    def _next_batch(self, state: TrainState, rng: random.Random, size: int) -> list[int]:
        batch = []
        while len(batch) < self.config.batch_size:
            if state.cursor >= len(state.order):
                state.order, state.cursor = rng.sample(range(size), size), 0
            batch.append(state.order[state.cursor])
            state.cursor += 1
        return batch

    # -- the loop ------------------------------------------------------------------------
    async def fit(self, train: Dataset, val: Dataset) -> TrainState:
        """Train; resume from the checkpoint when one exists (same result as an uninterrupted run).

        Budgets are checked before every paid call. When one runs out mid-step, the step is rolled
        back to the last checkpoint: resuming with a larger budget redoes it from the call journal.
        """
        rng = random.Random(self.config.seed)
        self._started = time.monotonic()
        for client in [*self.clients.values(), self.executor]:
            client.budget_guard = self._over_budget  # type: ignore[union-attr]
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        if saved is not None:
            state = _checkpoint_state(saved, getattr(self.checkpoint, "path", "the checkpoint"))
            self.workflow.load_state(state.values)
            self._spent_before = {role: state.usage.get(role, Usage()) for role in ROLES}
            self._elapsed_before = state.elapsed_s
            if state.rng_state:
                rng.setstate(_as_state(state.rng_state))
            state.stopped = None
        else:
            try:
                first = await self.executor.validate(self.workflow.state(), val, chunk=self.config.validation_chunk,
                                                     label="val-initial")
            except BudgetExhausted as err:
                raise BudgetExhausted(f"{err} before the initial validation finished") from None
            if first.failed:  # no score to start from: nothing is checkpointed, the same command retries
                raise SamplesFailed(f"{first.failed} of {first.evaluated} samples of the initial validation failed "
                                    f"(the first: {first.first_error})")
            if first.raised and sum(r.count for r in first.raised.values()) == first.evaluated - len(first.skipped):
                raise WorkflowError(f"the workflow raised on every sample of the initial validation "
                                    f"({raised_text(first.raised)}): a bug in it, not a prompt to improve. The first:\n"
                                    f"{first.first_traceback}")
            initial = first.strict_score
            state = TrainState(values=self.workflow.state(), initial_val=initial, best_val=initial,
                               skipped_rows=first.skipped, val_weak=first.weak, initial_raised=first.raised,
                               history={n: [ScoredValue(value=p.value, score=initial)]
                                        for n, p in self.workflow.parameters().items() if p.trainable})
        self.on_event({"kind": "started", "step": state.step, "steps": self.config.steps,
                       "initial_val": state.initial_val, "best_val": state.best_val,
                       "raised": {kind: r.model_dump() for kind, r in state.initial_raised.items()}})
        while state.step < self.config.steps and state.best_val < 1.0:  # nothing beats a perfect score: done
            before = state.model_copy(deep=True), rng.getstate(), self.workflow.state()
            try:
                await self._step(state, rng, train, val)
            except BudgetExhausted as err:
                state, rng_state, values = before
                rng.setstate(rng_state)
                self.workflow.load_state(values)
                state.stopped = str(err)
                break
            except SamplesFailed:  # the step is not kept: the checkpoint stays at the last whole step
                self.workflow.load_state(before[2])
                raise
            state.step += 1
            state.rng_state = _jsonable(rng.getstate())
            state.steps[-1].usage = self.usage()
            self._save(state)
            self.on_event({"kind": "step", "step": state.step, "steps": self.config.steps,
                           "best_val": state.best_val, "accepted": state.steps[-1].accepted,
                           "usage": state.steps[-1].usage,
                           "raised": {kind: r.model_dump() for kind, r in state.steps[-1].raised.items()},
                           "unparsed": state.steps[-1].unparsed_gradients + state.steps[-1].unparsed_proposals})
        self._save(state)
        return state

    async def _step(self, state: TrainState, rng: random.Random, train: Dataset, val: Dataset) -> None:
        cfg = self.config
        for attempt in range(cfg.batches_until_error):  # a minibatch with no error sample teaches nothing
            positions = self._next_batch(state, rng, len(train))
            outcome = await self.executor.train_batch(self.workflow.state(), train, positions,
                                                       label=f"step{state.step}-batch{attempt or ''}")
            if any(r.score is not None and r.score < cfg.error_threshold for r in outcome.results):
                break
        scores = [r.score for r in outcome.results if r.score is not None]
        counted = [r for r in outcome.results if not r.skipped]
        note_skipped(state, [r.error or "" for r in outcome.results if r.skipped])
        batch_score = sum(scores) / len(counted) if counted else 0.0  # failed count as 0, as in stage 1
        errors = [r for r in outcome.results if r.score is not None and r.score < cfg.error_threshold]
        record = StepRecord(step=state.step, batch=[r.id for r in outcome.results], batch_score=batch_score,
                            errors=len(errors), best_val=state.best_val, unparsed_gradients=outcome.backward.unparsed,
                            unparsed_example=outcome.backward.example, failed_gradients=outcome.backward.failed,
                            raised=count_raised(outcome.results),
                            gradient_samples={name: len({g.sample_id for g in outcome.gradients if g.parameter == name})
                                              for name in {g.parameter for g in outcome.gradients}})
        state.steps.append(record)
        current: list[float | None] | None = [None if r.skipped else r.score or 0.0 for r in outcome.results]
        gradients, pooled = outcome.gradients, self._pool_errors(state, positions, outcome)
        if pooled:  # stage 1 runs on the pooled errors too, and the optimizer reads their gradients
            positions = positions + [e.position for e in pooled]
            current += [e.score for e in pooled]
            gradients = gradients + [g for e in pooled for g in e.gradients]
            batch_score = (batch_score * len(counted) + sum(e.score for e in pooled)) / (len(counted) + len(pooled))
        for name, demos in outcome.demos.items():
            add_to_pool(state.demo_pool.setdefault(name, []), [d for d in demos if cfg.labeled_demos or not d.labeled],
                        cfg.demo_pool_size)
        if not errors and not pooled:
            return  # nothing to learn from, and no backward call was paid
        parameters = self.workflow.parameters()
        aggregated = aggregate(gradients, cfg.max_gradient_samples, cfg.max_feedback_chars)
        peers = self.workflow.peers()
        names = sorted(n for n, p in parameters.items() if p.trainable)
        if cfg.one_parameter_per_step:
            names = by_gradient_mass(names, parameters, gradients, state.step)
        groups = [[name] for name in names]
        if cfg.joint_candidates:  # the text parameters together; a demos parameter's candidates stay its own
            text = [name for name in names if parameters[name].role != "demos"]
            groups = [text] * bool(text) + [[name] for name in names if name not in text]
        for group in groups:
            if batch_score >= 1.0:  # a perfect minibatch: no candidate can beat it in stage 1, so none is asked for
                break
            proposed: dict[str, list[str]] = {}
            before = self.workflow.state()
            for name in group:
                optimizer = next(o for o in self.optimizers if o.handles(parameters[name]))
                context = ProposalContext(
                    parameter=parameters[name], peers=peers[name], gradients=aggregated.get(name, ""),
                    history=sorted(state.history.get(name, []), key=lambda h: -h.score)[:cfg.history_size],
                    failed=state.failed.get(name, []), k=cfg.proposals, step=state.step, batch=set(record.batch),
                    rng=rng, demo_pool=state.demo_pool.get(name, []))
                outcome = await optimizer.propose(context)
                candidates = outcome.candidates
                unparsed = [f"unparseable reply: {e.text}" for e in outcome.errors if e.kind == "unparsed"]
                record.unparsed_proposals += len(unparsed)
                record.failed_proposals += len(outcome.errors) - len(unparsed)
                record.unparsed_example = record.unparsed_example or next(iter(unparsed), None)
                if candidates:
                    proposed[name] = candidates
                    if len(group) > 1:  # the next parameters' optimizers see this proposal as their peer's value
                        self.workflow.load_state({name: candidates[0]})
            self.workflow.load_state(before)
            changes = [{n: c[i] for n, c in proposed.items() if i < len(c)}
                       for i in range(max(map(len, proposed.values()), default=0))]
            accepted = await self._validate_candidates(state, record, changes, train, positions, current,
                                                       batch_score, val)
            if accepted is not None:
                batch_score, current = accepted, None  # later candidates must beat the new value (per sample unknown)
            for name in group:
                if name in state.failed:
                    state.failed[name] = state.failed[name][-20:]  # bounded: the optimizer sees the last few
        record.best_val = state.best_val

    def _pool_errors(self, state: TrainState, positions: list[int], outcome: BatchOutcome) -> list[PooledError]:
        """Add this minibatch's errors to the pool (trainer.error_pool); return the pooled errors of earlier
        minibatches (this one's were just run again, so their fresh results stand)."""
        if not self.config.error_pool or all(p.role == "demos" for p in self.workflow.parameters().values()
                                             if p.trainable):
            return []  # demos candidates are drawn from the demo pool, not from gradients: nothing to keep errors for
        fresh = set(positions)
        state.error_pool = [e for e in state.error_pool if e.position not in fresh] + [
            PooledError(position=p, score=r.score or 0.0, gradients=[g for g in outcome.gradients if g.sample_id == r.id])
            for p, r in zip(positions, outcome.results)
            if r.score is not None and r.score < self.config.error_threshold]
        state.error_pool = state.error_pool[-self.config.error_pool:]
        return [e for e in state.error_pool if e.position not in fresh]

    async def _validate_candidates(self, state: TrainState, record: StepRecord, changes: list[dict[str, str]],
                                   train: Dataset, positions: list[int], current: list[float | None] | None,
                                   batch_score: float, val: Dataset) -> float | None:
        """Two stages for each candidate (new values of one parameter, or of several with joint_candidates) in
        turn; the first to pass is accepted. Returns its stage-1 score (with stage 1 off, `batch_score`)."""
        validations = 0
        # The workflow's values change only when a candidate is accepted, which ends this loop.
        candidate_values = [{**self.workflow.state(), **change} for change in changes]
        names = [",".join(change) for change in changes]
        labels = [f"step{state.step}-{name}-{number}" for number, name in enumerate(names)]
        first_stage = None
        if self.config.concurrent_stage1:  # one round trip for all; those after the first to pass score for nothing
            first_stage = await gather_all(*(self._stage1(values, train, positions, current, f"{label}-stage1")
                                             for values, label in zip(candidate_values, labels)))
        for number, (change, values, name, label) in enumerate(zip(changes, candidate_values, names, labels)):
            if validations == self.config.stage2_per_parameter:
                break  # its stage-2 validations this step all failed: the gradients were likely noise
            candidate_record = CandidateRecord(step=state.step, parameter=name, value=shown(change))
            state.candidates.append(candidate_record)

            def reject(reason: str) -> None:
                candidate_record.reason = reason
                for parameter, value in change.items():
                    state.failed.setdefault(parameter, []).append(value)

            known = state.validated.get(values_digest(values))
            if known is not None and known <= state.best_val + TIE:  # proposed again: its score is known
                reject(f"stage 2 before: at most {known:.3f} <= best {state.best_val:.3f}")
                continue
            if self.config.stage1:
                candidate_record.stage1, cut = first_stage[number] if first_stage else await self._stage1(
                    values, train, positions, current, f"{label}-stage1")
                if candidate_record.stage1 <= batch_score + TIE:
                    reject(f"stage 1: {'at most ' if cut else ''}{candidate_record.stage1:.3f} <= "
                           f"current {batch_score:.3f} on the minibatch")
                    continue
            validations += 1
            must_beat, first = (state.best_val, state.val_weak) if self.config.early_rejection else (None, [])
            result = await self.executor.validate(values, val, must_beat=must_beat, chunk=self.config.validation_chunk,
                                                  label=f"{label}-stage2", first=first,
                                                  accept_confidence=self.config.early_acceptance)
            candidate_record.stage2 = result.strict_score  # failed samples count against the candidate
            record.raised = add_raised(record.raised, result.raised)
            if not result.failed:
                state.validated[values_digest(values)] = state.best_val if result.stopped_early else result.strict_score
            note_skipped(state, result.skipped)
            if result.failed and not result.stopped_early and result.strict_score > state.best_val + TIE:
                raise SamplesFailed(f"{result.failed} of {result.evaluated} validation samples of a candidate for "
                                    f"{name} failed, so it cannot be kept as best (the first: {result.first_error})")
            if result.stopped_early or result.strict_score <= state.best_val + TIE:
                reject(f"stage 2: cannot beat {state.best_val:.3f} after {result.evaluated}/{result.total} samples"
                       if result.stopped_early else f"stage 2: {result.strict_score:.3f} <= best {state.best_val:.3f}")
                continue
            self.on_event({"kind": "accepted", "step": state.step, "parameter": name, "best_val": result.strict_score})
            candidate_record.accepted = True
            candidate_record.reason = (f"accepted after {result.evaluated}/{result.total} samples (score estimated)"
                                       if result.estimated else "accepted")
            self.workflow.load_state(change)
            state.best_val, state.val_weak = result.strict_score, result.weak
            state.best_val_samples = result.evaluated if result.estimated else None
            for parameter, value in change.items():
                state.history.setdefault(parameter, []).append(ScoredValue(value=value, score=result.strict_score))
                record.accepted.append(parameter)
            state.error_pool = []  # the values changed: the pooled errors' scores and gradients no longer hold
            return candidate_record.stage1 if self.config.stage1 else batch_score
        return None

    async def _stage1(self, values: dict[str, str], train: Dataset, positions: list[int],
                      current: list[float | None] | None, label: str) -> tuple[float, bool]:
        """A candidate's minibatch score, and whether it was cut short.

        With early rejection and the current value's per-sample scores known (None: a skipped row), the
        samples the current value scored below 1 (metrics score in [0, 1]) run first. A candidate that
        gains nothing on them cannot beat it, so the rest never run; the score returned is then the
        most the candidate could have reached.
        """
        if not self.config.early_rejection or current is None:
            return await self.executor.score(values, train, positions, label=label), False
        weak = [(p, s) for p, s in zip(positions, current) if s is not None and s < 1.0]
        perfect = [p for p, s in zip(positions, current) if s is not None and s >= 1.0]
        if not weak or not perfect:
            return await self.executor.score(values, train, positions, label=label), False
        gained = len(weak) * await self.executor.score(values, train, [p for p, _ in weak], label=label)
        if gained <= sum(s for _, s in weak) + TIE:
            return (gained + len(perfect)) / (len(weak) + len(perfect)), True
        kept = len(perfect) * await self.executor.score(values, train, perfect, label=label)
        return (gained + kept) / (len(weak) + len(perfect)), False


def _checkpoint_state(saved: str, where: object) -> TrainState:
    """The trainer's state from a checkpoint's text; a damaged one (cut short, empty, another file) is one
    DamagedFile naming the file and what to do, never a validation traceback."""
    try:
        return TrainState.model_validate_json(saved)
    except ValidationError as err:
        problem = err.errors()[0]
        found = "empty" if not saved.strip() else "not valid JSON (cut short?)" if problem["type"] == "json_invalid" \
            else f"not a raygrad checkpoint ({'.'.join(map(str, problem['loc'])) or 'top'}: {problem['msg']})"
        raise DamagedFile(f"{where} is {found}. Move it aside to start the run over: the journal beside it keeps "
                          "every paid call, so the steps it held are replayed, not paid again") from None


def by_gradient_mass(names: list[str], parameters: dict[str, Parameter], gradients: list[Gradient], step: int
                     ) -> list[str]:
    """The demos parameters, and the one text parameter with gradients from the most error samples
    (ties taken in turn, step by step)."""
    mass = {n: len({g.sample_id for g in gradients if g.parameter == n}) for n in names
            if parameters[n].role != "demos"}
    most = [n for n in mass if mass[n] == max(mass.values(), default=0) and mass[n] > 0]
    chosen = {most[step % len(most)]} if most else set()
    return [n for n in names if n in chosen or n not in mass]


def _jsonable(rng_state: tuple) -> list:
    version, internal, gauss = rng_state
    return [version, list(internal), gauss]


def _as_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
