"""Configs are validated, and errors name the file and field."""
from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from raygrad.runs.config import ConfigError, ModelConfig, RunConfig, load_config


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads_and_roles_left_out_use_the_task_model(tmp_path):
    config = load_config(write(tmp_path, """
name: oc
workflow: {name: object_count}
data: {path: data.jsonl, splits: {train: "0:5", val: "5:"}}
models:
  task: {model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY, rpm: 500, temperature: 0}
"""))
    assert config.model_for("task").model == "openai/gpt-4o-mini"
    assert config.model_for("backward") is config.model_for("optimizer") is config.models["task"]
    assert RunConfig(name="x").model_for("backward").is_local  # no task model either: the embedded one
    assert config.data.path == str(tmp_path / "data.jsonl")  # relative to the config file


@pytest.mark.parametrize("text, named", [
    ("models:\n  task: {model: openai/x, rpm: -5}\n", "models.task.rpm"),
    ("models:\n  task: {model: openai/x, temprature: 0}\n", "models.task.temprature"),
    ("workflow: {name: nonexistent}\n", "workflow.name"),
    ("models:\n  task: {model: notaprovider/some-model}\n", "models.task.model"),
    ("models:\n  the-critic: {model: openai/x}\n", "models.the-critic"),
    ("data: {splits: {train: 3}}\n", "data.splits.train"),
    ("surprise: 1\n", "surprise"),
])
def test_bad_fields_are_named(tmp_path, text, named):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert str(tmp_path / "run.yaml") in str(err.value) and named in str(err.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "models: [unclosed\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_api_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("RAYGRAD_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="RAYGRAD_NO_SUCH_KEY"):
        ModelConfig(model="openai/gpt-4o-mini", api_key_env="RAYGRAD_NO_SUCH_KEY").api_key()


def test_run_config_defaults_to_object_count_on_generated_data():
    config = RunConfig()
    assert config.workflow.name == "object_count" and config.data.generator is not None


def test_a_model_is_a_role_or_named_by_an_llm_call():
    from raygrad.core.workflow import LLMCall, Parameter, Workflow
    from raygrad.errors import ConfigError
    from raygrad.runs.assemble import check_models

    class Routed(Workflow):
        def __init__(self):
            self.route_instruction = Parameter("Route.")
            self.route = LLMCall(system=[self.route_instruction], model="router")

        async def forward(self, input):
            return await self.route(question=input)

    config = RunConfig.model_validate({"models": {"router": {"model": "openai/x"}, "critic": {"model": "openai/y"}}})
    with pytest.raises(ConfigError, match="models.critic: neither a role"):
        check_models(Routed(), config.role_models())
    with pytest.raises(ConfigError, match="models.router: the workflow's LLMCall 'route' uses model 'router'"):
        check_models(Routed(), RunConfig().role_models())
    check_models(Routed(), RunConfig.model_validate({"models": {"router": {"model": "openai/x"}}}).role_models())


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".", ""])
def test_a_run_name_cannot_leave_output_dir(name):
    with pytest.raises(ValidationError, match="name"):
        RunConfig(name=name)


def test_a_journal_path_stays_inside_output_dir(tmp_path):
    config = RunConfig(name="r", output_dir=str(tmp_path), journal="calls/journal.sqlite")
    assert config.journal_path == tmp_path / "r" / "calls" / "journal.sqlite"
    for outside in ("../../elsewhere.sqlite", "/tmp/journal.sqlite"):
        with pytest.raises(ValidationError, match="journal: .* leaves output_dir"):
            RunConfig(name="r", output_dir=str(tmp_path), journal=outside)


def test_an_unquoted_split_that_yaml_reads_as_a_number_is_named_with_the_fix(tmp_path):
    (tmp_path / "c.yaml").write_text('name: x\ndata:\n  splits: {train: "0:6", val: 6:10}\n')
    with pytest.raises(ConfigError, match='data.splits.val: .*YAML read this range as the number 370.*quote it, '
                                          'e.g. "6:10"'):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(("fields", "message"), [
    ("input_fields: [question, context]", r"data.input_fields: \['question', 'context'\] do not fit "
                                          r"CountThenAnswer.forward\(question: 'str'\) -> 'str': it takes no context"),
    ("input_fields: [query]", "it takes no query; nothing gives it question"),
])
def test_input_fields_that_do_not_fit_forward_stop_before_any_call(counting_project, fields, message, capsys):
    from raygrad.cli import main

    project, config, server = counting_project
    rows = [json.loads(line) for line in (project / "questions.jsonl").read_text().splitlines()]
    (project / "questions.jsonl").write_text("".join(json.dumps({**row, "context": "", "query": row["question"]}) + "\n"
                                                     for row in rows))  # the data has the fields; forward does not
    config.write_text(config.read_text().replace("input_field: question", fields))
    assert main(["optimize", str(config), "--local"]) == 2
    assert re.search(message, capsys.readouterr().err) and not server.log


def test_a_forward_that_is_not_async_or_takes_no_input_is_named(tmp_path):
    from raygrad.core.workflow import LLMCall, Parameter, Workflow
    from raygrad.runs.assemble import check_inputs
    from raygrad.runs.config import DataConfig

    class Sync(Workflow):
        def __init__(self):
            self.answer = LLMCall(system=[Parameter("Answer.")])

        def forward(self, question):
            return question

    class NoInput(Sync):
        async def forward(self):
            return ""

    with pytest.raises(ConfigError, match="must be `async def forward"):
        check_inputs(Sync(), DataConfig())
    with pytest.raises(ConfigError, match="data.input_field: 'input' is passed as forward's one argument"):
        check_inputs(NoInput(), DataConfig())
