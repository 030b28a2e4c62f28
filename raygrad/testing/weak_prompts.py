"""The built-in tasks as their local configs ship them, from weak prompts ("Answer.", "Reply."): what the
trainer's tests and benchmarks optimize on the simulated provider."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from raygrad.core.workflow import Workflow
from raygrad.data import Dataset
from raygrad.optim.metrics import Metric
from raygrad.runs.assemble import build_workflow, load_split
from raygrad.runs.config import RunConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Each local config's name and the responder that answers its task and plays backward engine and optimizer.
TRAINER_RESPONDERS = {"objectcount": "object_count_trainer", "trec": "trec_trainer", "multihop": "multihop_trainer",
                      "agent": "react_agent_trainer", "conflicts": "conflicts_trainer"}
# ObjectCount under raygrad.tasks.conflicts' rules, which only the simulated provider plays (no shipped config).
CONFLICTS_CONFIG = {"name": "conflicts", "workflow": {"name": "object_count"},
                    "data": {"generator": {"name": "object_count", "size": 250, "seed": 0},
                             "splits": {"train": "0:50", "val": "50:100", "test": "100:200"}},
                    "trainer": {"validation_chunk": 8}}


def weak_prompt_config(task: str) -> dict[str, Any]:
    """The raw local config of a built-in task (`raygrad/configs/<task>_local.yaml`, or the conflicts task's),
    its prompts weak."""
    raw = copy.deepcopy(CONFLICTS_CONFIG) if task == "conflicts" else \
        yaml.safe_load((CONFIGS / f"{task}_local.yaml").read_text())
    raw["workflow"].update(instruction="Answer.", output_format="Reply.")
    return raw


def from_weak_prompts(task: str) -> tuple[Workflow, Metric, Dataset, Dataset]:
    """A built-in task's workflow from weak prompts, its metric, and its train and validation splits."""
    config = RunConfig.model_validate(weak_prompt_config(task))
    workflow, metric = build_workflow(config.workflow)
    return workflow, metric, load_split(config.data, "train"), load_split(config.data, "val")
