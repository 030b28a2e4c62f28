from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from raygrad.testing import ServerSettings, SimulatedServer

# BIG-Bench Hard's object counting file, read where the shared data lies beside this checkout.
BBH_OBJECT_COUNTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh" / "object_counting.json"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


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


@pytest.fixture
def bbh_object_counting() -> Path:
    """The path of BBH's object_counting.json; a test that needs it is skipped where it is not beside the checkout."""
    if not BBH_OBJECT_COUNTING.exists():
        pytest.skip("shared BBH data not beside this checkout")
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
