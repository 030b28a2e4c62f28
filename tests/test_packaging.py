"""What a user installs is a wheel, not this checkout: every shipped file must be in it, and the built-in
tasks must run from it (the TREC questions, the multi-hop corpus and the configs are package data)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"objectcount": "object_count_trainer", "trec": "trec_trainer", "multihop": "multihop_trainer",
         "agent": "react_agent_trainer"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)],
                   check=True, capture_output=True, cwd=folder)
    [built] = folder.glob("raygrad-*.whl")
    return built


def shipped_files() -> set[str]:
    """Every file of the package in this checkout, but bytecode."""
    package = ROOT / "raygrad"
    return {str(p.relative_to(ROOT)) for p in package.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_wheel_holds_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    missing = sorted(shipped_files() - inside)
    assert not missing, f"not in the wheel: {missing}"
    assert "raygrad/tasks/corpora/trec/questions.jsonl" in inside  # what a wheel once lacked


@pytest.mark.slow
def test_each_built_in_task_runs_from_the_wheel_in_a_fresh_virtual_environment(wheel, tmp_path, sim_server):
    """pip install of the wheel (not editable) in a new venv, then `raygrad optimize` of each built-in task's
    paper config, its models pointed at the simulated provider, from a folder far from this checkout."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                               timeout=1200)
    assert installed.returncode == 0, installed.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import raygrad; print(raygrad.__file__)"], capture_output=True,
                           text=True, cwd=work, env=environment, check=True).stdout
    assert str(env_dir) in where and str(ROOT) not in where
    for task, responder in TASKS.items():
        server = sim_server(responder=responder)
        raw = yaml.safe_load((ROOT / "raygrad" / "configs" / f"{task}_paper.yaml").read_text())
        model = {"model": "openai/simulated", "api_base": server.url}
        raw.update(models={role: model for role in ("task", "backward", "optimizer")},
                   output_dir=str(work / "runs"))
        raw["trainer"].update(steps=1, proposals=2)
        config = work / f"{task}.yaml"
        config.write_text(yaml.safe_dump(raw))
        ran = subprocess.run([str(env_dir / "bin" / "raygrad"), "optimize", str(config), "--local"],
                             capture_output=True, text=True, cwd=work, env=environment, timeout=600)
        assert ran.returncode == 0, f"{task}: {ran.stderr[-3000:]}"
        result = json.loads((work / "runs" / raw["name"] / "result.json").read_text())
        assert result["test_after"] is not None and len(server.log) > 0, task
