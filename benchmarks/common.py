"""Helpers shared by the benchmark scripts: a simulated server in its own process, table output, and
peers_cost's questions."""
from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PEERS_COST_VAL = 50  # peers_cost's validation questions unless --val says otherwise


@contextmanager
def simulated_server(**settings: object) -> Iterator[str]:
    """Run raygrad.testing.server in a child process (its CPU apart from the client's); yield its URL."""
    args = [sys.executable, "-m", "raygrad.testing.server"]
    for name, value in settings.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(process.stdout.readline())["url"]  # type: ignore[union-attr]
        yield url
    finally:
        process.terminate()
        process.wait(10)


def server_log(url: str) -> list[dict]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_log", timeout=30) as reply:
        return json.load(reply)


def server_requests(url: str) -> tuple[int, int]:
    """How many requests the server has seen, and refused, without fetching its log."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_log?count=1", timeout=30) as reply:
        counts = json.load(reply)
    return counts["requests"], counts["refused"]


def max_in_window(times: list[float], window: float) -> int:
    """The most requests any sliding window of `window` seconds held."""
    times, most, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


@functools.cache
def measured_on() -> str:
    """The commit the benchmark ran on (and whether the checkout had changes beside it), as it was when the
    benchmark started: read when this module is imported, so a commit made while it runs is not named."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent.parent).stdout.strip()  # the repository's root: paths below

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit} (with uncommitted changes)" if git("status", "--porcelain", "--", "raygrad") else commit


measured_on()  # at the benchmark's start (cached)


def spread(values: list[float], digits: int) -> str:
    """Mean (min-max)."""
    return f"{statistics.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def write_table(name: str, title: str, header: list[str], rows: list[list[object]], notes: str = "") -> str:
    text = f"# {title}\n\n{table(header, rows)}" + ("\n\n" + notes.strip() if notes else "") \
        + f"\n\nMeasured on commit {measured_on()}.\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
    print(text)
    return text


def peers_cost_questions(val: int = PEERS_COST_VAL) -> dict[str, list[dict]]:
    """The ObjectCount questions peers_cost.py and simulator_ceiling.py share: 50 training, `val`
    validation, 100 held-out test."""
    from raygrad.tasks.object_count import generate_object_counting

    rows = generate_object_counting(150 + val, seed=0)
    return {"train": rows[:50], "val": rows[50:50 + val], "test": rows[50 + val:]}


def sized(name: str, val: int) -> tuple[str, str]:
    """A results file's name and the command's `--val` flag: the plain name at peers_cost's 50 questions."""
    return (name, "") if val == PEERS_COST_VAL else (f"{name}_val{val}", f" --val {val}")
