from __future__ import annotations

import os
from pathlib import Path

import pytest

from raygrad.config import ModelConfig
from raygrad.testing import ServerSettings, SimulatedServer

BBH_OBJECT_COUNTING = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh" / "object_counting.json"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


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


def sim_model(server: SimulatedServer, **overrides) -> ModelConfig:
    return ModelConfig(model="openai/simulated", api_base=server.url, **overrides)
