"""What a finished run prints."""
from __future__ import annotations

from pathlib import Path

from raygrad.runs.results import RunResult
from raygrad.runs.summary import result_summary


def finished(**fields) -> RunResult:
    return RunResult(**{"name": "r", "workflow": "object_count", "steps": 3, "accepted": 2, "candidates": 5,
                        "initial_val": 0.4, "best_val": 0.8125, "val_size": 400, "test_before": 0.4,
                        "test_after": 0.8, "test_size": 100, "failed_samples": 0, "values": {"instruction": "b"},
                        "start_values": {"instruction": "a"}, "usage": {}, "wall_s": 1.0, **fields})


def test_a_validation_score_estimated_by_early_acceptance_is_printed_as_an_estimate():
    assert "   0.400   0.812   (400 samples)" in "\n".join(result_summary(finished(), Path("r")))
    lines = "\n".join(result_summary(finished(best_val_samples=96), Path("r")))
    assert "   0.400   0.812   (estimated from 96 of 400 samples)" in lines
    perfect = "\n".join(result_summary(finished(best_val=1.0, best_val_samples=96), Path("r")))
    assert "(estimated from 96 of 400 samples); no candidate can beat a perfect score (here estimated)" in perfect


def test_in_a_notebook_one_runs_bar_is_redrawn_on_its_line(monkeypatch):
    """Notebooks keep a carriage return's line but do not move the cursor up: no ANSI codes there."""
    import io
    import sys

    from raygrad.optim.events import Started, StepEnded
    from raygrad.runs.progress import ProgressPrinter

    monkeypatch.setitem(sys.modules, "ipykernel", object())
    out = io.StringIO()
    printer = ProgressPrinter("nb", out)
    printer([Started(step=0, steps=2, initial_val=0.2, best_val=0.2)], None)
    printer([StepEnded(step=1, steps=2, best_val=0.5)], None)
    printer.close()
    text = out.getvalue()
    assert "\x1b[" not in text and text.count("\r") >= 2 and text.endswith("\n")
    assert text.rsplit("\r", 1)[-1].startswith("nb") and "  1/2" in text.rsplit("\r", 1)[-1]


def test_a_run_that_stalled_says_why_it_finished_before_its_steps():
    line = result_summary(finished(stalled="the last 12 steps accepted nothing (trainer.patience)"), Path("r"))[0]
    assert line.endswith("; finished early: the last 12 steps accepted nothing (trainer.patience)")
    assert "finished early" not in result_summary(finished(), Path("r"))[0]
