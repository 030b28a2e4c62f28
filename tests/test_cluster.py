"""`ray job submit` end to end against a `ray start --head` cluster on this machine."""
from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from raygrad.tasks.simulated import FIXES, holds
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
    # The head holds a provider key in its environment, as a Kubernetes secret would put it there; the worker
    # node does not, so its actors get the key from the run's KeyVault (the job's driver runs on the head).
    # A temp dir of its own: a job's supervisor finds its cluster's address in the temp dir's
    # ray_current_cluster file, which any other Ray cluster started on this machine rewrites in /tmp/ray
    # (another pytest worker's), and the job's driver then joins that cluster. Short: Ray's socket paths live there.
    temp_dir = tempfile.mkdtemp(prefix="rg", dir="/tmp")
    node_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAYGRAD_TEST_CLUSTER_STARTED": str(time.time()), "RAYGRAD_TEST_RAY_TEMP_DIR": temp_dir}
    head_env = {**node_env, "RAYGRAD_TEST_API_KEY": f"sk-test-{secrets.token_hex(16)}"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats", "--block",
              f"--temp-dir={temp_dir}"]
    logs = open(tmp_path / "ray_start.log", "w")
    # Each node's job agent on a port of its own: at Ray's fixed default (52365) it fails to bind when any
    # other Ray instance runs on this machine, and `ray job submit` then finds no agent, for good.
    nodes = [subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true",
                               "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                               f"--dashboard-agent-listen-port={free_port()}", *common],
                              stdout=logs, stderr=subprocess.STDOUT, env=head_env)]
    address = f"http://127.0.0.1:{dashboard}"
    env = {**head_env, "RAY_ADDRESS": address}
    deadline = time.monotonic() + 120
    while subprocess.run([RAY, "job", "list"], env=env, capture_output=True, timeout=60).returncode != 0:
        assert time.monotonic() < deadline, (tmp_path / "ray_start.log").read_text()[-3000:]
        time.sleep(2)
    nodes.append(subprocess.Popen([RAY, "start", f"--address=127.0.0.1:{port}",
                                   f"--dashboard-agent-listen-port={free_port()}", *common],
                                  stdout=logs, stderr=subprocess.STDOUT, env=node_env))
    yield env
    for node in reversed(nodes):
        node.terminate()
        node.wait(60)
    logs.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


def submit_job(env: dict, job_id: str, working_dir: Path, entrypoint: list[str]) -> tuple[str, str]:
    """`ray job submit --working-dir`, then wait for it to end; returns its status and logs."""
    return submit_and_wait(env, [RAY, "job", "submit", "--no-wait", "--submission-id", job_id, "--working-dir",
                                 str(working_dir), "--", *entrypoint], job_id)


def submit_no_wait(env: dict, submit: list[str]) -> None:
    for _ in range(30):  # the head's job agent starts a little after its HTTP API answers
        submitted = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=120)
        if "No available agent" not in submitted.stderr:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stderr[-3000:]


def submit_and_wait(env: dict, submit: list[str], job_id: str) -> tuple[str, str]:
    submit_no_wait(env, submit)
    # `ray job status` prints e.g. "Job 'raygrad-test' succeeded" (colored); compare words, not case.
    deadline, status = time.monotonic() + 600, ""
    while time.monotonic() < deadline and not any(s in status for s in ("succeeded", "failed", "stopped")):
        time.sleep(2)
        status = subprocess.run([RAY, "job", "status", job_id], env=env, capture_output=True, text=True,
                                timeout=60).stdout.lower()
    logs = subprocess.run([RAY, "job", "logs", job_id], env=env, capture_output=True, text=True, timeout=60).stdout
    return status, logs


