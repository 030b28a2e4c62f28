"""What `raygrad optimize` prints when a run ends: scores before and after, the prompts that changed
(as a diff), spending per role, and where the results are."""
from __future__ import annotations

import difflib
from pathlib import Path

from raygrad.llm.models import ROLES
from raygrad.optim.evaluate import raised_text
from raygrad.runs.config import RunConfig
from raygrad.runs.results import RunResult
from raygrad.runs.rundir import PROMPTS, SKIPPED_ROWS


def models_line(config: RunConfig) -> str:
    """The model of every role, said before a run starts (a role left out uses the task model)."""
    def shown(role: str) -> str:
        model = config.model_for(role).model or "the embedded SmolLM2-135M"
        return f"{role} {model}" + (" (left out: the task model's)" if role not in config.models and role != "task"
                                    and "task" in config.models else "")
    named = [name for name in config.models if name not in ROLES]
    return f"{config.name}: models: " + ", ".join([shown(role) for role in ROLES] +
                                                  [f"{name} {config.models[name].model}" for name in named])


def prompt_diff(name: str, before: str, after: str) -> list[str]:
    """A unified diff of one parameter's value; [] when it did not change."""
    if before == after:
        return []
    return list(difflib.unified_diff(before.splitlines() or [""], after.splitlines() or [""],
                                     f"{name} (start)", f"{name} (best)", lineterm="", n=1))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def result_summary(result: RunResult, run_dir: Path) -> list[str]:
    lines = [f"resumed from {result.resumed_from}"] if result.resumed_from else []
    lines.append(f"optimized {result.workflow} for {result.steps} steps ({result.accepted} of {result.candidates} "
                 f"candidates accepted) in {result.wall_s:.0f} s" + (f"; stopped: {result.stopped}" if result.stopped
                                                                      else "")
                 + (f"; finished early: {result.stalled}" if result.stalled else ""))
    if result.skipped_rows:
        lines.append(f"  skipped {result.skipped_rows} bad rows of the dataset: {run_dir / SKIPPED_ROWS}")
    lines.append(f"  {'':<12}{'before':>8}{'after':>8}")
    measured = (f"estimated from {result.best_val_samples} of {result.val_size} samples"
                if result.best_val_samples is not None else f"{result.val_size} samples")
    lines.append(f"  {'validation':<12}{result.initial_val:>8.3f}{result.best_val:>8.3f}   ({measured})"
                 + (f"; no candidate can beat a perfect score{' (here estimated)' * bool(result.best_val_samples)}, "
                    "so the run ends there" if result.best_val >= 1.0 else ""))
    if result.test_before is None:
        lines.append(f"  {'test':<12}   not evaluated: data.splits has no test split")
    elif result.test_after is None:
        lines.append(f"  {'test':<12}{result.test_before:>8.3f}{'-':>8}   "
                     "(not evaluated: the run stopped at its budget)")
    else:
        lines.append(f"  {'test':<12}{_score(result.test_before):>8}{_score(result.test_after):>8}   "
                     f"({result.test_size} samples, {result.failed_samples} failed)")
    unchanged = [name for name, value in result.values.items() if value == result.start_values.get(name)]
    for name, value in result.values.items():
        diff = prompt_diff(name, result.start_values.get(name, ""), value)
        if diff:
            lines.append(f"  {name} (changed):")
            lines += [f"    {line}" for line in diff]
    lost = [name for name in unchanged if name not in result.no_gradient]
    if lost:
        lines.append(f"  unchanged: {', '.join(lost)}")
    if result.no_gradient:
        lines.append(f"  no gradient reached: {', '.join(result.no_gradient)} (no error sample's loss led to them; "
                     "see the traces: raygrad.Trace.reached)")
    if result.raised:
        lines.append(f"  raised: {sum(r.count for r in result.raised.values())} samples, scored 0 "
                     f"({raised_text(result.raised)})")
    if result.failed_gradients:
        lines.append(f"  backward: {result.failed_gradients} calls failed (no gradient from them)")
    if result.failed_proposals:
        lines.append(f"  optimizer: {result.failed_proposals} calls failed (no candidate from them)")
    for role, unparsed in (("backward", result.unparsed_gradients), ("optimizer", result.unparsed_proposals)):
        if unparsed:
            asked = result.usage[role].calls + result.usage[role].cached_calls if role in result.usage else "?"
            lines.append(f"  {role}: {unparsed} of {asked} replies did not parse (nothing learned from them)")
    if result.unparsed_example:
        lines.append(f"    e.g. {result.unparsed_example[:240]}")
    for role, u in result.usage.items():
        lines.append(f"  {role:<10} {u.calls:>5} calls  {u.cached_calls:>5} from journal  "
                     f"{u.prompt_tokens + u.completion_tokens:>8} tokens")
    stats = result.ray
    if stats:  # run on Ray
        lines.append(f"  ray: cluster {stats.get('cluster', '?')}, {len(stats['workers'])} workers, "
                     f"{len(stats['replaced'])} replaced after dying, "
                     f"{stats['cancelled_shards']} validation shards cancelled early; peak memory "
                     f"{stats['peak_rss_mb']['optimizer']:.0f} MB optimizer, "
                     f"{max(v for k, v in stats['peak_rss_mb'].items() if k != 'optimizer'):.0f} MB largest worker")
    lines.append(f"  prompts: {run_dir / PROMPTS}   results: {run_dir}/*.parquet, samples/")
    return lines
