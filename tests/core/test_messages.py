"""A call's messages from parts: templates and parameters in the system and the user message, history,
images, per-call settings; components in containers; what binding refuses."""
from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel

from raygrad.core.backward import backward, textual_loss
from raygrad.core.workflow import Function, Image, LLMCall, Parameter, Workflow, run_forward
from raygrad.data import Example
from raygrad.testing import ScriptedLLM


def ask(**inputs) -> Example:
    return Example(id="s", inputs=inputs, target=None, keywords=True)


class RAG(Workflow):
    """AdalFlow's VanillaRAG layout: the trainable task text sits in the user message, before a template."""

    def __init__(self):
        self.task = Parameter("Answer the question from the context in one short phrase.")
        self.style = Parameter("You are a careful assistant.")
        self.answer = LLMCall(system=[self.style], user=[self.task, "Context: {context}\nQuestion: {question}"])

    async def forward(self, question: str, context: list[str]) -> str:
        return await self.answer(question=question, context=context)


async def test_a_user_template_holds_a_parameter_and_the_inputs():
    llm = ScriptedLLM("echo")
    _, trace = await run_forward(RAG(), ask(question="Who?", context=["Ann wrote it.", "Bob read it."]), llm)
    system, user = llm.calls[0]
    assert system == {"role": "system", "content": "You are a careful assistant."}
    assert user["content"] == ("Answer the question from the context in one short phrase.\n\n"
                               "Context: [1] Ann wrote it.\n[2] Bob read it.\nQuestion: Who?")
    assert trace.nodes[0].parameters == ["style", "task"]


async def test_a_parameter_in_the_user_message_gets_its_own_gradient():
    llm = ScriptedLLM(lambda messages, body: '{"feedback": "say which passage"}' if body.get("response_format")
                      else "Carl")
    workflow = RAG()
    _, trace = await run_forward(workflow, ask(question="Who?", context=["Ann wrote it."]), llm)
    trace.record_loss("Carl", "Ann", 0.0)
    gradients = await backward(trace, "s1", 0.0, textual_loss("Carl", "Ann", 0.0, "exact"), workflow.parameters(), llm)
    assert {g.parameter for g in gradients} == {"task", "style"}
    asked = [m[-1]["content"] for m in llm.calls[1:]]
    assert any('name="task"' in text and "Answer the question from the context" in text for text in asked)


async def test_an_empty_system_sends_no_system_message_and_a_missing_template_input_is_named():
    class Bare(Workflow):
        def __init__(self):
            self.instruction = Parameter("")
            self.answer = LLMCall(system=[self.instruction], user=["Q: {question}"])

        async def forward(self, question: str) -> str:
            return await self.answer(query=question)

    llm = ScriptedLLM("echo")
    with pytest.raises(KeyError, match="names input 'question'.*given \\['query'\\]"):
        await run_forward(Bare(), "x", llm)
    assert Bare().answer.messages({"question": "hi"}, {"instruction": ""}) == [{"role": "user", "content": "Q: hi"}]


async def test_objects_render_as_json_and_history_goes_before_the_user_message():
    class Fact(BaseModel):
        name: str
        year: int

    class Chat(Workflow):
        def __init__(self):
            self.instruction = Parameter("Be brief.")
            self.reply = LLMCall(system=[self.instruction], history="history")

        async def forward(self, message: str, history: list[dict]) -> str:
            return await self.reply(message=Fact(name=message, year=2024), history=history)

    llm = ScriptedLLM("echo")
    earlier = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    await run_forward(Chat(), ask(message="Ada", history=earlier), llm)
    assert llm.calls[0][1:3] == earlier
    assert llm.calls[0][3] == {"role": "user", "content": '{"name":"Ada","year":2024}'}


