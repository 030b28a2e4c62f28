"""What the trainer reports while it works, as typed events: the progress display, the tracking and the
Python API's progress callback read these (a run's phases are the runs layer's own events)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from raygrad.llm.client import Usage
from raygrad.optim.evaluate import Raised


class Started(BaseModel):
    """Training starts (or resumes) at `step`, from the initial validation's score."""

    kind: Literal["started"] = "started"
    step: int
    steps: int
    initial_val: float
    best_val: float
    raised: dict[str, Raised] = Field(default_factory=dict)  # samples of the initial validation that raised


class StepEnded(BaseModel):
    """A step was checkpointed: the best score so far, what it accepted and what was spent by its end."""

    kind: Literal["step"] = "step"
    step: int  # steps done
    steps: int
    best_val: float
    accepted: list[str] = Field(default_factory=list)
    usage: dict[str, Usage] = Field(default_factory=dict)
    raised: dict[str, Raised] = Field(default_factory=dict)
    unparsed: int = 0  # backward and optimizer replies of the step that did not parse


class Accepted(BaseModel):
    """A candidate passed both stages: its parameters (comma-separated) and its validation score."""

    kind: Literal["accepted"] = "accepted"
    step: int
    parameter: str
    best_val: float


TrainerEvent = Started | StepEnded | Accepted
