"""The trace graph of one sample: nodes, edges, loops, peers."""
from __future__ import annotations

import asyncio

from raygrad.engine import Function, LLMCall, Parameter, Workflow, run_forward
from raygrad.testing import ScriptedLLM


class TwoHop(Workflow):
    def __init__(self):
        self.query_instruction = Parameter("Write a search query.")
        self.answer_instruction = Parameter("Answer from the passages.")
        self.answer_format = Parameter("Reply with the answer only.", role="output format")
        self.query = LLMCall(system=[self.query_instruction])
        self.answer = LLMCall(system=[self.answer_instruction, self.answer_format])
        self.retrieve = Function(lambda q: [f"passage about {q}"], name="retrieve")

    async def forward(self, input: str) -> str:
        passages: list[str] = []
        for _ in range(2):
            q = await self.query(question=input, passages=passages)
            passages = passages + await self.retrieve(q)
        return await self.answer(question=input, passages=passages)


def reply_by_role(messages, body):
    return "QUERY" if messages[0]["content"].startswith("Write a search") else "ANSWER"


async def test_a_loop_records_each_call_in_order_with_its_edges():
    workflow = TwoHop()
    output, trace = await run_forward(workflow, "who?", ScriptedLLM(reply_by_role))
    assert output == "ANSWER"
    assert [(n.name, n.call_index) for n in trace.nodes] == [
        ("query", 0), ("retrieve", 0), ("query", 1), ("retrieve", 1), ("answer", 0)]
    query0, retrieve0, query1, retrieve1, answer = trace.nodes
    assert retrieve0.parents == [query0.id]
    assert query1.parents == [retrieve0.id]  # the second hop reads the first hop's passages
    assert retrieve1.parents == [query1.id]
    assert answer.parents == [retrieve0.id, retrieve1.id]  # passages of both hops
    assert answer.parameters == ["answer_instruction", "answer_format"]  # peers, each its own parameter
    assert "Answer from the passages." in answer.messages[0]["content"]
    assert "Reply with the answer only." in answer.messages[0]["content"]


async def test_concurrent_samples_keep_separate_traces():
    workflow = TwoHop()
    llm = ScriptedLLM(reply_by_role, delay_s=0.01)
    results = await asyncio.gather(*(run_forward(workflow, f"q{i}", llm) for i in range(10)))
    assert all(len(trace.nodes) == 5 for _, trace in results)
    assert len(llm.calls) == 30


def test_parameters_are_named_and_state_round_trips():
    workflow = TwoHop()
    assert set(workflow.parameters()) == {"query_instruction", "answer_instruction", "answer_format"}
    state = workflow.state()
    workflow.load_state({**state, "answer_format": "One word."})
    assert workflow.answer_format.value == "One word."


def test_peers_are_the_other_parameters_of_the_same_llm_call():
    peers = {name: [p.name for p in ps] for name, ps in TwoHop().peers().items()}
    assert peers == {"query_instruction": [], "answer_instruction": ["answer_format"],
                     "answer_format": ["answer_instruction"]}
