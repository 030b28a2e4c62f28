"""A support agent: one LLM call that may call four tools, turn after turn, until it answers.

Each tool call the model makes is a function node of the trace; its result goes back to the model
as OpenAI's tool messages. The agent's instruction and the description of `get_order` (what the
model reads to decide when to call it) are trainable.
"""
from __future__ import annotations

from raygrad import LLMCall, Parameter, Tool, Workflow
from support_agent.tools import cancel_order, file_ticket, get_order, track_shipment


class SupportAgent(Workflow):
    default_eval = "support_agent.metrics:outcome"

    def __init__(self, max_turns: int = 4):
        self.instruction = Parameter("You are a customer support agent. Help the customer with their request.",
                                     description="the agent's system prompt")
        self.lookup_description = Parameter("Look an order up.", role="tool description",
                                            description="what the model reads about the get_order tool")
        self.agent = LLMCall(system=[self.instruction], max_turns=max_turns,
                             tools=[Tool(get_order, description=self.lookup_description), track_shipment,
                                    cancel_order, file_ticket])

    async def forward(self, request: str) -> str:
        return await self.agent(request=request)
