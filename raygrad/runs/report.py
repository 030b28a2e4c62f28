"""`raygrad report DIR`: one self-contained HTML page (plots embedded) and the plots as PNG files.

DIR is a sweep directory (a run directory per subfolder) or one run's directory. The page has a
table of runs (start -> best validation -> test, cost, calls, time) and three plots: validation
score by step, validation score against cumulative cost (against tokens when no model has a price),
and calls per role.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raygrad.errors import DamagedFile
from raygrad.llm.models import ROLES
from raygrad.runs.rundir import (
    CANDIDATES,
    CHECKPOINT,
    CONFIG,
    ERROR,
    RESULT,
    STEPS,
    read_json,
    rewritten_by_resume,
    run_status,
)


class ReportError(ValueError):
    """A directory with nothing to report; the message says what was looked for."""


def run_directories(directory: Path) -> list[Path]:
    if any((directory / name).exists() for name in (STEPS, CHECKPOINT, CONFIG, ERROR)):
        return [directory]  # one run's, whatever it got to (a run that failed before its first step has error.json)
    runs = sorted(p for p in directory.iterdir() if p.is_dir() and (p / CONFIG).exists()) \
        if directory.is_dir() else []
    if not runs:
        raise ReportError(f"{directory}: no runs here (a run directory has {CONFIG} or {CHECKPOINT})")
    return runs


def _run_row(run_dir: Path) -> dict:
    row = {"name": run_dir.name, "status": run_status(run_dir), "steps": [], "error": ""}
    if (run_dir / RESULT).exists():
        row["result"] = read_json(run_dir / RESULT, rewritten_by_resume(run_dir))
    if (run_dir / ERROR).exists():
        saved = read_json(run_dir / ERROR, "delete it (it only records the failure)")
        error = str(saved.get("error", "")) if isinstance(saved, dict) else ""
        row["error"] = next(iter(error.splitlines()), "")
    row["steps"] = _table_rows(run_dir / STEPS)
    row["accepted"] = [c for c in _table_rows(run_dir / CANDIDATES) if c["accepted"]]
    if "result" not in row and (run_dir / CHECKPOINT).exists():  # unfinished: what it has so far
        state = read_json(run_dir / CHECKPOINT, "move it aside and resume the run: its journal replays every paid call")
        row["result"] = {key: state.get(key) for key in ("initial_val", "best_val", "usage", "stopped")}
        row["result"]["wall_s"] = state.get("elapsed_s")
    return row


def _table_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as err:
        raise DamagedFile(f"{path} is not a readable Parquet table ({' '.join(str(err).split())[:200]}); "
                          + rewritten_by_resume(path.parent)) from None


def _figure_png(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    draw(axes)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _plots(rows: list[dict]) -> dict[str, tuple[str, bytes]]:
    """File name -> (title, PNG) of each plot."""
    from matplotlib.ticker import MaxNLocator

    # Without a price (the local model, a simulated provider) every run costs $0: tokens say more.
    priced = any(step.get(f"{role}_cost") for row in rows for step in row["steps"] for role in ROLES)
    titles = {"validation_by_step.png": "Validation score by step",
              "score_vs_cost.png": "Score against cost" if priced else "Score against tokens (no model has a price)",
              "calls_per_role.png": "Calls per role"}

    def by_step(axes):
        for row in rows:
            result = row.get("result") or {}
            start = result.get("initial_val")
            points = ([(0, start)] if start is not None else []) + [(s["step"] + 1, s["best_val"]) for s in row["steps"]]
            if points:
                axes.plot(*zip(*points), marker="o", label=row["name"])
        axes.set(xlabel="step", ylabel="best validation score", title=titles["validation_by_step.png"])
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))

    def spent_in(step: dict) -> float:
        if priced:
            return sum(step.get(f"{role}_cost") or 0.0 for role in ROLES)
        return sum((step.get(f"{role}_prompt_tokens") or 0) + (step.get(f"{role}_completion_tokens") or 0)
                   for role in ROLES)

    def by_cost(axes):
        for row in rows:
            spent, points = 0.0, []
            for step in row["steps"]:
                spent += spent_in(step)
                points.append((spent, step["best_val"]))
            if points:
                axes.plot(*zip(*points), marker="o", label=row["name"])
        axes.set(xlabel="cumulative cost ($)" if priced else "cumulative tokens (no model of these runs has a price)",
                 ylabel="best validation score", title=titles["score_vs_cost.png"])

    def calls(axes):
        names = [row["name"] for row in rows]
        bottom = [0] * len(rows)
        for role in ROLES:
            counts = [sum(s.get(f"{role}_calls") or 0 for s in row["steps"]) for row in rows]
            axes.bar(names, counts, bottom=bottom, label=role)
            bottom = [b + c for b, c in zip(bottom, counts)]
        axes.set(ylabel="LLM calls in steps", title=titles["calls_per_role.png"])
        axes.tick_params(axis="x", labelrotation=30, labelsize=7)

    return {name: (title, _figure_png(draw)) for (name, title), draw in zip(titles.items(), (by_step, by_cost, calls))}


def _table(rows: list[dict]) -> str:
    head = ("<tr><th>run</th><th>status</th><th>validation start</th><th>best validation</th><th>test before</th>"
            "<th>test after</th><th>cost ($)</th><th>calls</th><th>time (s)</th><th>note</th></tr>")
    body = []
    for row in rows:
        r = row.get("result") or {}
        usage = (r.get("usage") or {}).values()

        def number(value, digits=3):
            return "" if value is None else f"{value:.{digits}f}"

        cells = [row["name"], row["status"], number(r.get("initial_val")), number(r.get("best_val")),
                 number(r.get("test_before")), number(r.get("test_after")),
                 number(sum(u["cost"] for u in usage), 4) if r else "", str(sum(u["calls"] for u in usage)) if r else "",
                 number(r.get("wall_s"), 0), row["error"] or (r.get("stopped") or "")]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _accepted(rows: list[dict]) -> str:
    """Each run's accepted candidates in order: the value a parameter moved to, and its validation score."""
    parts = []
    for row in rows:
        cells = []
        for c in row["accepted"]:
            score = "" if c["stage2"] is None else f"{c['stage2']:.3f}"
            cells.append(f"<tr><td>{c['step']}</td><td>{html.escape(c['parameter'])}</td><td>{score}</td>"
                         f"<td><pre>{html.escape(c['value'])}</pre></td></tr>")
        if cells:
            parts.append(f"<h3>{html.escape(row['name'])}</h3><table class=\"accepted\"><tr><th>step</th>"
                         f"<th>parameter</th><th>validation</th><th>new value</th></tr>{''.join(cells)}</table>")
    return "<h2>Accepted candidates</h2>" + "".join(parts) if parts else ""


def write_report(directory: str | Path, output: str | Path | None = None) -> Path:
    """Write report.html and the PNGs into `output` (default: DIR/report); returns the HTML's path."""
    directory = Path(directory)
    rows = [_run_row(d) for d in run_directories(directory)]
    out = Path(output) if output else directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for name, (title, png) in _plots(rows).items():
        (out / name).write_bytes(png)
        images.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                      f'{base64.b64encode(png).decode()}"></figure>')
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>raygrad report: {html.escape(directory.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, td:last-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }}
table.accepted td, table.accepted th {{ text-align: left; vertical-align: top; }}
pre {{ margin: 0; white-space: pre-wrap; }}
</style></head><body>
<h1>raygrad report: {html.escape(directory.name)}</h1>
<p>{len(rows)} run{"s" if len(rows) != 1 else ""} in {html.escape(str(directory.resolve()))}</p>
{_table(rows)}
{''.join(images)}
{_accepted(rows)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
