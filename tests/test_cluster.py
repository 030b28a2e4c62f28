"""`ray job submit` end to end against a `ray start --head` cluster on this machine."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raygrad.testing import requested_schema

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def head_cluster(tmp_path_factory):
    """A head and a worker node started with `ray start --block`, stopped with their processes only;
    shared by this module's jobs (starting one costs about a minute)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    port, dashboard = free_port(), free_port()
    # Jobs run `python` from the nodes' PATH: this environment's, as on a cluster built from one image.
    # Ray 2.60 `ray start --head` clusters use token auth: joining nodes and job clients need RAY_AUTH_MODE=token
    # and the cluster's token, which `ray start` does not create (a fresh machine has no ~/.ray/auth_token).
    node_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats", "--block"]
    logs = open(tmp_path / "ray_start.log", "w")
    nodes = [subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true",
                               "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", *common],
                              stdout=logs, stderr=subprocess.STDOUT, env=node_env)]
    address = f"http://127.0.0.1:{dashboard}"
    env = {**node_env, "RAY_ADDRESS": address}
    deadline = time.monotonic() + 120
    while subprocess.run([RAY, "job", "list"], env=env, capture_output=True, timeout=60).returncode != 0:
        assert time.monotonic() < deadline, (tmp_path / "ray_start.log").read_text()[-3000:]
        time.sleep(2)
    nodes.append(subprocess.Popen([RAY, "start", f"--address=127.0.0.1:{port}", *common],
                                  stdout=logs, stderr=subprocess.STDOUT, env=node_env))
    yield env
    for node in reversed(nodes):
        node.terminate()
        node.wait(60)
    logs.close()


def submit_job(env: dict, job_id: str, working_dir: Path, entrypoint: list[str]) -> tuple[str, str]:
    """`ray job submit --working-dir`, then wait for it to end; returns its status and logs."""
    submit = [RAY, "job", "submit", "--no-wait", "--submission-id", job_id, "--working-dir", str(working_dir),
              "--", *entrypoint]
    for _ in range(30):  # the head's job agent starts a little after its HTTP API answers
        submitted = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=120)
        if "No available agent" not in submitted.stderr:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    # `ray job status` prints e.g. "Job 'raygrad-test' succeeded" (colored); compare words, not case.
    deadline, status = time.monotonic() + 300, ""
    while time.monotonic() < deadline and not any(s in status for s in ("succeeded", "failed", "stopped")):
        time.sleep(2)
        status = subprocess.run([RAY, "job", "status", job_id], env=env, capture_output=True, text=True,
                                timeout=60).stdout.lower()
    logs = subprocess.run([RAY, "job", "logs", job_id], env=env, capture_output=True, text=True, timeout=60).stdout
    return status, logs


@pytest.mark.timeout(720)  # two `ray start` nodes, the job's runtime_env upload, then the job itself
def test_ray_job_submit_runs_an_optimization_and_results_are_read_back(head_cluster, sim_server, tmp_path):
    server = sim_server(responder="object_count_trainer")
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / "job.yaml"
    config.write_text(f"""
name: job
output_dir: {tmp_path / 'results'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 120, seed: 4}}, splits: {{train: "0:20", val: "20:60", test: "60:100"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 2, batch_size: 4, proposals: 2, seed: 1}}
runtime: {{workers: 2, cpus_per_worker: 0.25}}
storage: file://{tmp_path / 'store' / 'job'}
""")
    status, logs = submit_job(head_cluster, "raygrad-test", ROOT, ["python", "-m", "raygrad", "optimize", str(config)])
    assert "succeeded" in status, status + logs[-4000:]
    assert "validation" in logs and "ray: cluster " in logs and " 2 workers," in logs
    prompts = json.loads((tmp_path / "results" / "job" / "prompts.json").read_text())
    checkpoint = json.loads((tmp_path / "results" / "job" / "checkpoint.json").read_text())
    assert checkpoint["step"] == 2 and prompts == checkpoint["values"]
    assert json.loads((tmp_path / "store" / "job" / "prompts.json").read_text()) == prompts  # the storage copy
    assert prompts["instruction"] != "Answer."  # the simulated optimizer's improvement was accepted
    assert len(server.log) > 0


@pytest.mark.timeout(600)
def test_ray_job_submit_of_a_users_own_project(head_cluster, counting_project):
    """The user's folder is the job's working dir: its workflow and metric modules reach the driver and,
    through the package raygrad uploads, every worker; raygrad itself is installed on the nodes."""
    project, config, server = counting_project
    (project / "job.yaml").write_text(config.read_text().replace("name: counting",
                                                                 f"name: counting\nstorage: {project / 'store'}"))
    status, logs = submit_job(head_cluster, "raygrad-user-project", project,
                              ["python", "-m", "raygrad", "optimize", "job.yaml"])
    assert "succeeded" in status, status + logs[-4000:]
    assert "optimized counting.workflow:CountThenAnswer" in logs and "ray: cluster " in logs and " 2 workers," in logs
    prompts = json.loads((project / "store" / "prompts.json").read_text())  # results reach storage
    assert "only" in prompts["list_instruction"]
    backward = [e for e in server.log if requested_schema({"response_format": e.response_format}) == "FeedbackReply"]
    assert any('<VARIABLE role="instruction" name="list_instruction"' in e.messages[-1]["content"] for e in backward)
