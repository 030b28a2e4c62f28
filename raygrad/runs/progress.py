"""Progress of a sweep, rendered by the driver only: the actors send events, this draws them.

On a terminal: a live view, one bar per run plus totals, redrawn in place. Elsewhere (job logs): one
compact status line per run at a steady interval, and a line whenever a run ends.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

from pydantic import BaseModel

from raygrad.llm.client import Usage
from raygrad.optim.evaluate import Raised, add_raised, raised_text
from raygrad.optim.events import Started, StepEnded, TrainerEvent

ENDED = ("finished", "stopped", "failed", "skipped")


class Phase(BaseModel):
    """A run moved to another phase of its lifecycle (loading data, training, testing, ...)."""

    kind: Literal["phase"] = "phase"
    status: str
    steps: int


RunEvent = TrainerEvent | Phase


class ProgressEvent(BaseModel):
    """What a run reports while it works: a phase (`status`), the start of training, a step's end or an
    accepted candidate (`kind`), with the figures each carries; `usage` is the run's spending so far."""

    run: str
    kind: str = "phase"  # phase, started, step, accepted
    status: str | None = None
    step: int | None = None
    steps: int | None = None
    initial_val: float | None = None
    best_val: float | None = None
    accepted: list[str] | None = None
    parameter: str | None = None
    raised: dict[str, Raised] = {}
    usage: dict[str, Usage] | None = None

    @classmethod
    def of(cls, run: str, event: RunEvent, usage: dict[str, Usage] | None) -> ProgressEvent:
        fields = {key: value for key, value in event if key in cls.model_fields and key != "usage"}
        return cls(run=run, **fields, usage=getattr(event, "usage", None) or usage)


class RunProgress(BaseModel):
    name: str
    status: str = "waiting"  # waiting, running (in a sweep) or what one run is at, finished, stopped, failed, skipped
    step: int = 0
    steps: int = 0
    initial_val: float | None = None
    best_val: float | None = None
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    raised: dict[str, Raised] = {}  # samples whose workflow raised over the steps so far, per exception type
    unparsed: int = 0  # backward and optimizer replies that did not parse, over the steps so far
    retries: int = 0  # calls retried (the provider refused, failed or gave no answer), and the latest reason
    last_retry: str = ""
    note: str = ""

    def apply(self, event: RunEvent) -> None:
        if isinstance(event, Phase):
            self.status, self.steps = event.status, event.steps
            return
        self.step, self.best_val = event.step, event.best_val
        if isinstance(event, Started | StepEnded):
            self.steps = event.steps
            self.raised = add_raised(self.raised, event.raised)
        if isinstance(event, Started):
            self.initial_val = event.initial_val
        if isinstance(event, StepEnded):
            self.unparsed += event.unparsed
            if event.usage:  # a step's event carries the usage at its end
                self.spend(event.usage)

    def spend(self, usage: dict[str, Usage]) -> None:
        self.calls = sum(u.calls for u in usage.values())
        self.tokens = sum(u.prompt_tokens + u.completion_tokens for u in usage.values())
        self.cost = sum(u.cost for u in usage.values())
        retries = sum(u.retries for u in usage.values())
        if retries > self.retries:
            self.last_retry = next((u.last_retry for u in usage.values() if u.last_retry), self.last_retry)
        self.retries = retries

    def line(self) -> str:
        val = "" if self.best_val is None else f" val {self.initial_val or 0:.3f}->{self.best_val:.3f}"
        step = f" step {self.step}/{self.steps}" if self.steps else ""
        raised = f" raised {sum(r.count for r in self.raised.values())}: {raised_text(self.raised)[:160]}" \
            if self.raised else ""
        raised += f" unparsed replies {self.unparsed}" if self.unparsed else ""
        raised += f" retries {self.retries} (latest: {self.last_retry[:120]})" if self.retries else ""
        return (f"{self.name}: {self.status}{step}{val} calls {self.calls} "
                f"tokens {self.tokens} ${self.cost:.4f}{raised}" + (f" ({self.note})" if self.note else ""))


