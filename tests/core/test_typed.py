"""Typed outputs: the request asks for the schema, the reply is validated, and every field keeps its edge."""
from __future__ import annotations

import enum
import json

import pytest
from pydantic import BaseModel

from raygrad.core.trace import Trace
from raygrad.core.typed import OutputInvalid, output_schema
from raygrad.core.workflow import LLMCall, Parameter, Workflow, run_forward
from raygrad.testing import ScriptedLLM


class Urgency(str, enum.Enum):
    low = "low"
    high = "high"


class Contact(BaseModel):
    name: str
    email: str | None = None


class EmailFacts(BaseModel):
    summary: str
    action_required: bool
    urgency: Urgency
    amount: float
    contacts: list[Contact]


FACTS = {"summary": "Invoice 42 is overdue and must be paid", "action_required": True, "urgency": "high",
         "amount": 120.5, "contacts": [{"name": "Ann Lee", "email": "ann@example.com"}]}


class Extract(Workflow):
    def __init__(self):
        self.instruction = Parameter("Extract the facts of the email.")
        self.urgency_text = Parameter("How soon the sender needs an answer.", role="field description")
        self.extract = LLMCall(system=[self.instruction], output=EmailFacts, descriptions={"urgency": self.urgency_text})

    async def forward(self, email: str) -> dict:
        facts = await self.extract(email=email)
        # The prediction is built anew from the fields, as a DSPy program returns a Prediction.
        return {"summary": facts.summary, "action_required": facts.action_required, "urgency": facts.urgency,
                "amount": facts.amount, "first_contact": facts.contacts[0].name}


async def test_the_request_carries_the_strict_schema_with_trainable_descriptions_and_the_reply_is_validated():
    seen = []
    llm = ScriptedLLM(lambda messages, body: seen.append(body) or json.dumps(FACTS))
    prediction, trace = await run_forward(Extract(), "Dear ...", llm)
    schema = seen[0]["response_format"]["json_schema"]
    assert seen[0]["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["schema"]["properties"]["urgency"]["description"] == "How soon the sender needs an answer."
    assert schema["schema"]["required"] == list(EmailFacts.model_fields)
    assert schema["schema"]["additionalProperties"] is False
    contact = schema["schema"]["$defs"]["Contact"]
    assert contact["required"] == ["name", "email"] and "default" not in json.dumps(contact)
    assert prediction["urgency"] is Urgency.high and prediction["action_required"] is True
    assert trace.nodes[0].parameters == ["instruction", "urgency_text"]


async def test_every_field_keeps_its_edge_booleans_enums_numbers_and_nested_lists_included():
    prediction, trace = await run_forward(Extract(), "Dear ...", ScriptedLLM(lambda messages, body: json.dumps(FACTS)))
    edges = {field: trace.record_loss({field: value}, None, 0.0).edges for field, value in prediction.items()}
    assert edges == {"summary": {0: "tag"}, "action_required": {0: "field"}, "urgency": {0: "field"},
                     "amount": {0: "tag"}, "first_contact": {0: "tag"}}


async def test_a_bool_under_another_name_or_alone_makes_no_edge():
    _, trace = await run_forward(Extract(), "Dear ...", ScriptedLLM(lambda messages, body: json.dumps(FACTS)))
    assert trace.record_loss({"is_spam": True}, None, 0.0).parents == []
    assert trace.record_loss(True, None, 0.0).parents == []


async def test_a_reply_that_does_not_validate_raises_with_the_error_and_keeps_the_node():
    broken = {**FACTS, "urgency": "whenever"}
    trace = Trace()
    with pytest.raises(OutputInvalid, match="extract: reply does not match EmailFacts.*urgency"):
        await run_forward(Extract(), "Dear ...", ScriptedLLM(lambda messages, body: json.dumps(broken)), trace=trace)
    assert trace.nodes[0].error.startswith("OutputInvalid")
    assert trace.raised_in == 0


def test_an_unknown_described_field_fails_when_the_call_is_made():
    with pytest.raises(KeyError, match="no field 'urgent'"):
        LLMCall(output=EmailFacts, descriptions={"urgent": "x"})
    assert output_schema(Contact)["properties"]["email"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


async def test_a_model_without_structured_output_is_asked_in_the_prompt_and_validated(sim_server):
    """gpt-3.5-turbo (the paper's task model) takes no json_schema: litellm knows it, so the schema goes in the
    prompt; a model litellm does not know is asked for json_schema, as its config says."""
    from raygrad.llm.client import LLMClient
    from raygrad.llm.models import ModelConfig

    server = sim_server(responder_fn=lambda messages, body: json.dumps(FACTS))
    old = LLMClient(ModelConfig(model="openai/gpt-3.5-turbo", api_base=server.url))
    prediction, _ = await run_forward(Extract(), "Dear ...", old)
    assert prediction["urgency"] is Urgency.high
    asked = server.log[-1]
    assert asked.response_format is None and '"action_required"' in asked.messages[-1]["content"]
    assert "Reply with one JSON object that matches this JSON schema" in asked.messages[-1]["content"]
    await run_forward(Extract(), "Dear ...", LLMClient(server.model_config()))
    assert server.log[-1].response_format["type"] == "json_schema"
