"""`raygrad report`: the HTML page and PNGs, checked in a real headless Chromium."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from raygrad.cli import main
from raygrad.llm.client import Usage
from raygrad.optim.state import CandidateRecord, StepRecord, TrainState
from raygrad.runs.results import write_tables
from raygrad.runs.rundir import CONFIG as RUN_CONFIG


def fake_run(directory, name: str, best: list[float], cost_per_step: float, finished: bool) -> None:
    """A run directory as a sweep leaves it: config, checkpoint, steps and candidates tables, result."""
    run_dir = directory / name
    run_dir.mkdir(parents=True)
    (run_dir / RUN_CONFIG).write_text(f"name: {name}\n")
    usage, steps = Usage(), []
    for step, score in enumerate(best):
        usage = usage.add(Usage(calls=10, cost=cost_per_step, prompt_tokens=500, completion_tokens=20))
        steps.append(StepRecord(step=step, batch=["1"], batch_score=0.5, errors=2, best_val=score,
                                usage={"task": usage, "backward": Usage(calls=2 * step), "optimizer": Usage(calls=step)}))
    state = TrainState(values={"instruction": "x"}, initial_val=0.25, best_val=best[-1], history={}, steps=steps,
                       candidates=[CandidateRecord(step=0, parameter="instruction", value="y", stage1=0.6,
                                                   accepted=True, reason="accepted")])
    write_tables(run_dir, state)
    state.usage = steps[-1].usage
    (run_dir / "checkpoint.json").write_text(state.model_dump_json())
    if finished:
        (run_dir / "result.json").write_text(json.dumps({
            "initial_val": 0.25, "best_val": best[-1], "test_before": 0.2, "test_after": 0.6, "wall_s": 321.0,
            "usage": {role: u.model_dump() for role, u in state.usage.items()}}))


def chromium() -> str:
    path = os.environ.get("RAYGRAD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium (CI installs it)")
    return path


def headless(*args: str, cwd) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={cwd / 'chromium-profile'}"]
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_report_renders_a_table_of_runs_and_three_plots_in_a_real_browser(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    fake_run(sweep, "good-run", [0.3, 0.5, 0.5, 0.7], cost_per_step=0.01, finished=True)
    fake_run(sweep, "slow-run", [0.25, 0.25, 0.4], cost_per_step=0.03, finished=False)
    (sweep / "broken-run").mkdir()
    (sweep / "broken-run" / RUN_CONFIG).write_text("name: broken-run\n")
    (sweep / "broken-run" / "error.json").write_text('{"error": "DatasetError: data.jsonl: row 3: missing field"}')
    assert main(["report", str(sweep)]) == 0
    page = sweep / "report" / "report.html"
    assert str(page) in capsys.readouterr().out
    for png in ("validation_by_step.png", "score_vs_cost.png", "calls_per_role.png"):
        assert (sweep / "report" / png).read_bytes()[:4] == b"\x89PNG"
    text = page.read_text()
    assert "src=\"http" not in text and "<script" not in text  # self-contained: nothing fetched
    dom = headless("--dump-dom", page.as_uri(), cwd=tmp_path).stdout
    runs, accepted = dom.split("<h2>Accepted candidates</h2>")
    assert runs.count("<tr>") == 4 and "broken-run" in runs and "row 3: missing field" in runs
    assert 'alt="Score against cost"' in runs  # these runs have a price
    # Each run's accepted candidate: the step, the parameter and the value it moved to.
    assert accepted.count("<td>0</td><td>instruction</td><td></td><td><pre>y</pre></td>") == 2
    assert "<td>good-run</td><td>finished</td><td>0.250</td><td>0.700</td><td>0.200</td><td>0.600</td>" in dom
    assert "<td>slow-run</td><td>started</td><td>0.250</td><td>0.400</td>" in dom
    assert dom.count("data:image/png;base64,") == 3
    shot = tmp_path / "report.png"
    headless(f"--screenshot={shot}", "--window-size=1400,1100", page.as_uri(), cwd=tmp_path)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000  # a page with plots, not blank
    keep = os.environ.get("RAYGRAD_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_report_of_a_directory_without_runs_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no runs here" in capsys.readouterr().err


def test_runs_without_a_price_are_plotted_against_tokens(tmp_path):
    fake_run(tmp_path, "local-run", [0.3, 0.5], cost_per_step=0.0, finished=True)
    page = main(["report", str(tmp_path / "local-run")]) == 0 and tmp_path / "local-run" / "report" / "report.html"
    dom = headless("--dump-dom", page.as_uri(), cwd=tmp_path).stdout
    assert 'alt="Score against tokens (no model has a price)"' in dom and "Score against cost" not in dom
