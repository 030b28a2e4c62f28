"""`raygrad eval` end to end against the simulated provider (real HTTP, real litellm)."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from raygrad.cli import main


def test_eval_writes_per_sample_parquet_and_prints_a_summary(sim_server, tmp_path, capsys):
    server = sim_server(responder="object_count", latency_s=0.01)
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: smoke
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count}}
data: {{generator: {{size: 40, seed: 2}}, splits: {{val: "0:40"}}}}
models:
  task: {{model: openai/simulated, api_base: "{server.url}", rpm: 6000}}
""")
    assert main(["eval", str(config), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "score" in out and "failed samples 0" in out and "40 made" in out
    table = pq.read_table(tmp_path / "runs" / "smoke" / "eval_val.parquet").to_pylist()
    assert len(table) == 40 and len(server.log) == 40
    assert all(row["score"] in (0.0, 1.0) and row["error"] is None for row in table)
    # Run again: every call comes from the journal, none reaches the server.
    assert main(["eval", str(config), "--split", "val"]) == 0
    assert len(server.log) == 40 and "40 from the journal" in capsys.readouterr().out


def test_bad_config_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  task: {model: openai/x, max_in_flight: zero}\n")
    result = subprocess.run([sys.executable, "-m", "raygrad", "eval", str(config)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "models.task.max_in_flight" in result.stderr and "Traceback" not in result.stderr


def test_bad_dataset_row_stops_before_any_call(sim_server, tmp_path, capsys):
    server = sim_server(responder="echo")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"input": "a", "target": "1"}) + "\n" + json.dumps({"input": "b"}) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"""
output_dir: {tmp_path / 'runs'}
data: {{path: d.jsonl, splits: {{val: "0:2"}}}}
models: {{task: {{model: openai/simulated, api_base: "{server.url}"}}}}
""")
    assert main(["eval", str(config), "--split", "val"]) == 2
    assert f"{data}: row 1: missing field 'target'" in capsys.readouterr().err
    assert server.log == []


def test_optimize_end_to_end_on_the_simulated_provider_and_rerun_pays_nothing(sim_server, tmp_path, capsys):
    server = sim_server(responder="object_count_trainer")
    config = tmp_path / "run.yaml"
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config.write_text(f"""
name: opt
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 120, seed: 4}}, splits: {{train: "0:20", val: "20:60", test: "60:100"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 3, batch_size: 4, proposals: 2, seed: 1}}
""")
    assert main(["optimize", str(config)]) == 0
    out = capsys.readouterr().out
    prompts = json.loads((tmp_path / "runs" / "opt" / "prompts.json").read_text())
    assert prompts != {"instruction": "Answer.", "output_format": "Reply."}  # something was learned
    assert "validation" in out and "(changed)" in out
    requests = len(server.log)
    # Finished run, same command: resumes from the checkpoint at its end, every call from the journal.
    assert main(["optimize", str(config)]) == 0
    assert len(server.log) == requests
