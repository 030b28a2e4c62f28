"""`raygrad eval` end to end against the simulated provider (real HTTP, real litellm)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from raygrad.cli import main
from raygrad.core.prompts import BACKWARD_SYSTEM
from raygrad.tasks.simulated import FIXES, holds


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


def test_optimize_end_to_end_on_the_simulated_provider_and_rerun_pays_nothing(ray_cluster, sim_server, tmp_path, capsys):
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
storage: file://{tmp_path / 'store'}
""")
    assert main(["optimize", str(config), "--report"]) == 0
    out = capsys.readouterr().out
    prompts = json.loads((tmp_path / "runs" / "opt" / "prompts.json").read_text())
    assert prompts != {"instruction": "Answer.", "output_format": "Reply."}  # something was learned
    # While it works: a line per phase and per step (the output is not a terminal). At the end: the
    # scores before and after, each changed prompt as a diff, and the report's path.
    lines = out.splitlines()
    assert lines[0].startswith("opt: models: task openai/simulated, backward openai/simulated")
    assert lines[1].startswith("opt: testing the start values step 0/3 calls 0")
    assert list(dict.fromkeys(line.split(" val ")[0].split(" calls ")[0] for line in lines
                              if line.startswith("opt: training"))) == [
        "opt: training step 0/3", "opt: training step 1/3", "opt: training step 2/3", "opt: training step 3/3"]
    assert any(line.startswith("opt: testing the best values step 3/3") for line in lines)
    result = json.loads((tmp_path / "runs" / "opt" / "result.json").read_text())
    assert (f"  validation     {result['initial_val']:.3f}   {result['best_val']:.3f}   (40 samples)" in lines
            and f"  test           {result['test_before']:.3f}   {result['test_after']:.3f}   (40 samples, 0 failed)"
            in lines)
    changed = [name for name in ("instruction", "output_format") if prompts[name] != result["start_values"][name]]
    for name in changed:
        assert f"    --- {name} (start)" in lines and f"    +++ {name} (best)" in lines
        assert f"    +{prompts[name].splitlines()[0]}" in lines
    assert f"  report: {tmp_path / 'runs' / 'opt' / 'report' / 'report.html'}" in lines
    assert (tmp_path / "runs" / "opt" / "report" / "report.html").exists()
    # At the provider: two backward calls (one per trainable text peer) per error sample, nothing else.
    steps = json.loads((tmp_path / "runs" / "opt" / "checkpoint.json").read_text())["steps"]
    backward_requests = [e for e in server.log if e.messages[0]["content"] == BACKWARD_SYSTEM]
    assert len(backward_requests) == 2 * sum(step["errors"] for step in steps) > 0
    requests = len(server.log)
    # Finished run, same command: resumes from the checkpoint at its end, every call from the journal.
    assert main(["optimize", str(config)]) == 0
    assert len(server.log) == requests
    # The results were copied to storage; with the local run directory gone (a new cluster), the run
    # resumes from storage's checkpoint and journal: not one call is paid again.
    assert json.loads((tmp_path / "store" / "prompts.json").read_text()) == prompts
    shutil.rmtree(tmp_path / "runs")
    capsys.readouterr()
    assert main(["optimize", str(config)]) == 0
    assert f"resumed from file://{tmp_path / 'store'}/checkpoint.json" in capsys.readouterr().out
    assert json.loads((tmp_path / "runs" / "opt" / "prompts.json").read_text()) == prompts
    assert len(server.log) == requests
    for name in ("steps.parquet", "candidates.parquet", "calls.parquet", "result.json", "journal.sqlite"):
        assert (tmp_path / "store" / name).exists(), name


