"""The trainer: forward a minibatch, backward its errors, propose, validate in two stages, checkpoint; the
parts it composes live in their own modules (minibatches, candidates, validation, stopping)."""
from __future__ import annotations

import copy
import functools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from raygrad.core.backward import aggregate
from raygrad.core.workflow import ChatClient, Parameter, Workflow, gather_all
from raygrad.data import Dataset
from raygrad.errors import ConfigError, DamagedFile, WorkflowError
from raygrad.llm.client import BudgetExhausted, Usage
from raygrad.llm.models import ROLES
from raygrad.optim.candidates import Candidates, candidates_of, propose
from raygrad.optim.demos import BootstrapDemos, add_to_pool
from raygrad.optim.evaluate import add_raised, count_raised, raised_text
from raygrad.optim.events import Accepted, Started, StepEnded, TrainerEvent
from raygrad.optim.execution import Executor, LocalExecutor, SamplesFailed
from raygrad.optim.merge import next_merge
from raygrad.optim.metrics import Metric
from raygrad.optim.minibatches import Minibatch, Minibatches
from raygrad.optim.optimizer import Optimizer, ProposalContext, Proposed, ScoredValue
from raygrad.optim.parents import Parents, parents_of
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.state import CheckpointStore, PoolMember, StepRecord, TrainState
from raygrad.optim.stopping import Stopper
from raygrad.optim.tgd import TextualGradientDescent
from raygrad.optim.validation import Candidate, Passed, TwoStageValidation


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
    """The optimization loop, composed of parts: where minibatches come from (Minibatches), which values a
    step builds on (Parents), how candidates are formed (Candidates), how they are validated
    (TwoStageValidation) and when to stop (Stopper). Each is built from the config unless given. Samples run
    on an executor: this process by default, Ray workers in the runtime.

    `clients` holds the optimizer's client, and the task and backward clients when no executor is given.
    """

    def __init__(self, workflow: Workflow, metric: Metric | Any, clients: dict[str, ChatClient],
                 config: TrainerConfig | None = None, checkpoint: CheckpointStore | None = None,
                 eval_name: str = "", executor: Executor | None = None,
                 on_event: Callable[[TrainerEvent], None] | None = None, *, minibatches: Minibatches | None = None,
                 candidates: Candidates | None = None, validation: TwoStageValidation | None = None,
                 stopper: Stopper | None = None, parents: Parents | None = None):
        self.workflow, self.clients = workflow, clients
        self.on_event = on_event or (lambda event: None)  # progress, for whoever renders it
        cfg = self.config = config or TrainerConfig()
        select_trainable(workflow, cfg.parameters)
        self.checkpoint = checkpoint
        self.executor = executor or LocalExecutor(workflow, metric, clients, eval_name=eval_name,
                                                  error_threshold=cfg.error_threshold)
        self.optimizers: list[Optimizer] = [BootstrapDemos(cfg.demos_per_candidate),
                                            TextualGradientDescent(clients["optimizer"])]
        self.minibatches = minibatches or Minibatches(cfg.batch_size, cfg.batches_until_error, cfg.error_pool,
                                                      cfg.error_threshold)
        self.candidates = candidates or candidates_of(cfg.candidates)
        self.parents = parents or parents_of(cfg.parents)
        self.validation = validation or TwoStageValidation(
            self.executor, stage1=cfg.stage1, early_rejection=cfg.early_rejection,
            early_acceptance=cfg.early_acceptance, stage2_per_group=cfg.stage2_per_parameter,
            chunk=cfg.validation_chunk, width=cfg.parallel_candidates, min_gain=cfg.min_gain)
        self.stopper = stopper or Stopper(cfg.steps, cfg, cfg.patience)
        self._spent_before = {role: Usage() for role in ROLES}
        self._elapsed_before, self._started = 0.0, time.monotonic()

    def stop(self, reason: str) -> None:
        """Stop before the next paid call, as a spending limit does (a sweep's limit, an interrupt)."""
        self.stopper.outside = reason

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
        return self.stopper.stopped(self.usage(), self.elapsed_s())

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
            state = await self._initial_state(val)
        self.on_event(Started(step=state.step, steps=self.config.steps, initial_val=state.initial_val,
                              best_val=state.best_val, raised=state.initial_raised))
        while not self.stopper.finished(state):
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
            ended = [record for record in state.steps if record.step >= state.step]  # the round's steps
            state.step = ended[-1].step + 1
            state.rng_state = _jsonable(rng.getstate())
            usage = self.usage()
            for record in ended:
                record.usage = usage
            self._save(state)
            self.on_event(StepEnded(step=state.step, steps=self.config.steps, best_val=state.best_val,
                                    accepted=[name for r in ended for name in r.accepted], usage=usage,
                                    raised=functools.reduce(add_raised, (r.raised for r in ended), {}),
                                    unparsed=sum(r.unparsed_gradients + r.unparsed_proposals for r in ended)))
        self._save(state)
        return state

    async def _initial_state(self, val: Dataset) -> TrainState:
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
        return TrainState(values=self.workflow.state(), initial_val=initial, best_val=initial,
                          skipped_rows=first.skipped, val_weak=first.weak, initial_raised=first.raised,
                          history={n: [ScoredValue(value=p.value, score=initial)]
                                   for n, p in self.workflow.parameters().items() if p.trainable},
                          pool=[PoolMember(values=self.workflow.state(), score=initial, missed=first.weak)]
                          if self.parents.pool else [])

    async def _step(self, state: TrainState, rng: random.Random, train: Dataset, val: Dataset) -> None:
        """One round: `parallel_steps` steps at once (fewer at the end), each with its own minibatch, gradients
        and proposals; their candidates are validated together, one call's at a time. A step builds on the
        best values, or on the pool member trainer.parents drew for it (its lane's `base`)."""
        cfg, parameters = self.config, self.workflow.parameters()
        names = sorted(n for n, p in parameters.items() if p.trainable)
        best, lanes = self.workflow.state(), min(cfg.parallel_steps, cfg.steps - state.step)
        drawn = [self.parents.choose(state, rng, len(val)) for _ in range(lanes)]
        bases = [state.pool[p].values if p is not None and state.pool[p].values != best else {} for p in drawn]
        # Pooled errors are the best values' errors: a step built on other values neither uses nor adds to them.
        pooling = [lane for lane in range(lanes) if not bases[lane]] \
            if any(parameters[n].role != "demos" for n in names) else []
        batches = await self.minibatches.draw(state, rng, train, self.executor, [base or best for base in bases],
                                              pooling)
        records = [self._record(state.step + lane, state.best_val, batch) for lane, batch in enumerate(batches)]
        for record, parent, base in zip(records, drawn, bases):
            record.parent = parent if base else None
        state.steps += records
        for batch in batches:
            for name, demos in batch.outcome.demos.items():
                add_to_pool(state.demo_pool.setdefault(name, []),
                            [d for d in demos if cfg.labeled_demos or not d.labeled], cfg.demo_pool_size)
        learning = [lane for lane, batch in enumerate(batches) if batch.errors or batch.pooled]
        # Each lane's bar in stage 1: its values' scores on its minibatch (per sample, and their mean).
        bars: dict[int, tuple[list[float | None] | None, float]] = {
            lane: (batch.current, batch.score) for lane, batch in enumerate(batches)}
        merge = next_merge(state, len(val)) if self.parents.pool and len(state.merges) < cfg.merges else None
        if merge is not None:  # validated as a candidate built on the first lane's values
            (merged, pair), on = merge, bases[0] or best
            state.merges.append(pair)
            records[0].merged = pair
            change = {name: value for name, value in merged.items() if value != on[name]}
            await self._validate(state, records, [self._candidate(change, 0, batches, bars, bases[0], pair)],
                                 train, val, bars, bases)
        aggregated = {lane: aggregate(batches[lane].gradients, cfg.max_gradient_samples, cfg.max_feedback_chars)
                      for lane in learning}  # none when nothing is to be learnt: no backward call was paid
        for group in self.candidates.groups(names, parameters) if learning else []:
            # A perfect minibatch: no candidate can beat it in stage 1, so none is asked for.
            asking = [lane for lane in learning if bars[lane][1] < 1.0]
            if not asking:
                break
            proposed = await gather_all(*(propose(group, self._asker(state, rng, records[lane], aggregated[lane],
                                                                     bases[lane])) for lane in asking))
            candidates = []
            current = self._member(state)  # the pool position of the best values, built on by lanes without a base
            for lane, (changes, counts) in zip(asking, proposed):
                record = records[lane]
                record.unparsed_proposals += counts.unparsed
                record.failed_proposals += counts.failed
                record.unparsed_example = record.unparsed_example or counts.unparsed_example
                parents = [drawn[lane]] if bases[lane] else [current] if current is not None else []
                candidates += [self._candidate(change, lane, batches, bars, bases[lane], parents)
                               for change in changes]
            await self._validate(state, records, candidates, train, val, bars, bases)
            for name in group:
                if name in state.failed:
                    state.failed[name] = state.failed[name][-20:]  # bounded: the optimizer sees the last few
        for record in records:
            record.best_val = state.best_val

    @staticmethod
    def _candidate(change: dict[str, str], lane: int, batches: list[Minibatch],
                   bars: dict[int, tuple[list[float | None] | None, float]], base: dict[str, str],
                   parents: list[int]) -> Candidate:
        current, bar = bars[lane]
        return Candidate(change, lane, batches[lane].positions, current, bar, base, parents)

    async def _validate(self, state: TrainState, records: list[StepRecord], candidates: list[Candidate],
                        train: Dataset, val: Dataset, bars: dict[int, tuple[list[float | None] | None, float]],
                        bases: list[dict[str, str]]) -> None:
        """Validate candidates; accept the first to pass. Its lane then builds on the new best values (its base
        in `bases` emptied), with the bar in `bars` raised."""
        admit = (lambda values, result, parents: self.parents.admit(state, values, result, parents)) \
            if self.parents.pool else None
        passed = await self.validation.first_to_pass(state, records, candidates, self.workflow.state(), train, val,
                                                     admit)
        if passed is None:
            return
        self._accept(state, records[passed.candidate.lane], passed)
        # Later candidates must beat the new values, whose per-sample scores are unknown; on its own
        # minibatch their mean is the accepted candidate's stage-1 score.
        won = passed.candidate.lane
        bases[won] = {}
        bars.update({lane: (None, (passed.record.stage1 if self.config.stage1 else bar) if lane == won else bar)
                     for lane, (_, bar) in bars.items()})

    def _member(self, state: TrainState) -> int | None:
        """The pool position of the best values (the last member holding them), if they are in the pool."""
        values = self.workflow.state()
        return next((i for i in range(len(state.pool) - 1, -1, -1) if state.pool[i].values == values), None)

    def _record(self, step: int, best_val: float, batch: Minibatch) -> StepRecord:
        outcome = batch.outcome
        return StepRecord(step=step, batch=[r.id for r in outcome.results], batch_score=batch.drawn_score,
                          errors=batch.errors, best_val=best_val, unparsed_gradients=outcome.backward.unparsed,
                          unparsed_example=outcome.backward.example, failed_gradients=outcome.backward.failed,
                          raised=count_raised(outcome.results),
                          gradient_samples={name: len({g.sample_id for g in outcome.gradients if g.parameter == name})
                                            for name in {g.parameter for g in outcome.gradients}})

    def _asker(self, state: TrainState, rng: random.Random, record: StepRecord, aggregated: dict[str, str],
               base: dict[str, str]) -> Callable[[str, dict[str, str]], Awaitable[Proposed]]:
        """How one step asks a parameter's optimizer for proposals: the parameter and its peers shown with the
        values the step built on (`base`, when not the best ones), and peers with `peer_values` over those."""
        cfg, parameters, peers = self.config, self.workflow.parameters(), self.workflow.peers()

        async def ask(name: str, peer_values: dict[str, str]) -> Proposed:
            optimizer = next(o for o in self.optimizers if o.handles(parameters[name]))
            return await optimizer.propose(ProposalContext(
                parameter=_valued(parameters[name], base),
                peers=[_valued(p, {**base, **peer_values}) for p in peers[name]],
                gradients=aggregated.get(name, ""),
                history=sorted(state.history.get(name, []), key=lambda h: -h.score)[:cfg.history_size],
                failed=state.failed.get(name, []), k=cfg.proposals, step=record.step, batch=set(record.batch),
                rng=rng, demo_pool=state.demo_pool.get(name, [])))

        return ask

    def _accept(self, state: TrainState, record: StepRecord, passed: Passed) -> None:
        score, old = passed.result.strict_score, self.workflow.state()
        base = {name: value for name, value in passed.candidate.base.items() if value != old[name]}
        change = {**base, **passed.candidate.change}  # what differs from the best values, proposed last
        self.on_event(Accepted(step=record.step, parameter=passed.record.parameter, best_val=score))
        self.workflow.load_state(change)
        state.best_val, state.val_weak = score, passed.result.weak
        state.best_val_samples = passed.result.evaluated if passed.result.estimated else None
        for parameter, value in change.items():
            state.history.setdefault(parameter, []).append(ScoredValue(value=value, score=score))
            record.accepted.append(parameter)
        state.error_pool = []  # the values changed: the pooled errors' scores and gradients no longer hold


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


def _valued(parameter: Parameter, values: dict[str, str]) -> Parameter:
    """The parameter as an optimizer sees it, with the value proposed for it earlier in the group, if any."""
    if parameter.name not in values:
        return parameter
    shown = copy.copy(parameter)
    shown.value = values[parameter.name]
    return shown


def _jsonable(rng_state: tuple) -> list:
    version, internal, gauss = rng_state
    return [version, list(internal), gauss]


def _as_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
