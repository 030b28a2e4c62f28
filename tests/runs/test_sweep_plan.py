"""A sweep file's mistakes that would only show once Ray started are named at load, with the place in the file."""
from __future__ import annotations

import pytest

from raygrad.cli import main
from raygrad.errors import ConfigError
from raygrad.runs.sweep_plan import load_sweep


def test_a_sweep_with_no_run_planned_is_refused_naming_the_list(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(f"output_dir: {tmp_path / 'out'}\nruns: []\n")
    assert main(["sweep", str(path)]) == 2  # it used to start Ray and exit 0 having run nothing
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "s.yaml: runs: an empty list plans no run" in line and not (tmp_path / "out").exists()
    path.write_text("grid: {trainer.seed: []}\n")
    with pytest.raises(ConfigError, match=r"grid\.trainer\.seed: an empty list plans no run"):
        load_sweep(path)


def test_a_run_name_longer_than_the_file_system_takes_is_named_before_anything_starts(tmp_path):
    path = tmp_path / "s.yaml"
    long = "x" * 300
    path.write_text(f"output_dir: {tmp_path}\nruns: [{{name: long}}]\ngrid: {{workflow.instruction: ['{long}']}}\n")
    with pytest.raises(ConfigError, match=r"runs\[0\] with workflow.instruction='x+': its run name is 317 bytes and "
                                          r"the file system takes 255"):
        load_sweep(path)


def test_grid_values_that_make_one_run_name_are_named_as_grid_values(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("runs: [{name: a}]\ngrid: {workflow.instruction: ['Answer: a number', 'Answer: a/number']}\n")
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert "runs[0] with workflow.instruction='Answer: a number' and runs[0] with workflow.instruction=" in message
    assert "are both named 'a-instruction=Answer_a_number'" in message and "give those grid values names" in message