def test_cost_budget_stops_then_resume_finishes_like_an_uninterrupted_run_paying_no_call_twice(ray_cluster,
        sim_server, tmp_path, capsys):
    server = sim_server(responder="object_count_trainer")
    model = (f'{{model: openai/simulated, api_base: "{server.url}", max_in_flight: 4, '
             f'input_cost_per_token: 0.00001, output_cost_per_token: 0.00002}}')

    def write_config(name: str, budget: str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"""
name: {name}
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 120, seed: 4}}, splits: {{train: "0:20", val: "20:60", test: "60:100"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 3, batch_size: 4, proposals: 2, seed: 1, validation_chunk: 4{budget}}}
runtime: {{workers: 1, shards_per_worker: 1}}
""")
        return str(path)

    assert main(["optimize", write_config("whole", "")]) == 0
    whole_requests = len(server.log)
    whole = json.loads((tmp_path / "runs" / "whole" / "checkpoint.json").read_text())
    assert 0.0 < whole["usage"]["task"]["cost"]
    total_cost = sum(u["cost"] for u in whole["usage"].values())
    server.log.clear()
    capsys.readouterr()

    limit = total_cost / 2
    assert main(["optimize", write_config("budget", f", max_cost: {limit}")]) == 0
    out = capsys.readouterr().out
    stopped = json.loads((tmp_path / "runs" / "budget" / "checkpoint.json").read_text())
    spent = sum(u["cost"] for u in stopped["usage"].values())
    assert "cost budget reached" in stopped["stopped"] and stopped["step"] < 3 and "to continue from step" in out
    # Checked before each shard is sent to a worker (and before each optimizer call): what is in
    # flight then may go past the limit, here one shard of at most 4 samples or one batch's
    # backward (2 peers x 4 errors). The dearest call: the longest prompt seen (the server counts
    # words as tokens) with a long reply.
    dearest = max(sum(len(str(m["content"]).split()) for m in e.messages) for e in server.log) * 1e-5 + 200 * 2e-5
    assert limit <= spent < limit + 8 * dearest
    # Same run, budget raised: it finishes, identical to the uninterrupted run, no request made twice.
    assert main(["optimize", write_config("budget", "")]) == 0
    resumed = json.loads((tmp_path / "runs" / "budget" / "checkpoint.json").read_text())
    assert resumed["values"] == whole["values"] and resumed["best_val"] == whole["best_val"]
    assert resumed["stopped"] is None and len(server.log) == whole_requests


