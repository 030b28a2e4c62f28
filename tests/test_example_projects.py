"""The example projects ported from public tutorials (typed outputs, native tools, a user template), each
run through the CLI against the simulated provider: the run ends well, and, counted at the server, the
backward engine and the optimizer were asked about every trainable parameter.

The simulated task model of each example follows written rules: it gets an aspect of its answer right
only when the call's prompt (messages, output schema and tool descriptions) holds the example's FIX;
the backward engine names the FIX in its feedback (or a decoy, at the shared noise rate), and the
optimizer adds what the gradients name (raygrad.tasks.simulated).
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from raygrad.cli import main
from raygrad.tasks.simulated import FIXES, holds, last, requested_schema, with_optimizer_roles

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def prompt_text(messages: list[dict], body: dict) -> str:
    """Everything trainable a request carries: its messages, its output schema, its tools' descriptions."""
    return json.dumps([messages, body.get("response_format"), body.get("tools")])


# -- email_extraction: typed outputs ---------------------------------------------------------------
EMAIL_FIX = FIXES[0]


def email_task(messages: list[dict], body: dict) -> str:
    email, fixed = last(messages, "user"), holds(prompt_text(messages, body), EMAIL_FIX)
    if requested_schema(body) == "Classification":
        kind = next((k for cue, k in (("order", "order_confirmation"), ("account", "support_request"),
                                      ("Meeting", "meeting_invitation"), ("Invoice", "invoice"))
                     if cue in email.split("\n")[0]), "newsletter")
        urgency = "high" if "urgent" in email else "low" if "No rush" in email else "medium"
        action = kind in ("support_request", "meeting_invitation", "invoice")
        return json.dumps({"email_type": kind, "urgency": urgency if fixed else "medium",
                           "action_required": action and fixed})
    amount = re.search(r"\$([\d.]+\d)", email)
    dates = re.findall(r"\d{4}-\d\d-\d\d", email)
    return json.dumps({"sender_company": None, "amount": float(amount.group(1)) if amount else None,
                       "key_dates": dates if fixed else []})


# -- support_agent: native tools ---------------------------------------------------------------------
AGENT_FIX = FIXES[1]


def agent_task(messages: list[dict], body: dict) -> str | dict:
    request = next(m["content"] for m in messages if m["role"] == "user")
    order = re.search(r"\b[A-H]\d\d\b", request).group(0)
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if results:
        return f"Here is what I found: {results[-1]}."
    if not holds(prompt_text(messages, body), AGENT_FIX):  # without the fix it only ever looks the order up
        return {"tool_calls": [{"name": "get_order", "arguments": {"order_id": order}}]}
    if "cancel" in request:
        call = {"name": "cancel_order", "arguments": {"order_id": order, "reason": "by mistake"}}
    elif "arrive" in request and "broken" not in request:
        call = {"name": "track_shipment", "arguments": {"order_id": order}}
    elif "broken" in request:
        call = {"name": "file_ticket", "arguments": {"summary": request}}
    else:
        call = {"name": "get_order", "arguments": {"order_id": order}}
    return {"tool_calls": [call]}


# -- rag: the task text in a user template -------------------------------------------------------------
RAG_FIX = FIXES[3]


def rag_task(messages: list[dict], body: dict) -> str:
    user = last(messages, "user")
    question = user.rsplit("Question: ", 1)[-1]
    context = user.split("Context: ", 1)[-1]
    subject = re.search(r"(?:founded|born)\??$", question) and re.sub(
        r"^(Who founded|In which town was|Where was) | (founded|born)\?$|\?$", "", question).strip()
    answer = "I do not know"
    for passage in context.split("\n"):
        text = passage.split(": ", 1)[-1]
        if subject and subject[0].upper() + subject[1:] in text or subject and subject in text:
            found = re.search(r"founded in \d+ by (.+?) in (.+?)\.$", text) if "founded" in question else \
                re.search(r"born in (.+?) and", text)
            if found:
                answer = (found.group(1) if question.startswith("Who") else found.group(2)) if "founded" in question \
                    else found.group(1)
                break
    return answer if holds(prompt_text(messages, body), RAG_FIX) else f"Based on the context, it is {answer}, I think."


