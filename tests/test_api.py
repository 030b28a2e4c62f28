"""A user's own workflow everywhere the built-ins go: the CLI on a multi-node cluster, `--local`, and the
Python API in both runtimes, all giving one result; calls counted at the simulated server."""
from __future__ import annotations

import json
import re
import sys

import pytest

import raygrad
from raygrad.cli import main
from raygrad.tasks.simulated import FIXES, holds
from raygrad.testing import requested_schema

pytestmark = pytest.mark.ray


def backward_variables(server) -> list[str]:
    """The parameter each backward-engine request at the server was about."""
    names = []
    for entry in server.log:
        if requested_schema({"response_format": entry.response_format}) == "FeedbackReply":
            names.append(re.search(r'<VARIABLE role="[^"]*" name="([^"]+)"', entry.messages[1]["content"]).group(1))
    return names


def test_a_users_workflow_through_the_cli_on_a_multi_node_cluster(ray_cluster, counting_project, capsys):
    project, config, server = counting_project
    assert main(["optimize", str(config)]) == 0
    out = capsys.readouterr().out
    assert "optimized counting.workflow:CountThenAnswer" in out and "ray: cluster " in out and " 2 workers," in out
    prompts = json.loads((project / "runs" / "counting" / "prompts.json").read_text())
    assert holds(prompts["list_instruction"], FIXES[1])  # learned: the first call's instruction, behind the tool
    # Gradients reached both LLM calls' parameters, the first one's through the add_up function node.
    variables = backward_variables(server)
    assert {"list_instruction", "answer_instruction", "answer_format"} <= set(variables)
    assert variables.count("list_instruction") == variables.count("answer_format") > 0
    # The metric's feedback reached the backward engine as the loss's feedback.
    assert any("Feedback from the eval: The count" in e.messages[1]["content"] for e in server.log
               if requested_schema({"response_format": e.response_format}) == "FeedbackReply")
    assert "counting" not in sys.modules or "project" in sys.modules["counting"].__file__


def test_the_python_api_in_both_runtimes_and_the_cli_without_ray_give_the_cli_result(ray_cluster, counting_project,
                                                                                    tmp_path):
    project, config, server = counting_project
    assert main(["optimize", str(config)]) == 0
    expected = json.loads((project / "runs" / "counting" / "result.json").read_text())
    from counting.metrics import count_with_feedback  # importable now: found beside the config
    from counting.workflow import CountThenAnswer

    rows = [json.loads(line) for line in (project / "questions.jsonl").read_text().splitlines()]
    split = {name: [{"id": str(i), "question": rows[i]["question"], "target": rows[i]["answer"]} for i in range(a, b)]
             for name, (a, b) in {"train": (0, 20), "val": (20, 40), "test": (40, 60)}.items()}
    model = {"model": "openai/simulated", "api_base": server.url}
    for runtime in ("local", "ray"):
        result = raygrad.optimize(CountThenAnswer(attempts=2), split["train"], split["val"], test=split["test"],
                                  metric=count_with_feedback, models={"task": model, "backward": model,
                                                                      "optimizer": model},
                                  trainer={"steps": 2, "batch_size": 4, "proposals": 5, "seed": 3}, runtime=runtime,
                                  name=f"api-{runtime}", output_dir=tmp_path / "api")
        assert result.values == expected["values"], runtime
        assert (result.initial_val, result.best_val, result.test_before, result.test_after) == (
            expected["initial_val"], expected["best_val"], expected["test_before"], expected["test_after"]), runtime
        assert result.workflow.list_instruction.value == expected["values"]["list_instruction"]
        assert (tmp_path / "api" / f"api-{runtime}" / "result.json").exists()
    # The same again without Ray, from the CLI: a fresh run directory, the same result.
    local_config = project / "local.yaml"
    local_config.write_text(config.read_text().replace("name: counting", "name: counting-local"))
    assert main(["optimize", str(local_config), "--local"]) == 0
    local = json.loads((project / "runs" / "counting-local" / "result.json").read_text())
    assert local["values"] == expected["values"] and local["best_val"] == expected["best_val"]
    assert local["ray"] == {}
    report = raygrad.evaluate(CountThenAnswer(), split["test"], metric=count_with_feedback, model=model)
    assert report.completed == 20 and report.score == expected["test_before"]


def test_a_bad_row_in_a_sharded_file_is_named_by_file_and_row_from_a_worker(ray_cluster, counting_project, capsys):
    project, config, server = counting_project
    lines = (project / "questions.jsonl").read_text().splitlines()
    lines[27] = '{"question": "a row cut short'
    (project / "sharded.jsonl").write_text("\n".join(lines) + "\n")
    text = config.read_text().replace("path: questions.jsonl", "path: sharded.jsonl\n  shards: true")
    for runtime in ([], ["--local"]):
        (project / "sharded.yaml").write_text(text)
        assert main(["optimize", str(project / "sharded.yaml"), *runtime]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"raygrad: error: {project / 'sharded.jsonl'}: row 27: not valid JSON ("), runtime
    # With skip_bad_rows the row is left out, listed, and the run goes on, on Ray as in one process.
    for runtime in ([], ["--local"]):
        name = f"skipping{len(runtime)}"
        (project / "skipping.yaml").write_text(text.replace("shards: true", "shards: true\n  skip_bad_rows: true")
                                               .replace("name: counting", f"name: {name}"))
        assert main(["optimize", str(project / "skipping.yaml"), *runtime]) == 0, capsys.readouterr().err
        assert "skipped 1 bad rows of the dataset" in capsys.readouterr().out
        listed = json.loads((project / "runs" / name / "skipped_rows.json").read_text())
        assert len(listed) == 1 and listed[0].startswith(f"{project / 'sharded.jsonl'}: row 27: not valid JSON")
        result = json.loads((project / "runs" / name / "result.json").read_text())
        assert result["val_size"] == 20 and result["skipped_rows"] == 1 and result["best_val"] == 1.0


