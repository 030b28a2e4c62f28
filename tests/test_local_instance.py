"""Runs that start their own local Ray instance (no address given). A module of its own: no other test
cluster may be running beside them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.ray
def test_ctrl_c_during_an_optimization_on_ray_ends_in_one_line(sim_server, tmp_path):
    import signal
    import time

    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / "run.yaml"
    config.write_text(f"""name: cut
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 200, seed: 4}}, splits: {{train: "0:20", val: "20:150", test: "150:200"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 3, batch_size: 4, proposals: 2}}
""")
    process = subprocess.Popen([sys.executable, "-m", "raygrad", "optimize", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # its own local Ray instance
    deadline = time.monotonic() + 120
    while len(server.log) < 30 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"raygrad: interrupted; completed calls are in the journal: run "
                                            f"`raygrad optimize {config}` again to resume")


@pytest.mark.ray
def test_with_no_address_a_run_starts_a_local_instance_and_ignores_a_dead_cluster(sim_server, tmp_path):
    """Ray's default would join the cluster this machine last started; here that one is dead."""
    import os
    import shutil
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="rg", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    (short / "ray").mkdir()
    (short / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")  # nothing listens there
    server = sim_server(responder="object_count_trainer")
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / "run.yaml"
    config.write_text(f"""name: local
output_dir: {tmp_path / 'runs'}
data: {{generator: {{size: 30, seed: 4}}, splits: {{train: "0:10", val: "10:20", test: "20:30"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 1, batch_size: 4, proposals: 1}}
""")
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    try:
        result = subprocess.run([sys.executable, "-m", "raygrad", "optimize", str(config)], capture_output=True,
                                text=True, timeout=240, env={**env, "TMPDIR": str(short)})
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ray: cluster " in result.stdout and "127.0.0.1:9" not in result.stdout


@pytest.mark.ray
def test_a_second_sweep_on_a_sweep_directory_stops_before_ray_starts_naming_the_owner(sim_server, tmp_path,
                                                                                      wait_for_requests,
                                                                                      hold_until_still):
    """A sweep resubmitted while its first driver still runs (a retried job, say) must not run beside it."""
    import time

    server = sim_server(responder="object_count_trainer", latency_s=0.2)
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""name: twice
output_dir: {tmp_path / 'sweeps'}
base:
  data: {{generator: {{size: 60, seed: 4}}, splits: {{train: "0:20", val: "20:60"}}}}
  models: {{task: {model}}}
  trainer: {{steps: 1, batch_size: 4}}
  runtime: {{workers: 1}}
runs:
  - {{name: a}}
""")
    command = [sys.executable, "-m", "raygrad", "sweep", str(sweep)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_requests(server, 1, timeout_s=120)
    paid = hold_until_still(server)
    started = time.monotonic()
    try:
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
        took_s = time.monotonic() - started
    finally:
        server.release()
    assert second.returncode == 2 and f"is in use by raygrad process {first.pid}" in second.stderr, second.stderr
    assert len(server.log) == paid and took_s < 30  # stopped before Ray or any call
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]


@pytest.mark.ray
def test_sigterm_stops_a_sweep_like_ctrl_c_and_the_same_command_resumes_it(sim_server, tmp_path, wait_for_requests):
    """What `ray job stop` sends a sweep's driver: every run stops at once (it used to wait for the running ones
    to finish), one line, exit 143, no half-written table; the same command then finishes the sweep."""
    import signal
    import time

    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    model = f'{{model: openai/simulated, api_base: "{server.url}", max_in_flight: 4}}'
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"""name: termed
output_dir: {tmp_path / 'sweeps'}
concurrency: 2
base:
  workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
  data: {{generator: {{size: 160, seed: 4}}, splits: {{train: "0:20", val: "20:160"}}}}
  models: {{task: {model}}}
  trainer: {{steps: 2, batch_size: 4}}
  runtime: {{workers: 1}}
runs: [{{name: a}}, {{name: b, trainer: {{seed: 1}}}}]
""")
    command = [sys.executable, "-m", "raygrad", "sweep", str(sweep)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_requests(server, 40, timeout_s=180)
    process.send_signal(signal.SIGTERM)
    termed = time.monotonic()
    _, err = process.communicate(timeout=120)
    took_s = time.monotonic() - termed
    assert process.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"raygrad: terminated (SIGTERM); completed calls are in the journal: run "
                                            f"`raygrad sweep {sweep}` again to resume")
    runs = tmp_path / "sweeps" / "termed"
    assert not list(runs.rglob("result.json")) and took_s < 60, took_s  # the runs were stopped, not waited for
    assert not list(runs.rglob("*.partial")) and not list(runs.rglob("*.tmp"))
    assert not list(runs.rglob("error.json"))  # stopped, not failed
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all((runs / name / "result.json").exists() for name in ("a", "b"))


@pytest.mark.ray
def test_ray_workers_read_their_shards_of_a_dataset_on_s3(sim_server, s3_storage, tmp_path):
    """data.path an s3:// URI with data.shards: the driver reads only the file's row count, each worker its
    own shards, with the credentials of its environment; the run learns as it does from a local file."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs

    from raygrad.tasks.object_count import generate_object_counting

    uri = s3_storage("data/questions.parquet")
    filesystem, where = fs.FileSystem.from_uri(uri)
    filesystem.create_dir(where.split("/", 1)[0])
    with filesystem.open_output_stream(where) as out:
        pq.write_table(pa.Table.from_pylist(generate_object_counting(80, 4)), out, row_group_size=10)
    server = sim_server(responder="object_count_trainer")
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / "run.yaml"
    config.write_text(f"""name: remote
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{path: "{uri}", shards: true, splits: {{train: "0:20", val: "20:60", test: "60:80"}}}}
models: {{task: {model}}}
trainer: {{steps: 2, batch_size: 4, proposals: 2}}
runtime: {{workers: 2}}
""")
    done = subprocess.run([sys.executable, "-m", "raygrad", "optimize", str(config)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "runs" / "remote" / "result.json").read_text())
    assert result["val_size"] == 40 and result["test_size"] == 20 and result["steps"] == 2
    asked = "".join(json.dumps(entry.messages) for entry in server.log)
    rows = generate_object_counting(80, 4)
    assert all(json.dumps(row["input"])[1:-1] in asked for row in rows[20:80])  # every val and test row was run