class ProgressView:
    """On a terminal, a live view redrawn in place (ANSI); in a notebook, one run's bar redrawn on its
    line (a carriage return: notebooks do not move the cursor up); elsewhere, lines."""

    def __init__(self, names: list[str], out: TextIO, interval_s: float = 30.0, live: bool | None = None):
        self.runs = {name: RunProgress(name=name) for name in names}
        self.out, self.interval_s = out, interval_s
        self.live = out.isatty() if live is None else live
        self.in_place = live is None and not self.live and len(names) == 1 and "ipykernel" in sys.modules
        self._drawn, self._last_log = 0, float("-inf")

    def totals(self) -> RunProgress:
        done = sum(r.status in ("finished", "skipped") for r in self.runs.values())
        return RunProgress(name="total", status=f"{done}/{len(self.runs)} done",
                           calls=sum(r.calls for r in self.runs.values()),
                           tokens=sum(r.tokens for r in self.runs.values()),
                           cost=sum(r.cost for r in self.runs.values()))

    def update(self, name: str, events: list[RunEvent], usage: dict[str, Usage] | None, each: bool = False) -> None:
        """A run's events since the last update, and its usage so far (None: unchanged). `each`: a line
        for every phase and step among the events (a poll may bring several), then one for now."""
        run = self.runs[name]
        for event in events:
            run.apply(event)
            if each and isinstance(event, Phase | Started | StepEnded):
                self.render(force=True)
        if usage is not None:
            run.spend(usage)

    def ended(self, name: str, status: str, note: str = "") -> None:
        run = self.runs[name]
        run.status, run.note = status, note
        if self.in_place:
            self.out.write(f"\r{run.line()}\n")
        elif not self.live:
            self.out.write(run.line() + "\n")
            self.out.flush()

    def render(self, force: bool = False) -> None:
        if self.in_place:
            [run] = self.runs.values()
            self.out.write(f"\r{self._bar(run)}")
            self.out.flush()
        elif self.live:
            self._redraw()
        elif force or time.monotonic() - self._last_log >= self.interval_s:
            self._last_log = time.monotonic()
            for run in self.runs.values():
                if run.status != "waiting" and run.status not in ENDED:  # at work
                    self.out.write(run.line() + "\n")
            if len(self.runs) > 1:
                self.out.write(self.totals().line() + "\n")
            self.out.flush()

    def _redraw(self) -> None:
        lines = [self._bar(r) for r in self.runs.values()]
        total = self.totals()
        lines.append(f"{'total':<24} {total.status:<28} calls {total.calls:>7}  tokens {total.tokens:>9}  "
                     f"${total.cost:.4f}")
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")  # back to the first line drawn last time
        self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    @staticmethod
    def _bar(run: RunProgress, width: int = 20) -> str:
        filled = round(width * run.step / run.steps) if run.steps else (width if run.status == "finished" else 0)
        val = f"{run.best_val:.3f}" if run.best_val is not None else "  -  "
        return (f"{run.name[:24]:<24} [{'#' * filled}{'.' * (width - filled)}] {run.step:>3}/{run.steps:<3} "
                f"{run.status:<9} val {val}  calls {run.calls:>7}  ${run.cost:.4f}")


class ProgressPrinter:
    """A run's progress as `raygrad optimize` shows it (ProgressView); `close()` ends a bar drawn in place."""

    def __init__(self, name: str, out: TextIO, interval_s: float = 30.0):
        self.name, self.view = name, ProgressView([name], out, interval_s=interval_s)

    def __call__(self, events: list[RunEvent], usage: dict[str, Usage] | None) -> None:
        self.view.update(self.name, events, usage, each=True)
        self.view.render()

    def close(self) -> None:
        if self.view.in_place:
            self.view.out.write("\n")


def progress_callback(name: str, receive: Callable[[ProgressEvent], None]
                      ) -> Callable[[list[RunEvent], dict[str, Usage] | None], None]:
    """A run's progress handed to a function as ProgressEvents."""
    def on_progress(events: list[RunEvent], usage: dict[str, Usage] | None) -> None:
        for event in events:
            receive(ProgressEvent.of(name, event, usage))
    return on_progress
