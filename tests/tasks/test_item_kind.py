"""ItemKind, the task of `make demo`: its seeded rows, and the demo's learning on the real embedded model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raygrad.cli import main
from raygrad.tasks.item_kind import KINDS, generate_item_kinds

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "raygrad" / "configs" / "item_kind_local.yaml"


def test_rows_are_seeded_each_thing_once_with_its_kind():
    rows = generate_item_kinds(500, seed=0)
    assert rows == generate_item_kinds(500, seed=0) != generate_item_kinds(500, seed=1)
    assert len(rows) == len({r["input"] for r in rows}) == sum(len(items) for items in KINDS.values())
    assert {r["target"] for r in rows} == set(KINDS) and all(r["input"] in KINDS[r["target"]] for r in rows)
    assert generate_item_kinds(10, seed=0) == rows[:10]


@pytest.mark.slow
def test_the_demo_raises_test_accuracy_by_ten_points_on_the_embedded_model(tmp_path, capsys):
    """`make demo`'s config, run in this process on the real SmolLM2: the same run's test before and after."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["output_dir"] = str(tmp_path / "runs")
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    assert main(["optimize", str(tmp_path / "demo.yaml"), "--local", "--report"]) == 0
    result = json.loads((tmp_path / "runs" / config["name"] / "result.json").read_text())
    assert result["test_size"] == 100 and result["failed_samples"] == 0
    assert result["test_after"] - result["test_before"] >= 0.10
    assert result["usage"]["backward"]["calls"] == result["usage"]["optimizer"]["calls"] == 0  # demos need neither
    out = capsys.readouterr().out
    assert "  demos (changed):" in out and "    +<EXAMPLE>" in out
    assert (tmp_path / "runs" / config["name"] / "report" / "report.html").exists()
