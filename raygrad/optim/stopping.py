"""When a run ends: finished (its steps done, a perfect validation score that nothing can beat, or with
trainer.patience, that many steps in a row that accepted nothing), or stopped by a spending limit or from
outside, in which case the same run resumes with more."""
from __future__ import annotations

from raygrad.llm.client import Usage
from raygrad.optim.settings import SpendLimits
from raygrad.optim.state import TrainState


class Stopper:
    """Checked before every step (finished) and before every paid call (stopped)."""

    def __init__(self, steps: int, limits: SpendLimits, patience: int | None = None):
        self.steps, self.limits, self.patience = steps, limits, patience
        self.outside: str | None = None  # set from outside (a sweep's limit): stops like a budget

    def finished(self, state: TrainState) -> bool:
        return state.step >= self.steps or state.best_val >= 1.0 or self.stalled(state) is not None

    def stalled(self, state: TrainState) -> str | None:
        """Why the run has stalled, when the last `patience` steps accepted nothing (read from the steps'
        records, so a resumed run agrees), else None."""
        if not self.patience or len(state.steps) < self.patience or \
                any(record.accepted for record in state.steps[-self.patience:]):
            return None
        return f"the last {self.patience} steps accepted nothing (trainer.patience)"

    def stopped(self, usage: dict[str, Usage], elapsed_s: float) -> str | None:
        """Why no more may be spent, or None."""
        if self.outside:
            return self.outside
        spent = Usage()
        for role_usage in usage.values():
            spent = spent.add(role_usage)
        return self.limits.reached(spent.calls, spent.prompt_tokens + spent.completion_tokens, spent.cost, elapsed_s)