def test_optimize_from_python_shows_progress_as_the_cli_does_or_hands_typed_events_or_keeps_quiet(
        counting_project, tmp_path, capsys, monkeypatch):
    project, config, server = counting_project
    monkeypatch.syspath_prepend(str(project))
    from counting.metrics import count_with_feedback
    from counting.workflow import CountThenAnswer

    rows = [json.loads(line) for line in (project / "questions.jsonl").read_text().splitlines()]
    data = [{"question": row["question"], "target": row["answer"]} for row in rows]
    model = {"model": "openai/simulated", "api_base": server.url}

    def run(name: str, progress) -> None:
        capsys.readouterr()
        raygrad.optimize(CountThenAnswer(), data[:8], data[8:16], metric=count_with_feedback, models={"task": model},
                         trainer={"steps": 2, "batch_size": 4}, name=name, output_dir=tmp_path, progress=progress)

    run("shown", True)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("shown: models: task openai/simulated")
    assert any(line.startswith("shown: training step 0/2") for line in out)
    assert any(line.startswith("optimized counting.workflow:CountThenAnswer for ") for line in out)
    run("quiet", False)
    assert capsys.readouterr().out == ""
    events: list[raygrad.ProgressEvent] = []
    run("called", events.append)
    assert capsys.readouterr().out == ""
    assert [e.kind for e in events if e.kind != "phase"][:1] == ["started"]
    steps = [e for e in events if e.kind == "step"]
    result = json.loads((tmp_path / "called" / "result.json").read_text())
    assert [e.step for e in steps] == list(range(1, result["steps"] + 1))
    assert all(e.run == "called" and e.usage["task"].calls > 0 for e in steps)
    assert steps[-1].best_val == result["best_val"]
    assert {e.status for e in events if e.kind == "phase"} >= {"training"}


def test_a_parameter_no_gradient_reached_is_listed_apart_from_those_whose_candidates_lost(sim_server, tmp_path,
                                                                                          capsys):
    """A call whose output the prediction never uses: its instruction cannot get a gradient, and the summary says
    so instead of folding it into 'unchanged'."""
    from raygrad.runs.summary import result_summary

    class WithAnAside(raygrad.Workflow):
        def __init__(self):
            self.aside_instruction = raygrad.Parameter("Say something about the question.")
            self.instruction = raygrad.Parameter("Answer.")
            self.aside = raygrad.LLMCall(system=[self.aside_instruction])
            self.answer = raygrad.LLMCall(system=[self.instruction])

        async def forward(self, question: str) -> str:
            await self.aside(question=question)  # its reply goes nowhere
            return await self.answer(question=question)

    server = sim_server(responder="object_count_trainer")
    rows = [{"question": row["input"], "target": row["target"]}
            for row in raygrad.generate_object_counting(30, seed=3)]
    optimized = raygrad.optimize(WithAnAside(), rows[:10], rows[10:30], metric="number", progress=False,
                                 models={"task": {"model": "openai/simulated", "api_base": server.url}},
                                 trainer={"steps": 2, "batch_size": 4}, name="aside", output_dir=tmp_path)
    assert optimized.result.no_gradient == ["aside_instruction"]
    lines = result_summary(optimized.result, optimized.run_dir)
    assert any(line.startswith("  no gradient reached: aside_instruction") for line in lines)
    assert not any(line.startswith("  unchanged:") and "aside_instruction" in line for line in lines)


def test_the_api_refuses_a_val_that_repeats_train_and_a_workflow_that_cannot_travel_to_ray(sim_server, tmp_path):
    """As the CLI refuses overlapping splits; and what cannot be pickled is named before Ray starts, not
    as Ray's serialization error once actors are being made."""
    import threading

    from raygrad.tasks import ObjectCount

    server = sim_server(responder="object_count_trainer")
    models = {"task": {"model": "openai/simulated", "api_base": server.url}}
    data = [{"input": f"I have {n} apples.", "target": str(n)} for n in range(1, 9)]
    with pytest.raises(ValueError, match=r"val shares 4 examples with train \(val\[0\] is train\[4\]\); pass "
                                         r"allow_overlap=True"):
        raygrad.optimize(ObjectCount(), data, data[4:], models=models, output_dir=tmp_path, progress=False)
    workflow = ObjectCount()
    workflow.guard = threading.Lock()
    with pytest.raises(raygrad.ConfigError, match=r"workflow: workflow.guard \(lock: cannot pickle .*\) cannot be "
                                                  r"sent to Ray's workers"):
        raygrad.optimize(workflow, data[:4], data[4:], models=models, output_dir=tmp_path, runtime="ray",
                         address="127.0.0.1:1", progress=False)
    assert server.log == [] and not (tmp_path / "run").exists()
