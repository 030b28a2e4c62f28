"""The trace graph of one sample: nodes, edges, loops, peers."""
from __future__ import annotations

import asyncio

from raygrad.core.workflow import Function, LLMCall, Parameter, Workflow, run_forward
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


async def test_run_values_override_parameters_without_touching_the_workflow():
    workflow = TwoHop()
    llm = ScriptedLLM(reply_by_role)
    _, trace = await run_forward(workflow, "who?", llm, values={"answer_format": "One word."})
    answer = trace.nodes[-1]
    assert answer.values == {"answer_instruction": "Answer from the passages.", "answer_format": "One word."}
    assert "One word." in answer.messages[0]["content"] and "Reply with the answer only." not in answer.messages[0]["content"]
    assert workflow.answer_format.value == "Reply with the answer only."  # the workflow itself is untouched


async def test_the_loss_node_is_recorded_by_the_trace_and_fed_by_the_output():
    output, trace = await run_forward(TwoHop(), "who?", ScriptedLLM(reply_by_role))
    answer = trace.nodes[-1]
    loss = trace.record_loss(output, "target", 0.0)
    assert trace.loss is loss and loss.kind == "loss" and loss.parents == [answer.id]


class Outer(Workflow):
    def __init__(self):
        self.inner = TwoHop()
        self.final = Parameter("Summarize.")
        self.summarize = LLMCall(system=[self.final, self.inner.answer_format])

    async def forward(self, input: str) -> str:
        return await self.summarize(answer=await self.inner.forward(input))


def test_components_are_named_once_when_built_and_parameters_has_no_side_effect():
    workflow = Outer()  # the inner workflow was bound first, then renamed by the outer one
    assert set(workflow.parameters()) == {"inner.query_instruction", "inner.answer_instruction",
                                          "inner.answer_format", "final"}
    assert workflow.inner.query.name == "inner.query" and workflow.summarize.name == "summarize"
    unbound = Parameter("x", trainable=False)  # in no call: only a fixed parameter may be
    workflow.extra = unbound
    workflow.parameters()
    assert unbound.name is None  # listing parameters names nothing
    assert "extra" in workflow.bind().parameters() and unbound.name == "extra"
    named = Parameter("y", name="my_name", trainable=False)
    workflow.other = named
    assert workflow.bind().parameters()["my_name"] is named  # a name given by the user is kept


async def test_demos_go_to_the_chat_as_earlier_turns_and_free_text_stays_in_the_system_prompt():
    from raygrad.optim.demos import Demo, render_demos
    from raygrad.tasks import ItemKind

    workflow = ItemKind()
    llm = ScriptedLLM(lambda messages, body: "fruit")
    demos = render_demos([Demo(sample_id="1", input="cow", output="animal"),
                          Demo(sample_id="2", input="tuba", output="instrument")])
    await run_forward(workflow, "banana", llm, {**workflow.state(), "demos": demos})
    assert llm.calls[-1] == [
        {"role": "system", "content": f"{workflow.instruction.value}\n\n{workflow.output_format.value}"},
        {"role": "user", "content": "cow"}, {"role": "assistant", "content": "animal"},
        {"role": "user", "content": "tuba"}, {"role": "assistant", "content": "instrument"},
        {"role": "user", "content": "banana"}]
    own = "Example: cow -> animal."  # a user's own text in a demos parameter is shown as written
    await run_forward(workflow, "banana", llm, {**workflow.state(), "demos": own})
    assert llm.calls[-1] == [
        {"role": "system", "content": f"{workflow.instruction.value}\n\n{own}\n\n{workflow.output_format.value}"},
        {"role": "user", "content": "banana"}]
