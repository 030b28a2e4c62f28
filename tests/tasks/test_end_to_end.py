"""The paper's tasks as built-in workflows: each has a local-model config and the paper's hosted setup,
and each optimizes end to end on the simulated provider (real HTTP, Ray workers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from raygrad.cli import main
from raygrad.runs.assemble import load_split
from raygrad.runs.config import ROLES, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "raygrad" / "configs"
TASKS = {"objectcount": "object_count_trainer", "trec": "trec_trainer", "multihop": "multihop_trainer",
         "agent": "react_agent_trainer"}


@pytest.mark.parametrize("task", TASKS)
def test_each_task_has_a_local_config_and_the_papers_setup(task, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    local, paper = load_config(CONFIGS / f"{task}_local.yaml"), load_config(CONFIGS / f"{task}_paper.yaml")
    assert local.workflow.name == paper.workflow.name
    assert all(local.model_for(role).is_local for role in ROLES)
    assert paper.models["task"].model == "openai/gpt-3.5-turbo"
    assert paper.models["backward"].model == paper.models["optimizer"].model == "openai/gpt-4o"
    assert all(paper.models[role].api_key() == "sk-not-used" for role in ROLES)
    assert (paper.trainer.steps, paper.trainer.batch_size, paper.trainer.proposals) == (12, 4, 5)
    for config in (local, paper):
        sizes = [len(load_split(config.data, split)) for split in ("train", "val", "test")]
        assert min(sizes) >= 12


def test_the_objectcount_paper_config_reads_bbh_with_the_papers_split(tmp_path, monkeypatch, bbh_object_counting):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    raw = yaml.safe_load((CONFIGS / "objectcount_paper.yaml").read_text())
    raw["data"] = {"path": str(bbh_object_counting), "splits": raw["data"]["splits"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "c.yaml")
    assert [len(load_split(config.data, s)) for s in ("train", "val", "test")] == [50, 100, 100]


@pytest.mark.ray
@pytest.mark.parametrize("task", TASKS)
def test_each_task_optimizes_on_the_simulated_provider(task, ray_cluster, sim_server, tmp_path, capsys):
    server = sim_server(responder=TASKS[task])
    raw = yaml.safe_load((CONFIGS / f"{task}_local.yaml").read_text())
    model = {"model": "openai/simulated", "api_base": server.url, "max_in_flight": 8}
    raw.update(models={role: model for role in ROLES}, output_dir=str(tmp_path / "runs"), runtime={"workers": 2})
    raw["trainer"].update(steps=3, proposals=5)
    raw["workflow"].update(instruction="Answer.", output_format="Reply.")  # weak prompts, to be improved
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["optimize", str(path)]) == 0
    result = json.loads((tmp_path / "runs" / raw["name"] / "result.json").read_text())
    assert result["best_val"] > result["initial_val"] and result["accepted"] >= 1
    assert result["failed_samples"] == 0
    # Every call the run paid for was answered by the provider; the provider also answered requests of
    # validation shards cancelled by early rejection, whose replies nobody waited for.
    paid, chunk = sum(u["calls"] for u in result["usage"].values()), load_config(path).trainer.validation_chunk
    assert paid <= len(server.answered()) <= paid + chunk * result["ray"]["cancelled_shards"]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("task", ["trec", "agent"])
def test_the_local_configs_run_on_the_embedded_model(task, ray_cluster, tmp_path):
    """The configs as shipped (all roles on SmolLM2 via llama.cpp), cut to a few samples and one step."""
    raw = yaml.safe_load((CONFIGS / f"{task}_local.yaml").read_text())
    raw["data"]["splits"] = {"train": "0:2", "val": "2:4", "test": "4:6"}
    raw["trainer"].update(steps=1, batch_size=2, proposals=1)
    raw.update(output_dir=str(tmp_path / "runs"), runtime={"workers": 1})
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["optimize", str(path)])
    result = json.loads((tmp_path / "runs" / raw["name"] / "result.json").read_text())
    # SmolLM2-135M often writes gradients and proposals that do not parse: with no candidate formed the run
    # ends with exit 6 and says so (its results are written all the same).
    assert code == 0 or (code == 6 and result["candidates"] == 0
                         and result["unparsed_gradients"] + result["unparsed_proposals"] > 0), result
    assert result["failed_samples"] == 0 and result["usage"]["task"]["calls"] >= 6  # val, test twice, batch
    assert 0.0 <= result["test_after"] <= 1.0
