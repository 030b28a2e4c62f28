"""Experiment tracking against a real MLflow server on loopback (SQLite backend), read back through
MLflow's own client: params, per-step metrics, the candidates table, the best values and the report;
a resumed run logs into the same MLflow run."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from raygrad.cli import main


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen([str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                                "--artifacts-destination", str(folder / "artifacts")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"mlflow server did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(20)


def test_a_run_is_logged_to_mlflow_and_a_resume_continues_the_same_mlflow_run(mlflow_server, counting_project,
                                                                               capsys):
    from mlflow.tracking import MlflowClient

    project, config, _ = counting_project
    text = config.read_text().replace("steps: 2,", "steps: 1,")
    config.write_text(text + f"tracking: {{mlflow: {{uri: '{mlflow_server}', experiment: counting}}}}\n")
    assert main(["optimize", str(config), "--local"]) == 0
    run_dir = project / "runs" / "counting"
    run_id = json.loads((run_dir / "tracking.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "counting"
    assert run.data.params["workflow.class"] == "counting.workflow:CountThenAnswer"
    assert run.data.params["trainer.steps"] == "1" and run.data.params["models.task.model"] == "openai/simulated"
    result = json.loads((run_dir / "result.json").read_text())
    assert run.data.metrics["best_val"] == result["best_val"] and run.data.metrics["test_after"] == result["test_after"]
    assert [m.step for m in client.get_metric_history(run_id, "task_calls")] == [1]
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id,
                                                                                                         "report")}
    assert {"prompts.json", "candidates.json", "report/report.html"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(run_id, "prompts.json", str(project))).read_text())
    assert logged == result["values"]
    table = json.loads(Path(client.download_artifacts(run_id, "candidates.json", str(project))).read_text())
    assert len(table["data"]) == result["candidates"]

    # Resumed with more steps: the same MLflow run, its step metrics going on where they stopped.
    config.write_text(config.read_text().replace("steps: 1,", "steps: 3,"))
    assert main(["optimize", str(config), "--local"]) == 0
    assert json.loads((run_dir / "tracking.json").read_text())["run_id"] == run_id
    steps = [m.step for m in client.get_metric_history(run_id, "best_val")]
    done = json.loads((run_dir / "result.json").read_text())["steps"]
    assert sorted(set(steps)) == list(range(done + 1))  # 0 (the start), then every step, across both sessions
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_tracking_without_mlflow_installed_is_one_line_naming_the_extra(counting_project, capsys, monkeypatch):
    _, config, server = counting_project
    config.write_text(config.read_text() + "tracking: {mlflow: {uri: 'http://127.0.0.1:9'}}\n")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    assert main(["optimize", str(config), "--local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'raygrad[tracking]'" in err and not server.log


@pytest.mark.ray
def test_a_sweeps_runs_are_nested_under_the_sweeps_mlflow_run(ray_cluster, mlflow_server, counting_project, capsys):
    from mlflow.tracking import MlflowClient

    project, _, server = counting_project
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    sweep = project / "sweep.yaml"
    sweep.write_text(f"""name: tracked
output_dir: {project / 'sweeps'}
concurrency: 2
base:
  data: {{path: questions.jsonl, input_field: question, target_field: answer, splits: {{train: "0:20", val: "20:40"}}}}
  models: {{task: {model}}}
  trainer: {{steps: 1, batch_size: 4}}
  runtime: {{workers: 1}}
  tracking: {{mlflow: {{uri: "{mlflow_server}", experiment: sweeps}}}}
runs:
  - {{name: two-calls, workflow: {{class: "counting.workflow:CountThenAnswer"}}}}
  - {{name: one-call, workflow: {{class: "counting.workflow:CountInOneCall"}}}}
""")
    assert main(["sweep", str(sweep)]) == 0, capsys.readouterr().err
    client = MlflowClient(tracking_uri=mlflow_server)
    parent = json.loads((project / "sweeps" / "tracked" / "tracking.json").read_text())["run_id"]
    for name in ("two-calls", "one-call"):
        run = client.get_run(json.loads((project / "sweeps" / "tracked" / name / "tracking.json").read_text())["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "FINISHED"
    assert client.get_run(parent).info.status == "FINISHED" and client.get_run(parent).info.run_name == "tracked"


def test_the_python_api_logs_to_mlflow_too(mlflow_server, counting_project, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    import raygrad

    project, _, server = counting_project
    monkeypatch.syspath_prepend(str(project))
    from counting.workflow import CountThenAnswer

    rows = [json.loads(line) for line in (project / "questions.jsonl").read_text().splitlines()]
    data = [{"question": row["question"], "target": row["answer"]} for row in rows]
    raygrad.optimize(CountThenAnswer(), data[:8], data[8:16], metric="counting.metrics:count_with_feedback",
                     models={"task": {"model": "openai/simulated", "api_base": server.url}},
                     trainer={"steps": 1, "batch_size": 4}, name="api", output_dir=tmp_path, progress=False,
                     tracking={"mlflow": {"uri": mlflow_server, "experiment": "api"}})
    run_id = json.loads((tmp_path / "api" / "tracking.json").read_text())["run_id"]
    run = MlflowClient(tracking_uri=mlflow_server).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["workflow.class"].endswith("workflow:CountThenAnswer")