@pytest.mark.timeout(720)  # two `ray start` nodes, the job's runtime_env upload, then the job itself
def test_ray_job_submit_runs_an_optimization_and_results_are_read_back(head_cluster, sim_server, tmp_path):
    server = sim_server(responder="object_count_trainer")
    model = f'{{model: openai/simulated, api_base: "{server.url}", api_key_env: RAYGRAD_TEST_API_KEY}}'
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
    key = head_cluster["RAYGRAD_TEST_API_KEY"]
    assert server.log and all(e.authorization == f"Bearer {key}" for e in server.log)  # the key reached the provider
    # ...and shows nowhere Ray shows things: the job's logs, and what the state API lists of its actors and tasks.
    listed = {kind: ray_list(head_cluster, kind) for kind in ("actors", "tasks", "jobs", "nodes")}
    shown = logs + "".join(json.dumps(rows) for rows in listed.values())
    assert "KeyVault" in shown and key not in shown
    # Checked, not assumed: a forward worker ran on the node whose environment has no key, so its calls above
    # carried the key the vault gave it.
    keyless = {node["node_id"] for node in listed["nodes"] if not node["is_head_node"]}
    job = next(j["job_id"] for j in listed["jobs"] if j.get("submission_id") == "raygrad-test")
    workers = [a for a in listed["actors"] if a["class_name"] == "ForwardWorker" and a["job_id"] == job]
    assert keyless and any(a["node_id"] in keyless for a in workers), (keyless, workers)


def ray_list(env: dict, kind: str) -> list[dict]:
    """What Ray's state API lists of a kind, every field (`--detail`), dead actors and ended jobs included."""
    listed = subprocess.run([RAY, "list", kind, "--detail", "--format", "json", "--limit", "10000"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    return json.loads(listed.stdout)


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
    assert holds(prompts["list_instruction"], FIXES[1])
    backward = [e for e in server.log if requested_schema({"response_format": e.response_format}) == "FeedbackReply"]
    assert any('<VARIABLE role="instruction" name="list_instruction"' in e.messages[-1]["content"] for e in backward)


# The fields of KubeRay's RayJob v1 (ray-operator/apis/ray/v1/rayjob_types.go and raycluster_types.go)
# this manifest may use; a misspelt field would be dropped by the API server without a word.
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
               "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
               "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}
RAYCLUSTER_SPEC = {"rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headServiceAnnotations",
                   "headGroupSpec", "workerGroupSpecs", "suspend", "managedBy", "gcsFaultToleranceOptions"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "idleTimeoutSeconds",
                "rayStartParams", "template", "scaleStrategy", "suspend"}


def rayjob() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "cluster" / "rayjob.yaml").read_text())


def test_the_rayjob_manifest_uses_only_rayjob_v1_fields_and_the_runtime_env_of_submit_sh():
    import yaml

    manifest = rayjob()
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    spec = manifest["spec"]
    assert set(spec) <= RAYJOB_SPEC and set(spec["rayClusterSpec"]) <= RAYCLUSTER_SPEC
    assert set(spec["rayClusterSpec"]["headGroupSpec"]) <= HEAD_GROUP
    assert all(set(group) <= WORKER_GROUP for group in spec["rayClusterSpec"]["workerGroupSpecs"])
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env.pop("working_dir").endswith(".zip")  # the repository, fetched by every pod
    assert runtime_env == yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    assert spec["rayClusterSpec"]["rayVersion"] == __import__("ray").__version__


def installed_in_a_job_env(cluster_env: dict[str, str]) -> list[Path]:
    """raygrad as pip installed it into a job's virtualenv on this machine's nodes, since the cluster
    started (any session: `session_latest` is not always the cluster's, nor always kept up to date)."""
    since = float(cluster_env["RAYGRAD_TEST_CLUSTER_STARTED"])
    return sorted(p for p in Path(cluster_env["RAYGRAD_TEST_RAY_TEMP_DIR"]).glob(
        "session_*/runtime_resources/pip/*/virtualenv/lib/python*/site-packages/raygrad-*.dist-info")
        if p.stat().st_mtime >= since)


def job_config(tmp_path: Path, server, name: str, task: str = "object_count") -> Path:
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"""
name: {name}
output_dir: {tmp_path / 'node-disk'}
workflow: {{name: {task}, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{name: {task}, size: 60, seed: 4}}, splits: {{train: "0:20", val: "20:60"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 1, batch_size: 4, proposals: 1, seed: 1}}
runtime: {{workers: 1, cpus_per_worker: 0.25}}
storage: file://{tmp_path / 'store' / name}
""")
    return config


