"""The Ray runtime on a real multi-node cluster (one machine), against the simulated provider."""
from __future__ import annotations

import asyncio

import pytest
import ray
import yaml

from raygrad.config import RunConfig
from raygrad.data import load_split
from raygrad.distributed.runtime import distributed_run
from raygrad.llm.endpoints import role_clients
from raygrad.prompts import BACKWARD_SYSTEM
from raygrad.trainer import Trainer
from raygrad.workflows import build_workflow

pytestmark = pytest.mark.ray


def run_config(tmp_path, server, name: str, **sections) -> RunConfig:
    model = {"model": "openai/simulated", "api_base": server.url, "max_in_flight": 8}
    raw = {
        "name": name, "output_dir": str(tmp_path / "runs"),
        "workflow": {"name": "object_count", "instruction": "Answer.", "output_format": "Reply."},
        "data": {"generator": {"size": 120, "seed": 4}, "splits": {"train": "0:20", "val": "20:60", "test": "60:100"}},
        "models": {"task": model, "backward": model, "optimizer": model},
        "trainer": {"steps": 3, "batch_size": 6, "proposals": 2, "seed": 1, "validation_chunk": 8},
        "runtime": {"workers": 3, "cpus_per_worker": 0.5},
    }
    for key, value in sections.items():
        raw[key].update(value)
    return RunConfig.model_validate(yaml.safe_load(yaml.safe_dump(raw)))


def single_process(config: RunConfig):
    workflow, eval_fn = build_workflow(config.workflow)
    train, val = load_split(config.data, "train"), load_split(config.data, "val")
    with role_clients(config) as clients:
        trainer = Trainer(workflow, eval_fn, clients, config.trainer, checkpoint=config.run_dir / "checkpoint.json")
        return asyncio.run(trainer.fit(train, val))


def test_workers_on_several_nodes_give_the_single_process_result(ray_cluster, sim_server, tmp_path):
    server = sim_server(responder="object_count_trainer")
    expected = single_process(run_config(tmp_path, server, "local"))
    local_requests = len(server.log)
    server.log.clear()
    config = run_config(tmp_path, server, "ray")
    with distributed_run(config) as run:
        state = run.fit(load_split(config.data, "train"), load_split(config.data, "val"))
        nodes = {ray.get(w.node_id.remote()) for w in ray.get(run.optimizer.workers.remote()).values()}
    assert len(nodes) >= 2  # the workers really are spread over nodes
    assert state.values == expected.values and state.best_val == expected.best_val
    assert [s.batch for s in state.steps] == [s.batch for s in expected.steps]
    assert any(c.accepted for c in state.candidates)
    # Backward-engine calls at the provider: two text peers per error sample, as in one process.
    backward = [e for e in server.log if e.messages[0]["content"] == BACKWARD_SYSTEM]
    assert len(backward) == 2 * sum(s.errors for s in state.steps) > 0
    assert len(server.log) <= local_requests  # early rejection across shards never costs more
