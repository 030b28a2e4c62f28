"""The trainer's settings, and spending limits with the one check that the trainer and a sweep share."""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from raygrad.llm.models import Strict
from raygrad.optim.candidates import CandidateMode
from raygrad.optim.parents import ParentMode


class SpendLimits(Strict):
    """Limits on calls, tokens, dollars and wall time; unset means no limit."""

    max_calls: int | None = Field(None, ge=1, description="stop once this many LLM calls were paid for")
    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)
    max_wall_s: float | None = Field(None, gt=0, description="stop once this much wall time was spent")

    def reached(self, calls: int, tokens: int, cost: float, elapsed_s: float, scope: str = "") -> str | None:
        """Why no more may be spent (`scope` prefixes the reason, e.g. 'sweep '), or None."""
        if self.max_calls and calls >= self.max_calls:
            return f"{scope}call budget reached ({calls} >= {self.max_calls})"
        if self.max_tokens and tokens >= self.max_tokens:
            return f"{scope}token budget reached ({tokens} >= {self.max_tokens})"
        if self.max_cost and cost >= self.max_cost:
            return f"{scope}cost budget reached (${cost:.4f} >= ${self.max_cost})"
        if self.max_wall_s and elapsed_s >= self.max_wall_s:
            return f"{scope}wall-time limit reached ({elapsed_s:.0f} s >= {self.max_wall_s:.0f} s)"
        return None


class TrainerConfig(SpendLimits):
    """How the trainer optimizes; its spending limits apply to one run."""

    steps: int = Field(12, ge=0)
    patience: int | None = Field(12, ge=1, description=(
        "finish once this many steps in a row accepted nothing: the search has stalled, and each further "
        "step mostly pays the optimizer for proposals that fail (None: run every step; at the default 12, a "
        "run of 12 steps or fewer is never cut)"))
    batch_size: int = Field(4, ge=1)
    proposals: int = Field(5, ge=1, description="candidates asked of the optimizer per parameter per step")
    error_threshold: float = Field(1.0, description="a sample scoring below this is an error sample")
    seed: int = 0
    max_gradient_samples: int = Field(8, ge=1)
    max_feedback_chars: int = Field(600, ge=50)
    history_size: int = Field(3, ge=0, description="best past values shown to the optimizer")
    validation_chunk: int = Field(16, ge=1, description="validation samples per shard sent to a worker")
    early_rejection: bool = Field(True, description="stop a candidate's stage 2 once it cannot beat the best, and "
                                                    "its stage 1 once it gained nothing on the minibatch's errors "
                                                    "(run first); off, every candidate is scored on every sample")
    early_acceptance: float | None = Field(None, gt=0.5, lt=1.0, description=(
        "with early_rejection: accept a candidate in stage 2 once it beats the best with this confidence "
        "(e.g. 0.95): after the current values' misses, the samples not yet run are bounded by the rate on "
        "those run like them (shards in random order). Its validation score is then an estimate "
        "(default: an accepted candidate runs the whole validation set)"))
    min_gain: float = Field(0.0, ge=0, lt=1, description=(
        "a candidate passes stage 2 only when it beats the best validation score by more than this (e.g. "
        "0.03 on 50 validation samples: at least 2 more right), so that a prompt winning a sample by chance "
        "is not taken (default 0: any gain)"))
    stage1: bool = Field(True, description="score a candidate on the minibatch (stage 1) before it may have a "
                                           "stage-2 validation; off, every candidate goes to stage 2, where "
                                           "early rejection runs the current values' misses first")
    stage2_per_parameter: int | None = Field(None, ge=1, description="stage-2 validations a parameter (or the joint "
                                                                     "candidates) may have per step; once that many "
                                                                     "failed, the other candidates are dropped "
                                                                     "(default: no limit)")
    parallel_steps: int = Field(1, ge=1, description=(
        "steps run at once as a round from the same values, each with its own minibatch, gradients and "
        "proposals; their candidates are then validated in step order, the first to pass accepted "
        "(1: one step after another)"))
    parallel_candidates: int = Field(1, ge=1, description=(
        "candidates whose stage 1 runs at once; each has its stage 2 in turn and they are decided in order, so "
        "the decisions are those of one at a time, for the stage-1 calls of candidates after an accepted one "
        "(1: one after another)"))
    demos_per_candidate: int = Field(3, ge=1, description="few-shot demos in one candidate of a demos parameter")
    demo_pool_size: int = Field(64, ge=1, description="correct calls kept per demos parameter to draw demos from")
    parameters: list[str] | None = Field(None, description="the parameters to train, by name (e.g. [demos]); "
                                                           "default: every trainable parameter of the workflow")
    batches_until_error: int = Field(1, ge=1, description="minibatches a step may draw until one holds an error "
                                                          "sample (1: the paper's one minibatch per step)")
    error_pool: int = Field(4, ge=0, description="error samples of earlier minibatches kept until a candidate is "
                                                 "accepted (their values are unchanged, so their gradients still "
                                                 "hold): stage 1 scores them too, and a step whose minibatch has "
                                                 "no error still proposes from them (0: the paper's loop)")
    candidates: CandidateMode = Field("joint", description=(
        "how proposals make candidates. joint: the text parameters' proposals are asked for in turn, each "
        "optimizer seeing the earlier ones' first proposal as its peers' values; the i-th candidate holds each "
        "one's i-th proposal, so one stage-2 validation can accept changes to all of them. per_parameter: one "
        "parameter at a time, as in the paper"))
    parents: ParentMode = Field("best", description=(
        "which values a step builds on. best: the best so far. pareto: GEPA's parent selection; every candidate "
        "that passes stage 1 is validated on the whole set (no early rejection in stage 2) and joins a pool "
        "when no member answers right every sample it does; a step builds on a member that is best on some "
        "validation sample, drawn as often as the samples it is best on"))
    merges: int = Field(0, ge=0, description=(
        "with parents: pareto, merges tried (at most one a step): two pool members that changed different "
        "parameters from a common ancestor, combined and validated as a candidate (0: none)"))
    labeled_demos: bool = Field(False, description="wrong samples add (input, target) demos to the pool too, when "
                                                   "the parameter's one call was given the sample's inputs: a model "
                                                   "that gets nothing right can then learn from demos")

    @model_validator(mode="before")
    @classmethod
    def _retired_switches(cls, raw: Any) -> Any:
        """Settings of earlier versions: a run directory's config that holds them still resumes."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        if "joint_candidates" in raw:
            joint = raw.pop("joint_candidates")
            raw.setdefault("candidates", "joint" if joint else "per_parameter")
        if raw.pop("concurrent_stage1", False):  # all of a step's candidates in stage 1 at once: the same decisions
            raw.setdefault("parallel_candidates", raw.get("proposals", 5))
        if raw.pop("one_parameter_per_step", False):
            raise ValueError("one_parameter_per_step was removed: it scored lower on test than the default on every "
                             "built-in task (README, 'Measured'); delete the setting")
        return raw

    @model_validator(mode="after")
    def _switches_agree(self) -> "TrainerConfig":
        if self.early_acceptance is not None and not self.early_rejection:
            raise ValueError("early_acceptance needs early_rejection: both rely on stage 2 running the current "
                             "values' misses first")
        if self.parents == "pareto" and self.early_acceptance is not None:
            raise ValueError("early_acceptance does not go with parents: pareto, whose pool needs every candidate's "
                             "whole stage 2")
        if self.merges and self.parents != "pareto":
            raise ValueError("merges needs parents: pareto (it combines members of the candidate pool)")
        return self
