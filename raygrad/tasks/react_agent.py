"""A ReAct agent (the paper's agent task): one LLM call per turn picks `search[...]` or `finish[...]`,
through a parser and the search tool, over the multi-hop questions; the simulated answers."""
from __future__ import annotations

import re
from typing import Any

from raygrad.core.workflow import Function, LLMCall, Parameter, Workflow
from raygrad.tasks.multihop import multihop_corpus, shipped_question
from raygrad.tasks.retrieval import BM25
from raygrad.tasks.simulated import answers_right, last


def parse_action(reply: str) -> tuple[str, str]:
    """The last 'search[...]' or 'finish[...]' in a reply, as (tool, argument); ('', reply) if none."""
    found = re.findall(r"\b(search|finish)\s*\[([^\]]*)\]", reply, re.I)
    return (found[-1][0].lower(), found[-1][1].strip()) if found else ("", reply.strip())


def out_of_turns(last_reply: str) -> str:
    """No answer. A node of its own, so the loss of a sample that never finished reaches the loop."""
    return ""


class ReActAgent(Workflow):
    """A ReAct-style agent: one LLM call per turn picks a tool, until it finishes or runs out of turns.

    A cyclic workflow: the same `step` call runs once per turn, each turn's action goes through a
    parser and the search tool (functional nodes), and its observation feeds the next turn.
    """

    default_eval = "f1"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, *,
                 retriever: BM25 | None = None, max_turns: int = 4, passages_per_search: int = 2):
        self.instruction = Parameter(instruction or "Answer the question. Search the passages for the facts you "
                                                    "need, one search per turn.", role="instruction",
                                     description="the agent's task and how it should use its turns")
        self.demos = Parameter("", role="demos", description="worked turns of the agent")
        self.tool_format = Parameter(output_format or "Reply with one action: search[query] to look something up, "
                                                      "or finish[answer] when you know the answer.",
                                     role="output format", description="how each turn names its action")
        self.step = LLMCall(system=[self.instruction, self.demos, self.tool_format])
        self.parse = Function(parse_action, name="parse_action")
        self.retriever = retriever or BM25(multihop_corpus())
        self.search = Function(self.retriever.search, name="search")
        self.give_up = Function(out_of_turns, name="out_of_turns")
        self.max_turns, self.passages_per_search = max_turns, passages_per_search

    async def forward(self, input: str) -> str:  # noqa: A002
        transcript: list[str] = []
        for _ in range(self.max_turns):
            reply = await self.step(question=input, transcript=transcript)
            tool, argument = await self.parse(reply)
            if tool == "finish":
                return argument
            if tool == "search":
                found = await self.search(argument, k=self.passages_per_search)
                transcript = transcript + [f"search[{argument}]", *found]
            else:
                transcript = transcript + ["(no action found in the reply)", argument]
        return await self.give_up(reply)


def respond(messages: list[dict], body: dict[str, Any]) -> str:
    """Simulated turns: search the question, then the bridge, then finish (right by raygrad.tasks.simulated's rules)."""
    system, user = last(messages, "system"), last(messages, "user")
    found = shipped_question(user)
    if found is None:
        return "finish[unknown]"
    question, bridge, answer_passage = found
    if answer_passage in user:
        good = answers_right(system, question["input"])
        return f"Thought: I have it.\nAction: finish[{question['target'] if good else 'not sure'}]"
    if bridge in user:
        return f"Thought: now the second fact.\nAction: search[{bridge}]"
    return f"Thought: first the bridge.\nAction: search[{question['input']}]"