async def test_an_image_goes_as_a_content_part_and_the_trace_keeps_a_placeholder(tmp_path):
    png = tmp_path / "receipt.png"
    png.write_bytes(b"\x89PNG fake bytes")

    class Look(Workflow):
        def __init__(self):
            self.instruction = Parameter("Read the total.")
            self.read = LLMCall(system=[self.instruction], user=["What is the total? {note}"])

        async def forward(self, note: str, picture: Image) -> str:
            return await self.read(note=note, picture=picture)

    llm = ScriptedLLM(lambda messages, body: "12.50")
    _, trace = await run_forward(Look(), ask(note="(the receipt)", picture=Image(png)), llm)
    sent = llm.calls[0][-1]["content"]
    assert sent[0] == {"type": "text", "text": "What is the total? (the receipt)"}
    assert sent[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    kept = trace.nodes[0].messages[-1]["content"]
    assert kept[1] == {"type": "text", "text": "[image: receipt.png]"}  # no bytes in the trace


async def test_per_call_settings_reach_the_request():
    class Sampled(Workflow):
        def __init__(self):
            self.instruction = Parameter("Brainstorm.")
            self.ideas = LLMCall(system=[self.instruction], temperature=0.7, max_tokens=50, stop=["\n\n"], seed=3)

        async def forward(self, topic: str) -> str:
            return await self.ideas(topic=topic)

    seen = []
    await run_forward(Sampled(), "tea", ScriptedLLM(lambda messages, body: seen.append(body) or "ideas"))
    assert seen[0] == {"temperature": 0.7, "max_tokens": 50, "stop": ["\n\n"], "seed": 3}


class Hops(Workflow):
    """Components kept in a list and a dict, as DSPy's multi-hop programs keep their hops."""

    def __init__(self):
        self.instructions = [Parameter(f"Write search query {i}.") for i in range(2)]
        self.hops = [LLMCall(system=[instruction]) for instruction in self.instructions]
        self.tools = {"search": Function(lambda q: [f"about {q}"], name="search")}
        self.final = {"answer": LLMCall(system=[Parameter("Answer.")])}

    async def forward(self, question: str) -> str:
        notes: list[str] = []
        for hop in self.hops:
            notes += await self.tools["search"](await hop(question=question, notes=notes))
        return await self.final["answer"](question=question, notes=notes)


async def test_components_in_lists_and_dicts_are_found_and_named_by_path():
    workflow = Hops()
    assert sorted(workflow.parameters()) == ["final.answer.system.0", "instructions.0", "instructions.1"]
    assert [workflow.hops[0].name, workflow.hops[1].name, workflow.final["answer"].name] == \
        ["hops.0", "hops.1", "final.answer"]
    _, trace = await run_forward(workflow, "Who?", ScriptedLLM(lambda messages, body: "a query text here"))
    assert [n.name for n in trace.nodes] == ["hops.0", "search", "hops.1", "search", "final.answer"]


def test_binding_refuses_duplicate_names_and_a_parameter_no_call_contains():
    class Twice(Workflow):
        def __init__(self):
            self.a = LLMCall(system=[Parameter("x", name="p")])
            self.b = LLMCall(system=[Parameter("y", name="p")])

    with pytest.raises(ValueError, match="both named 'p'"):
        Twice()

    class Orphan(Workflow):
        def __init__(self):
            self.used = Parameter("Answer.")
            self.forgotten = Parameter("Think step by step.")
            self.answer = LLMCall(system=[self.used])

    with pytest.raises(ValueError, match="'forgotten' .* is in no LLMCall's messages"):
        Orphan()
    with pytest.raises(TypeError, match="takes a list of parts"):
        LLMCall(system="Answer.")


async def test_per_call_settings_key_the_journal(sim_server, tmp_path):
    from raygrad.llm.client import LLMClient
    from raygrad.llm.journal import Journal

    server = sim_server(responder="echo")

    def call(max_tokens: int) -> LLMCall:
        return LLMCall(system=[Parameter("Repeat.", trainable=False)], max_tokens=max_tokens)

    class Two(Workflow):
        def __init__(self, short: LLMCall, long: LLMCall):
            self.short, self.long = short, long

        async def forward(self, text: str) -> list[str]:
            return [await self.short(text=text), await self.long(text=text)]

    client = LLMClient(server.model_config(), journal=Journal(tmp_path / "journal.sqlite"))
    await run_forward(Two(call(5), call(6)), "hello", client)
    assert [e.messages for e in server.log][0] == [e.messages for e in server.log][1] and len(server.log) == 2
    await run_forward(Two(call(5), call(6)), "hello", client)  # both replayed: each setting has its own entry
    assert len(server.log) == 2 and client.usage.cached_calls == 2
