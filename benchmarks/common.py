"""Helpers shared by the benchmark scripts: a simulated server in its own process, and table output."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


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


def write_table(name: str, title: str, header: list[str], rows: list[list[object]], notes: str = "") -> str:
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join(lines) + ("\n\n" + notes.strip() if notes else "") + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
    print(text)
    return text
