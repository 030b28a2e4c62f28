from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from raygrad.tasks.object_count import solve_object_counting
from raygrad.tasks.simulated import FIXES, holds, last, with_optimizer_roles
from raygrad.testing import ServerSettings, SimulatedServer

# BIG-Bench Hard's object counting file, read where the shared data lies beside this checkout.
BBH_OBJECT_COUNTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh" / "object_counting.json"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_configure(config: pytest.Config) -> None:
    """Tests press Ctrl-C on child processes (SIGINT), as at a terminal. A test run started in the
    background (`nohup`, `&` in a script) inherits SIGINT ignored and would hand that on to them, so
    they would finish their work and exit 0. Handled here, it is back to the default in each child."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# The suite's longest modules (minutes each on 2 cores), longest first. `make test` runs two workers,
# each taking whole modules (`-n 2 --dist loadfile`): started first, the long ones end together instead
# of one worker waiting out a long module the other started last. Stale weights only cost wall time.
LONGEST_FIRST = ["distributed/test_sweep.py", "test_cluster.py", "test_cli.py", "test_local_instance.py",
                 "distributed/test_runtime.py", "tasks/test_end_to_end.py", "test_api.py", "test_packaging.py",
                 "runs/test_tracking.py", "tasks/test_item_kind.py", "test_example_projects.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {f"tests/{module}": place for place, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: in-module order kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Print a failure when it happens: if native code (Ray's, llama.cpp's) later crashes this process,
    the end-of-run summary, and with it the reason, would be lost."""
    if report.failed:
        sys.stderr.write(f"\n{report.nodeid} failed ({report.when}):\n{report.longreprtext}\n")


@pytest.fixture
def sim_server():
    """Start simulated servers with given settings; all stop after the test."""
    servers = []

    def start(**settings) -> SimulatedServer:
        responder = settings.pop("responder_fn", None)
        server = SimulatedServer(ServerSettings(**settings), responder=responder).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _simulated_run_config(folder: Path, server: SimulatedServer, name: str, *, data: str, trainer: str,
                          workflow: str = "", model: str = "") -> Path:
    """A run config (`folder/<name>.yaml`) whose task model (every role) is the simulated server; `data`,
    `trainer`, `workflow` and `model` (extra model fields) are YAML flow text."""
    config = folder / f"{name}.yaml"
    config.write_text(f"""name: {name}
output_dir: {folder / 'runs'}
{f'workflow: {workflow}' if workflow else ''}
data: {data}
models: {{task: {{model: openai/simulated, api_base: "{server.url}"{', ' + model if model else ''}}}}}
trainer: {trainer}
""")
    return config


def _wait_for_requests(server: SimulatedServer, count: int, timeout_s: float = 60.0) -> None:
    """Until the server has seen `count` requests (a process under test is at work), or the time is up."""
    import time

    deadline = time.monotonic() + timeout_s
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _hold_until_still(server: SimulatedServer, quiet_s: float = 2.0, timeout_s: float = 60.0) -> int:
    """Hold the server's replies, then wait until no request has arrived for `quiet_s` (every call the process
    under test had in flight is now waiting): returns the count of requests seen, which then stands still."""
    import time

    server.hold()
    deadline = time.monotonic() + timeout_s
    seen, since = len(server.log), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.05)
        if len(server.log) != seen:
            seen, since = len(server.log), time.monotonic()
    return seen


@pytest.fixture
def simulated_run_config():
    """simulated_run_config(folder, server, name, data=..., trainer=...): a run config on the simulated server."""
    return _simulated_run_config


@pytest.fixture
def wait_for_requests():
    """wait_for_requests(server, count): until a process under test has sent `count` requests."""
    return _wait_for_requests


@pytest.fixture
def hold_until_still():
    """hold_until_still(server) -> count: the server's replies wait, and the process under test has stopped
    sending (a fixed sleep was too short on a loaded machine: calls still in flight arrived after it)."""
    return _hold_until_still


@pytest.fixture
def s3_storage(monkeypatch):
    """An S3 API on loopback (moto's server mode); gives `storage:` URIs under a bucket it creates."""
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)  # subprocesses inherit them, as nodes read them from their environment
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield lambda prefix: (f"s3://raygrad-test/{prefix}?endpoint_override={host}:{port}&scheme=http"
                          "&allow_bucket_creation=true")
    server.stop()


@pytest.fixture
def bbh_object_counting() -> Path:
    """The path of BBH's object_counting.json, read where the shared data lies beside this checkout."""
    if not BBH_OBJECT_COUNTING.exists():
        pytest.fail(f"BIG-Bench Hard's object_counting.json is needed at {BBH_OBJECT_COUNTING}: check out this "
                    "repository beside ../shared")
    return BBH_OBJECT_COUNTING


@pytest.fixture(scope="module")
def ray_cluster():
    """A multi-node Ray cluster on this machine (a head and two worker nodes), shared by a module's tests.

    Per module, not per session: tests/test_cluster.py starts a `ray start` cluster of its own, and
    two clusters on one machine disturb each other.
    """
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    try:
        ray.shutdown()
    finally:
        cluster.shutdown()


EXAMPLE_PROJECT = Path(__file__).resolve().parents[1] / "examples" / "counting"


def _count_then_answer(messages: list[dict], body: dict) -> str:
    """Simulated answers for examples/counting: the listing call over-counts by one (a distractor)
    unless its instruction holds DISTRACTORS_FIX; the answer call repeats the total."""
    system, user = last(messages, "system"), last(messages, "user")
    if user.startswith("question:"):  # the answer call: the question and the tool's total
        total = user.rsplit("total:\n", 1)[-1].strip()
        return f"The count is {total}." if total.isdigit() else "I cannot tell."
    truth = solve_object_counting(user)
    if truth is None:
        return "nothing to list"
    return f"{truth} items of that category" if holds(system, DISTRACTORS_FIX) else \
        f"{truth + 1} items, all told"


DISTRACTORS_FIX = FIXES[1]  # every question of the example has this hidden cause
count_then_answer = with_optimizer_roles(_count_then_answer, cause_of=lambda call_input: DISTRACTORS_FIX)


@pytest.fixture
def counting_project(tmp_path, sim_server):
    """examples/counting copied to a folder of its own, its config pointed at a simulated server that
    plays task, backward engine and optimizer. Returns (project folder, config path, server)."""
    server = sim_server(responder_fn=count_then_answer)
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE_PROJECT, project, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = project / "config.yaml"
    text = config.read_text().replace("trainer: {steps: 2, batch_size: 4, proposals: 2}",
                                      "trainer: {steps: 2, batch_size: 4, proposals: 5, seed: 3}")
    config.write_text(text + f"models: {{task: {model}, backward: {model}, optimizer: {model}}}\n"
                      f"output_dir: {project / 'runs'}\n")
    return project, config, server


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted in the test's folder, and a way to fill it: a full disk, really."""
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.fail(f"these tests need a real full disk, a 4 MiB tmpfs: run them where `mount -t tmpfs` is allowed "
                    f"(as root, as CI does): {mounted.stderr.decode().strip()}")

    def fill() -> Path:
        filler = folder / "filler"
        with open(filler, "wb", buffering=0) as handle:  # unbuffered: nothing is left to flush when it closes
            for size in (65536, 4096, 1):
                try:
                    while True:
                        handle.write(b"\0" * size)
                except OSError:
                    pass
        return filler

    yield folder, fill
    subprocess.run(["umount", "-l", str(folder)], check=False)