PROJECTS = {
    "email_extraction": (email_task, EMAIL_FIX, ["classify_instruction", "urgency_rule", "extract_instruction"]),
    "support_agent": (agent_task, AGENT_FIX, ["instruction", "lookup_description"]),
    "rag": (rag_task, RAG_FIX, ["task_description", "answer_style"]),
}


def asked_about(log: list, schema: str, pattern: str) -> Counter:
    """Requests of one role (by the schema it asks for), per parameter named in them."""
    found: Counter = Counter()
    for entry in log:
        if requested_schema({"response_format": entry.response_format}) == schema:
            found.update(re.findall(pattern, entry.messages[-1]["content"]))
    return found


def optimize_example(example: str, tmp_path: Path, sim_server, capsys, *args: str) -> None:
    """Run an example project through the CLI on the simulated provider; check what the server was asked."""
    task, fix, parameters = PROJECTS[example]
    server = sim_server(responder_fn=with_optimizer_roles(task, cause_of=lambda call_input: fix))
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = project / "config.yaml"
    config.write_text(config.read_text() + f"models: {{task: {model}, backward: {model}, optimizer: {model}}}\n"
                      f"output_dir: {project / 'runs'}\n")
    assert main(["optimize", str(config), *args]) == 0
    out = capsys.readouterr().out
    backward = asked_about(server.log, "FeedbackReply", r'<VARIABLE role="(?!output of)[^"]+" name="([^"]+)"')
    optimizer = asked_about(server.log, "Proposals", r"improved values for (\S+)\. Reply")
    assert set(backward) == set(parameters), (backward, out)
    assert set(optimizer) == set(parameters), (optimizer, out)
    print(f"{example}: backward requests per parameter {dict(backward)}; optimizer requests {dict(optimizer)}")
    name = re.search(r"^name: (\S+)", config.read_text(), re.M).group(1)
    result = json.loads((project / "runs" / name / "result.json").read_text())
    assert result["best_val"] > result["initial_val"], out  # the rules reward the fix the gradients name
    assert result["no_gradient"] == []


@pytest.mark.parametrize("example", sorted(PROJECTS))
def test_an_example_project_optimizes_and_every_parameter_gets_gradients_and_proposals(
        example, tmp_path, sim_server, capsys):
    optimize_example(example, tmp_path, sim_server, capsys, "--local")


@pytest.mark.ray
@pytest.mark.parametrize("example", ["email_extraction", "support_agent"])
def test_typed_outputs_and_tools_on_a_multi_node_cluster(example, ray_cluster, tmp_path, sim_server, capsys):
    """The same on Ray: typed outputs, tools and their traces travel to the workers and the aggregator."""
    optimize_example(example, tmp_path, sim_server, capsys)


def test_a_workflow_that_raises_on_every_sample_exits_2_with_its_first_traceback(tmp_path, sim_server, capsys):
    """Every reply of the email example's calls is prose: each sample raises OutputInvalid, so the run stops
    before any training call, naming the exception and where it came from."""
    server = sim_server(responder_fn=lambda messages, body: "Sorry, I cannot help with that.")
    project = tmp_path / "email_extraction"
    shutil.copytree(EXAMPLES / "email_extraction", project, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = project / "config.yaml"
    config.write_text(config.read_text() + f"models: {{task: {model}, backward: {model}, optimizer: {model}}}\n"
                      f"output_dir: {project / 'runs'}\n")
    assert main(["optimize", str(config), "--local"]) == 2
    err = capsys.readouterr().err
    assert "raised on every sample of the initial validation (OutputInvalid x12" in err
    assert "Traceback" in err and "classify: no JSON object in the reply for Classification" in err
    assert all(requested_schema({"response_format": e.response_format}) == "Classification" for e in server.log)