@pytest.mark.parametrize("workflow, field, says", [
    ('{class: "nosuch.module:Flow"}', "workflow.class", "ModuleNotFoundError: No module named 'nosuch'"),
    ('{class: "counting.workflow:Nope"}', "workflow.class", "has no 'Nope'"),
    ('{class: "counting.workflow:CountThenAnswer", args: {tries: 3}}', "workflow.args",
     "TypeError: CountThenAnswer.__init__() got an unexpected keyword argument 'tries'"),
    ('{class: "counting.metrics:count_with_feedback"}', "workflow.class", "is not a raygrad.Workflow subclass"),
    ('{class: "counting.workflow:CountThenAnswer", eval: "counting.metrics:nothing"}', "workflow.eval", "has no"),
])
def test_a_users_workflow_that_cannot_be_built_is_named_by_field_before_any_call(counting_project, workflow,
                                                                                 field, says):
    project, config, server = counting_project
    broken = project / "broken.yaml"
    text = config.read_text()
    start = text.index("workflow:")
    broken.write_text(text[:start] + f"workflow: {workflow}\n" + text[text.index("data:"):])
    result = subprocess.run([sys.executable, "-m", "raygrad", "optimize", str(broken)], capture_output=True,
                            text=True, cwd=project.parent, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{field}: " in result.stderr and says in result.stderr and "Traceback" not in result.stderr
    assert server.log == []  # and Ray never started: the error came first


def test_two_input_fields_a_routed_model_and_no_test_split_without_ray(sim_server, tmp_path, capsys):
    router, main_model = sim_server(responder="echo"), sim_server(responder_fn=lambda m, b: "Answer: 3")
    (tmp_path / "routed.py").write_text('''
from raygrad import LLMCall, Parameter, Workflow


class Routed(Workflow):
    def __init__(self):
        self.route_instruction = Parameter("Say which expert answers.", description="routes the question")
        self.answer_instruction = Parameter("Answer.")
        self.route = LLMCall(system=[self.route_instruction], model="router")
        self.answer = LLMCall(system=[self.answer_instruction])

    async def forward(self, question, context):
        expert = await self.route(question=question)
        return await self.answer(question=question, context=context, expert=expert)
''')
    rows = [{"question": f"How many in {i}?", "context": ["a", "b", "c"], "answer": {"count": 3}} for i in range(12)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "metric.py").write_text("def count(prediction, example):\n"
                                        "    return float(prediction.endswith(str(example.target['count'])))\n")
    model = f'{{model: openai/simulated, api_base: "{main_model.url}"}}'
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: routed
output_dir: {tmp_path / 'runs'}
workflow: {{class: "routed:Routed", eval: "metric:count"}}
data: {{path: data.jsonl, input_fields: [question, context], target_field: answer, splits: {{train: "0:6", val: "6:12"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model},
          router: {{model: openai/simulated, api_base: "{router.url}"}}}}
trainer: {{steps: 1, batch_size: 2, proposals: 1}}
""")
    assert main(["optimize", str(config), "--local"]) == 0
    out = capsys.readouterr().out
    assert "  test           not evaluated: data.splits has no test split" in out and "  validation     " in out
    assert len(router.log) == 6 and all(e.messages[1]["content"].startswith("How many") for e in router.log)
    answers = [e for e in main_model.log if e.messages[0]["content"] == "Answer."]
    assert len(answers) == 6 and "context:\n[1] a\n[2] b\n[3] c" in answers[0].messages[1]["content"]
    assert "expert:\nSay which expert" not in answers[0].messages[1]["content"]  # the router's own reply


def test_eval_of_a_users_workflow_keeps_the_metrics_feedback(counting_project, capsys):
    project, config, server = counting_project
    assert main(["eval", str(config), "--split", "test"]) == 0
    assert "workflow counting.workflow:CountThenAnswer on split 'test' (20 samples" in capsys.readouterr().out
    rows = pq.read_table(project / "runs" / "counting" / "eval_test.parquet").to_pylist()
    assert len(rows) == 20 and all(r["score"] == 0.0 for r in rows)  # the listing over-counts: every answer is off
    assert rows[0]["feedback"].startswith("The count") and "too high" in rows[0]["feedback"]
    assert rows[0]["target"].isdigit()  # a number target, written as text in the table


def test_ctrl_c_during_eval_prints_one_line_and_the_rerun_pays_only_for_what_was_left(sim_server, tmp_path):
    import signal
    import time

    server = sim_server(responder="object_count", latency_s=0.5)
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: cut
output_dir: {tmp_path / 'runs'}
data: {{generator: {{size: 60, seed: 2}}, splits: {{val: "0:60"}}}}
models: {{task: {{model: openai/simulated, api_base: "{server.url}", max_in_flight: 4}}}}
""")
    command = [sys.executable, "-m", "raygrad", "eval", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(server.log) < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines() == [f"raygrad: interrupted; completed calls are in the journal: run "
                                        f"`raygrad eval {config}` again to resume"]
    paid = len(server.log)
    assert 8 <= paid < 60
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and len(server.log) - paid <= 60 - paid + 4  # at most the calls in flight again


def test_a_run_directory_made_by_optimize_can_be_resumed(counting_project, capsys):
    project, config, server = counting_project
    assert main(["optimize", str(config), "--local"]) == 0
    paid = len(server.log)
    run_dir = project / "runs" / "counting"
    assert (run_dir / "config.yaml").exists()
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--local"]) == 0
    assert f"resumed from {run_dir / 'checkpoint.json'}" in capsys.readouterr().out
    assert len(server.log) == paid  # every call replayed from the journal


def test_eval_whose_every_sample_failed_exits_non_zero_and_says_why_once(sim_server, tmp_path, capsys):
    server = sim_server(responder="object_count", error_rate=1.0)
    config = tmp_path / "run.yaml"
    config.write_text(f"""
output_dir: {tmp_path / 'runs'}
data: {{generator: {{size: 6, seed: 2}}, splits: {{val: "0:6"}}}}
models: {{task: {{model: openai/simulated, api_base: "{server.url}", retry_deadline_s: 1}}}}
""")
    assert main(["eval", str(config)]) == 5
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("raygrad: every sample failed, so there is no score; the first failure: openai/simulated")
    assert "failed samples 6" in captured.out and len(server.log) >= 6


def test_a_provider_outage_checkpoints_nothing_and_the_rerun_scores_for_real(counting_project, capsys):
    project, config, server = counting_project
    config.write_text(config.read_text().replace("models: {task: {model: openai/simulated",
                                                 "models: {task: {retry_deadline_s: 1, model: openai/simulated"))
    server.settings.error_rate = 1.0  # the provider is down: every call answers 500
    assert main(["optimize", str(config), "--local"]) == 5
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("raygrad: stopped: 20 of 20 samples of the initial validation failed (the first: "
                           "openai/simulated: gave up after") and "run the same command again" in line
    assert not (project / "runs" / "counting" / "checkpoint.json").exists()  # no 0.0 kept as the best score
    server.settings.error_rate = 0.0  # the provider is back
    assert main(["optimize", str(config), "--local"]) == 0
    result = json.loads((project / "runs" / "counting" / "result.json").read_text())
    assert result["initial_val"] == 0.0 and result["best_val"] == 1.0 and result["resumed_from"] is None
    assert holds(result["values"]["list_instruction"], FIXES[1])  # the fix of the example's hidden cause


def test_ordinary_mistakes_end_in_one_line_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "latin1.csv").write_bytes(b"input,target\n" + b"x" * 10_000 + b",1\ncaf\xe9,2\n")
    (tmp_path / "keys.yaml").write_text("models: {task: {model: openai/gpt-4o-mini, api_key_env: RAYGRAD_NO_SUCH_KEY}}\n")
    monkeypatch.delenv("RAYGRAD_NO_SUCH_KEY", raising=False)
    cases = {
        "parquet.yaml": ("data: {path: broken.parquet, splits: {train: '0:1', val: '1:2'}}\n", "broken.parquet: not a readable Parquet"),
        "csv.yaml": ("data: {path: latin1.csv, splits: {train: '0:1', val: '1:2'}}\n", "latin1.csv: not UTF-8 text (byte 10019:"),
    }
    for name, (text, says) in cases.items():
        (tmp_path / name).write_text(text)
    runs = [(str(tmp_path / name), says) for name, (_, says) in cases.items()]
    runs += [(str(tmp_path / "folder.yaml"), "folder.yaml: a folder, not a config file"),
             (str(tmp_path / "keys.yaml"), "keys.yaml: models.task: environment variable RAYGRAD_NO_SUCH_KEY")]
    for config, says in runs:
        for command in (["eval", config], ["optimize", config, "--local"]):
            result = subprocess.run([sys.executable, "-m", "raygrad", *command], capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 2, (command, result.stderr)
            assert result.stderr.count("\n") == 1 and says in result.stderr, (command, result.stderr)


def test_a_full_disk_mid_run_ends_in_one_line_keeps_the_checkpoint_and_loses_no_journaled_call(counting_project,
                                                                                            small_disk):
    project, config, server = counting_project
    folder, fill = small_disk
    text = config.read_text().replace(f"output_dir: {project / 'runs'}", f"output_dir: {folder}")
    # Only the answer call is trained, which cannot fix the listing: the run does not end early at 1.0.
    text = text.replace("proposals: 5", "proposals: 2, parameters: [answer_instruction]")
    config.write_text(text.replace("steps: 2,", "steps: 1,"))
    command = [sys.executable, "-m", "raygrad", "optimize", str(config), "--local"]
    assert subprocess.run(command, capture_output=True, text=True, timeout=300).returncode == 0
    checkpoint = (folder / "counting" / "checkpoint.json").read_text()
    first_run = {json.dumps(e.messages) for e in server.log}
    config.write_text(text.replace("steps: 2,", "steps: 3,"))
    filler = fill()
    full = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert full.returncode == 4, full.stderr
    [line] = full.stderr.strip().splitlines()
    assert line.startswith("raygrad: stopped: cannot write ") and "run the same command again" in line, line
    assert (folder / "counting" / "checkpoint.json").read_text() == checkpoint  # the last checkpoint, intact
    filler.unlink()
    paid = len(server.log)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((folder / "counting" / "checkpoint.json").read_text())["step"] == 3
    assert not first_run & {json.dumps(e.messages) for e in server.log[paid:]}  # journaled calls were not paid again



def test_a_full_storage_path_ends_in_one_line_before_any_call(counting_project, small_disk):
    project, config, server = counting_project
    folder, fill = small_disk
    config.write_text(config.read_text() + f"storage: {folder / 'store'}\n")
    fill()
    result = subprocess.run([sys.executable, "-m", "raygrad", "optimize", str(config), "--local"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 4, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"raygrad: stopped: storage {folder / 'store'}: cannot write there") and server.log == []


def test_eval_reads_a_split_of_a_sharded_file(sim_server, tmp_path, capsys):
    from raygrad.tasks.object_count import generate_object_counting

    server = sim_server(responder="object_count")
    rows = generate_object_counting(30, seed=3)
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(f"""
output_dir: {tmp_path / 'runs'}
data: {{path: data.jsonl, shards: true, splits: {{val: "10:30"}}}}
models: {{task: {{model: openai/simulated, api_base: "{server.url}"}}}}
""")
    assert main(["eval", str(config)]) == 0
    assert "(20 samples" in capsys.readouterr().out and len(server.log) == 20
    # A bad row, skipped (data.skip_bad_rows): neither scored nor a failed sample.
    (tmp_path / "data.jsonl").write_text("\n".join([*(json.dumps(r) for r in rows[:15]), "{broken",
                                                      *(json.dumps(r) for r in rows[16:])]) + "\n")
    config.write_text(config.read_text().replace("shards: true", "shards: true, skip_bad_rows: true"))
    assert main(["eval", str(config)]) == 0
    out = capsys.readouterr().out
    assert "over 19 completed samples" in out and "failed samples 0" in out


def test_a_refused_api_key_stops_the_run_at_once_with_exit_2_naming_the_variable(tmp_path, sim_server, monkeypatch,
                                                                                  capsys, simulated_run_config):
    server = sim_server(responder="object_count_trainer", api_key="sk-the-right-one")
    monkeypatch.setenv("SIMULATED_KEY", "sk-an-old-one")
    config = simulated_run_config(tmp_path, server, "refused", model="api_key_env: SIMULATED_KEY",
                                  data='{generator: {size: 40}, splits: {train: "0:20", val: "20:40"}}',
                                  trainer="{steps: 1}")
    assert main(["optimize", str(config), "--local"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "openai/simulated refused the key in SIMULATED_KEY" in line and "sk-an-old-one" not in line
    assert len(server.log) < 40  # the run stopped at the first refusals, not after every sample


def test_sigterm_stops_a_run_like_ctrl_c_with_its_own_exit_code_and_no_partial_file(sim_server, tmp_path,
                                                                                     simulated_run_config,
                                                                                     wait_for_requests):
    """What `ray job stop` and Kubernetes send: one line, exit 143, no half-written table, every paid call
    journaled (the same command then resumes without paying for them again)."""
    import signal

    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    config = simulated_run_config(tmp_path, server, "termed", model="max_in_flight: 4",
                                  workflow='{name: object_count, instruction: "Answer.", output_format: "Reply."}',
                                  data='{generator: {size: 120, seed: 4}, splits: {train: "0:20", val: "20:120"}}',
                                  trainer="{steps: 2, batch_size: 4}")
    command = [sys.executable, "-m", "raygrad", "optimize", str(config), "--local"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_requests(server, 12)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"raygrad: terminated (SIGTERM); completed calls are in the journal: run "
                                        f"`raygrad optimize {config} --local` again to resume"]
    assert not list((tmp_path / "runs").rglob("*.partial")) and not list((tmp_path / "runs").rglob("*.tmp"))
    paid = len(server.answered())
    answered = {tuple(map(str, e.messages)) for e in server.answered()}
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    asked_again = [e for e in server.answered()[paid:] if tuple(map(str, e.messages)) in answered]
    assert len(asked_again) <= 4  # at most the calls that were in flight when it stopped


def test_a_second_process_on_a_run_directory_stops_at_once_naming_the_owner_and_a_dead_owner_is_taken_over(
        sim_server, tmp_path, simulated_run_config, wait_for_requests, hold_until_still):
    import signal
    import socket

    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    config = simulated_run_config(tmp_path, server, "owned", model="max_in_flight: 4",
                                  data='{generator: {size: 80, seed: 4}, splits: {train: "0:20", val: "20:80"}}',
                                  trainer="{steps: 1, batch_size: 4}")
    command = [sys.executable, "-m", "raygrad", "optimize", str(config), "--local"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_requests(server, 4)
    paid = hold_until_still(server)  # the first stands still: whatever reaches the server now is the second's
    try:
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        server.release()
    assert second.returncode == 2, second.stderr
    [line] = second.stderr.strip().splitlines()
    assert f"is in use by raygrad process {first.pid} on {socket.gethostname()}" in line
    assert len(server.log) == paid  # the second stopped before any call
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    taken_over = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert taken_over.returncode == 0, taken_over.stderr[-2000:]


def test_replies_that_never_parse_are_counted_shown_and_end_in_exit_6_when_no_candidate_was_formed(
        sim_server, tmp_path, capsys, simulated_run_config):
    """Backward engine and optimizer models that answer in plain text: the run says so, with an example, and does
    not end as if it had nothing to learn (it used to exit 0: '0 of 0 candidates accepted, unchanged')."""
    from raygrad.testing import RESPONDERS

    task = RESPONDERS["object_count"]
    server = sim_server(responder_fn=lambda messages, body: "Looks fine to me." if body.get("response_format")
                        else task(messages, body))
    config = simulated_run_config(tmp_path, server, "prose",
                                  workflow='{name: object_count, instruction: "Answer.", output_format: "Reply."}',
                                  data='{generator: {size: 40, seed: 4}, splits: {train: "0:20", val: "20:40"}}',
                                  trainer="{steps: 2, batch_size: 4, proposals: 2, parameters: [instruction, "
                                          "output_format]}")
    assert main(["optimize", str(config), "--local"]) == 6
    captured = capsys.readouterr()
    assert "replies did not parse (nothing learned from them)" in captured.out
    assert "e.g. " in captured.out and "Looks fine to me." in captured.out
    assert " unparsed replies " in captured.out  # in the progress lines too
    [line] = captured.err.strip().splitlines()
    assert line.startswith("raygrad: no candidate could be formed: ") and "replies did not parse" in line


def test_each_damaged_file_a_run_reads_is_one_line_naming_it_and_what_to_do(sim_server, tmp_path, capsys,
                                                                            simulated_run_config):
    """The journal, the run directory's config.yaml, a results table, result.json: exit 2 and one line, never a
    traceback; with the file put back, the run goes on as before."""
    server = sim_server(responder="object_count_trainer")
    config = simulated_run_config(tmp_path, server, "damaged", data='{generator: {size: 40}, splits: {train: "0:20", '
                                  'val: "20:40"}}', trainer="{steps: 1, batch_size: 4}")
    assert main(["optimize", str(config), "--local"]) == 0
    run_dir = tmp_path / "runs" / "damaged"

    def one_line(argv: list[str], named: str, remedy: str) -> None:
        capsys.readouterr()
        assert main(argv) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert named in line and remedy in line, line

    for name, garbage, argv, remedy in [
        ("journal.sqlite", b"not a database at all" * 100, ["optimize", str(config), "--local"], "Move it aside"),
        ("config.yaml", b"name: [unclosed\n", ["optimize", str(config), "--local"], "Delete it: this run writes it"),
        ("config.yaml", b"name: [unclosed\n", ["resume", str(run_dir), "--local"], "not valid YAML (line 2"),
        ("steps.parquet", b"PAR1 cut", ["report", str(run_dir)], "delete it and run `raygrad resume"),
        ("result.json", b'{"name": "damaged", "ste', ["report", str(run_dir)], "is not valid JSON (cut short?)"),
    ]:
        kept = (run_dir / name).read_bytes()
        (run_dir / name).write_bytes(garbage)
        one_line(argv, str(run_dir / name), remedy)
        (run_dir / name).write_bytes(kept)
    paid = len(server.log)
    assert main(["optimize", str(config), "--local"]) == 0 and len(server.log) == paid  # as before: all replayed


def test_report_shows_a_run_that_failed_before_its_first_step_as_failed_with_its_error(sim_server, tmp_path, capsys,
                                                                                      simulated_run_config):
    server = sim_server(responder="object_count_trainer", error_rate=1.0)
    config = simulated_run_config(tmp_path, server, "unlucky", model="retry_deadline_s: 1",
                                  data='{generator: {size: 40}, splits: {train: "0:20", val: "20:40"}}',
                                  trainer="{steps: 1}")
    assert main(["optimize", str(config), "--local"]) == 5
    run_dir = tmp_path / "runs" / "unlucky"
    error = json.loads((run_dir / "error.json").read_text())["error"]
    assert error.startswith("SamplesFailed: 20 of 20 samples of the initial validation failed")
    for directory in (run_dir, run_dir.parent):  # the run's own report, and its folder's
        assert main(["report", str(directory)]) == 0
        page = (directory / "report" / "report.html").read_text()
        assert "<td>unlucky</td><td>failed</td>" in page and "SamplesFailed: 20 of 20 samples" in page


def test_progress_says_calls_are_being_retried_and_why(sim_server, tmp_path, simulated_run_config):
    """A provider that answers 200 with a broken body: the run used to sit at 'step 0/2 calls 0' for minutes."""
    server = sim_server(responder="object_count_trainer", malformed_rate=1.0, latency_s=0.05)
    config = simulated_run_config(tmp_path, server, "broken", model="retry_deadline_s: 6",
                                  data='{generator: {size: 24}, splits: {train: "0:12", val: "12:24"}}',
                                  trainer="{steps: 1}")
    done = subprocess.run([sys.executable, "-m", "raygrad", "optimize", str(config), "--local", "--interval", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 5, done.stderr
    retrying = [line for line in done.stdout.splitlines() if " retries " in line]
    assert retrying and "(latest: openai/simulated: " in retrying[-1], done.stdout