@pytest.mark.timeout(900)
def test_the_rayjob_entrypoint_and_runtime_env_run_as_written(head_cluster, sim_server, tmp_path):
    """The manifest's entrypoint and runtime environment, through `ray job submit`: only the working
    dir (a local checkout, not the zip's URL) and the config's path (not the ConfigMap's) differ."""
    spec = rayjob()["spec"]
    runtime_env = {**__import__("yaml").safe_load(spec["runtimeEnvYAML"]), "working_dir": str(ROOT)}
    config = job_config(tmp_path, sim_server(responder="object_count_trainer"), "rayjob")
    entrypoint = spec["entrypoint"].replace("/config/run.yaml", str(config)).split()
    submit = [RAY, "job", "submit", "--no-wait", "--submission-id", "raygrad-rayjob",
              "--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint]
    status, logs = submit_and_wait(head_cluster, submit, "raygrad-rayjob")
    assert "succeeded" in status, status + logs[-4000:]
    assert installed_in_a_job_env(head_cluster)  # the runtime env installed raygrad
    stored = json.loads((tmp_path / "store" / "rayjob" / "result.json").read_text())  # results reach storage
    assert stored["steps"] == 1 and (tmp_path / "store" / "rayjob" / "journal.sqlite").exists()


@pytest.mark.timeout(900)
def test_cluster_submit_sh_runs_a_config_as_written(head_cluster, sim_server, tmp_path):
    """TREC: its 60 questions are package data, which the job's pip-installed raygrad must hold."""
    config = job_config(tmp_path, sim_server(responder="trec_trainer"), "submitted", task="trec")
    done = subprocess.run(["bash", str(ROOT / "cluster" / "submit.sh"), str(config), "--submission-id",
                           "raygrad-submit-sh"], env=head_cluster, cwd=tmp_path, capture_output=True, text=True,
                          timeout=800)
    assert done.returncode == 0 and "succeeded" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert installed_in_a_job_env(head_cluster)
    assert json.loads((tmp_path / "store" / "submitted" / "result.json").read_text())["steps"] == 1


@pytest.mark.timeout(900)
def test_ray_job_stop_ends_a_run_like_ctrl_c_and_a_resubmitted_job_pays_nothing_twice(head_cluster, sim_server,
                                                                                    tmp_path):
    """`ray job stop` sends the job's driver SIGTERM (then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S, 3 s by default):
    the run stops at once with its one line, leaves no half-written table, and its paid calls are replayed."""
    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    config = job_config(tmp_path, server, "stopped")
    submit = [RAY, "job", "submit", "--no-wait", "--submission-id", "raygrad-stop", "--working-dir", str(ROOT), "--",
              "python", "-m", "raygrad", "optimize", str(config)]
    submit_no_wait(head_cluster, submit)
    deadline = time.monotonic() + 300
    while len(server.log) < 20 and time.monotonic() < deadline:
        time.sleep(0.5)
    stopped = subprocess.run([RAY, "job", "stop", "raygrad-stop"], env=head_cluster, capture_output=True, text=True,
                             timeout=120)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    logs = subprocess.run([RAY, "job", "logs", "raygrad-stop"], env=head_cluster, capture_output=True, text=True,
                          timeout=60).stdout
    assert "raygrad: terminated (SIGTERM); completed calls are in the journal" in logs, logs[-3000:]
    assert "Traceback" not in logs
    run_dir = tmp_path / "node-disk" / "stopped"
    assert not list(run_dir.rglob("*.partial")) and not (run_dir / "result.json").exists()
    paid = len(server.log)
    status, logs = submit_and_wait(head_cluster, [*submit[:5], "raygrad-stop-again", *submit[6:]],
                                   "raygrad-stop-again")
    assert "succeeded" in status, status + logs[-3000:]
    repeated = collections.Counter(json.dumps(e.messages) for e in server.log[paid:])
    first = collections.Counter(json.dumps(e.messages) for e in server.log[:paid])
    assert sum(min(n, first[m]) for m, n in repeated.items()) <= 32  # at most those in flight (max_in_flight)
