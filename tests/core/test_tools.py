"""Native tool calls: schemas from signatures, each tool call a function node, results fed back, a turn limit,
and trainable tool descriptions; over OpenAI's protocol on the simulated server too."""
from __future__ import annotations

import json
import time

import pytest

from raygrad.core.backward import backward, textual_loss
from raygrad.core.workflow import LLMCall, Parameter, Tool, ToolError, Workflow, run_forward
from raygrad.llm.client import LLMClient
from raygrad.testing import ScriptedLLM

ORDERS = {"A17": "shipped", "B22": "pending"}


def order_status(order_id: str) -> str:
    """The status of an order, by its id."""
    time.sleep(0.01)  # a blocking lookup: runs in a worker thread
    return ORDERS.get(order_id, "unknown order")


async def cancel_order(order_id: str, reason: str = "") -> str:
    """Cancel an order that has not shipped."""
    return f"cancelled {order_id}" if ORDERS.get(order_id) == "pending" else f"{order_id} cannot be cancelled"


class Support(Workflow):
    def __init__(self, max_turns: int = 4):
        self.instruction = Parameter("Help the customer; use the tools to look orders up.")
        self.status_help = Parameter("Look up an order's status by its id.", role="tool description")
        self.agent = LLMCall(system=[self.instruction], max_turns=max_turns,
                             tools=[Tool(order_status, description=self.status_help), cancel_order])

    async def forward(self, request: str) -> str:
        return await self.agent(request=request)


def agent_replies(messages, body):
    """Calls order_status on the first turn, cancel_order on the second, then answers from the results."""
    if body.get("response_format"):
        return json.dumps({"feedback": "look the order up before answering"})
    tool_turns = [m for m in messages if m["role"] == "tool"]
    if not tool_turns:
        return {"tool_calls": [{"name": "order_status", "arguments": {"order_id": "B22"}}]}
    if len(tool_turns) == 1:
        return {"tool_calls": [{"name": "cancel_order", "arguments": {"order_id": "B22", "reason": "late"}}]}
    return f"Done: {tool_turns[-1]['content']}."


async def test_tools_run_each_as_a_function_node_and_their_results_go_back_to_the_model():
    seen = []
    llm = ScriptedLLM(lambda messages, body: seen.append(body) or agent_replies(messages, body))
    answer, trace = await run_forward(Support(), "Cancel B22 please", llm)
    assert answer == "Done: cancelled B22."
    tools = seen[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["order_status", "cancel_order"]
    assert tools[0]["function"]["description"] == "Look up an order's status by its id."
    assert tools[1]["function"]["description"] == "Cancel an order that has not shipped."
    assert tools[1]["function"]["parameters"]["required"] == ["order_id"]
    assert [(n.kind, n.name) for n in trace.nodes] == [
        ("llm", "agent"), ("function", "order_status"), ("llm", "agent"), ("function", "cancel_order"),
        ("llm", "agent")]
    first, status, second, cancel, last = trace.nodes
    assert status.parents == [first.id] and cancel.parents == [second.id]
    assert second.parents == [status.id] and last.parents == [status.id, cancel.id]
    assert llm.calls[1][-1] == {"role": "tool", "tool_call_id": llm.calls[1][-2]["tool_calls"][0]["id"],
                                "content": "pending"}
    assert first.parameters == ["instruction", "status_help"]


async def test_a_tool_description_parameter_gets_a_gradient():
    llm = ScriptedLLM(agent_replies)
    workflow = Support()
    answer, trace = await run_forward(workflow, "Cancel B22 please", llm)
    trace.record_loss(answer, "B22 is cancelled", 0.0)
    gradients = await backward(trace, "s", 0.0, textual_loss("Done", "x", 0.0, "exact"), workflow.parameters(), llm)
    assert {g.parameter for g in gradients} == {"instruction", "status_help"}


async def test_a_model_that_never_stops_calling_tools_or_calls_an_unknown_one_raises_a_tool_error():
    looping = ScriptedLLM(lambda messages, body: {"tool_calls": [{"name": "order_status",
                                                                  "arguments": {"order_id": "A17"}}]})
    with pytest.raises(ToolError, match="after max_turns=2"):
        await run_forward(Support(max_turns=2), "?", looping)
    unknown = ScriptedLLM(lambda messages, body: {"tool_calls": [{"name": "refund", "arguments": {}}]})
    with pytest.raises(ToolError, match="'refund', which is not one of the tools"):
        await run_forward(Support(), "?", unknown)
    bad_arguments = ScriptedLLM(lambda messages, body: {"tool_calls": [{"name": "order_status", "arguments": {}}]})
    with pytest.raises(ToolError, match="order_status with arguments that do not validate"):
        await run_forward(Support(), "?", bad_arguments)


@pytest.mark.parametrize("transport", ["openai", "litellm"])
async def test_the_tool_protocol_over_http_as_openai_speaks_it(sim_server, transport):
    server = sim_server(responder_fn=agent_replies)
    client = LLMClient(server.model_config(transport=transport))
    answer, _ = await run_forward(Support(), "Cancel B22 please", client)
    assert answer == "Done: cancelled B22."
    requests = server.answered()
    assert len(requests) == 3 and requests[0].tools[0]["function"]["name"] == "order_status"
    turn = requests[1].messages[-2]
    assert turn["role"] == "assistant" and turn.get("content") is None
    assert turn["tool_calls"][0]["function"] == {"name": "order_status", "arguments": '{"order_id": "B22"}'}
    assert requests[1].messages[-1]["role"] == "tool" and requests[1].messages[-1]["content"] == "pending"
