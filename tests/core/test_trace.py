"""Edges of the trace follow values through ordinary Python, and none is invented."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel

from raygrad.core.workflow import Function, LLMCall, Parameter, Workflow, run_forward
from raygrad.testing import ScriptedLLM


class Transform(Workflow):
    """Two LLM calls; user code transforms the first's output before the second (or a function) sees it."""

    def __init__(self, transform):
        self.first_instruction = Parameter("Answer.")
        self.second_instruction = Parameter("Check.")
        self.first = LLMCall(system=[self.first_instruction])
        self.second = LLMCall(system=[self.second_instruction])
        self.transform = transform

    async def forward(self, input: str):
        out = await self.first(question=input)
        return await self.second(draft=self.transform(out))


def replies(first: str, second: str = "ok, checked"):
    return ScriptedLLM(lambda messages, body: first if messages[0]["content"] == "Answer." else second)


async def edge_kept(transform, first_reply: str = '  {"answer": "Paris, France", "n": 4}  ') -> bool:
    _, trace = await run_forward(Transform(transform), "Where?", replies(first_reply))
    first, second = trace.nodes
    return second.parents == [first.id]


class Answer(BaseModel):
    answer: str
    n: int


@dataclass
class Draft:
    text: str


async def test_str_methods_slices_and_concatenation_keep_the_edge():
    assert await edge_kept(lambda out: out.strip())
    assert await edge_kept(lambda out: out.split()[0])
    assert await edge_kept(lambda out: out.strip().lower().replace("paris", "PARIS")[2:20])
    assert await edge_kept(lambda out: "Draft: " + out)
    assert await edge_kept(lambda out: "Draft: %s" % out)


async def test_f_strings_json_and_joins_keep_the_edge_by_content():
    assert await edge_kept(lambda out: f"The draft was: {out.strip()}!")
    assert await edge_kept(lambda out: json.loads(out)["answer"])
    assert await edge_kept(lambda out: "\n".join(["header:", out.strip(), "end"]))


async def test_values_through_a_dict_a_list_comprehension_a_pydantic_model_and_a_dataclass_keep_the_edge():
    assert await edge_kept(lambda out: {"draft": out, "extra": 1})
    assert await edge_kept(lambda out: [word.upper() for word in out.split()])
    assert await edge_kept(lambda out: Answer.model_validate_json(out))
    assert await edge_kept(lambda out: Answer.model_validate_json(out).answer)
    assert await edge_kept(lambda out: Draft(text=out.strip()))


async def test_constants_numbers_and_the_samples_own_input_make_no_edge():
    assert not await edge_kept(lambda out: "a constant text of some length")
    assert not await edge_kept(lambda out: json.loads(out)["n"])  # 4: a number is never matched by content
    assert not await edge_kept(lambda out: 4)  # small ints are shared objects: never known by identity
    # The reply repeats the question, which the next call also gets: the edge is to the sample, not the call.
    _, trace = await run_forward(Echo(), "Where is it?", replies("You asked: Where is it? Paris."))
    assert trace.nodes[1].parents == []


class Echo(Transform):
    def __init__(self):
        super().__init__(transform=None)

    async def forward(self, input: str):
        await self.first(question=input)
        return await self.second(question=input.strip())  # the sample's own input, through a str method


class TwoSame(Workflow):
    """Two calls that both reply 'yes'; a function gets the second one's reply only."""

    def __init__(self):
        self.a_instruction, self.b_instruction = Parameter("A."), Parameter("B.")
        self.a, self.b = LLMCall(system=[self.a_instruction]), LLMCall(system=[self.b_instruction])
        self.use = Function(lambda text: text.upper(), name="use")

    async def forward(self, input: str):
        await self.a(question=input)
        second = await self.b(question=input)
        return await self.use(second)


async def test_two_nodes_with_the_same_short_reply_get_no_false_edge():
    _, trace = await run_forward(TwoSame(), "q", ScriptedLLM(lambda messages, body: "yes"))
    a, b, use = trace.nodes
    assert use.parents == [b.id]


class CountTool(Workflow):
    """An LLM call, a tool that turns its reply into a number, and a call that gets the number."""

    def __init__(self):
        self.list_instruction, self.answer_instruction = Parameter("List."), Parameter("Answer.")
        self.list_items = LLMCall(system=[self.list_instruction])
        self.count = Function(lambda listing: len(listing.split(",")), name="count")
        self.answer = LLMCall(system=[self.answer_instruction])

    async def forward(self, input: str):
        total = await self.count(await self.list_items(question=input))
        return await self.answer(question=input, total=total + 1, half=total / 2)


async def test_a_number_a_tool_returns_keeps_its_edge_and_so_does_arithmetic_on_it():
    _, trace = await run_forward(CountTool(), "q", ScriptedLLM(lambda messages, body: "a, b, c"))
    list_items, count, answer = trace.nodes
    assert count.parents == [list_items.id] and answer.parents == [count.id]


# -- the cases an outside reading found: each fails with the trace as it was --------------------------
async def test_a_function_returning_a_namedtuple_keeps_its_fields_edges():
    from collections import namedtuple

    Parsed = namedtuple("Parsed", ["answer", "confidence"])
    assert await edge_kept(lambda out: Parsed(out.strip(), 0.9))
    # the namedtuple a Function returns: its fields are tagged, and the tuple stays a namedtuple
    _, trace = await run_forward(Parse(lambda text: Parsed(text.strip(), 0.9)), "Where?", replies("Paris, France"))
    _, parse, second = trace.nodes
    assert second.parents == [parse.id] and second.edges == {parse.id: "tag"}


class Parse(Workflow):
    """An LLM call, a parser Function, and a call that reads the parsed answer."""

    def __init__(self, parser):
        self.first_instruction, self.second_instruction = Parameter("Answer."), Parameter("Check.")
        self.first, self.second = LLMCall(system=[self.first_instruction]), LLMCall(system=[self.second_instruction])
        self.parse = Function(parser, name="parse")

    async def forward(self, input: str):
        parsed = await self.parse(await self.first(question=input))
        return await self.second(answer=parsed.answer)


async def test_json_loads_of_text_with_escape_sequences_keeps_the_edge_by_content():
    reply = '{"answer": "Line one\\nLine \\"two\\" \\u00e9t\\u00e9"}'
    assert await edge_kept(lambda out: json.loads(out)["answer"], reply)
    _, trace = await run_forward(Transform(lambda out: json.loads(out)["answer"]), "Where?", replies(reply))
    assert trace.nodes[1].edges == {0: "content"}


async def test_int_and_float_of_a_one_number_reply_keep_the_edge():
    assert await edge_kept(lambda out: int(out), " 42\n")
    assert await edge_kept(lambda out: float(out), "3.5")
    assert not await edge_kept(lambda out: 7, " 42\n")  # another number: no edge


async def test_a_short_output_that_recurs_inside_unrelated_text_makes_no_edge():
    assert not await edge_kept(lambda out: "It is true that the sky is blue today.", "true")
    assert await edge_kept(lambda out: str(out), "true")  # the reply itself, as a plain str: equal, so linked


async def test_the_loss_records_which_parameters_it_reached_and_how():
    _, trace = await run_forward(CountTool(), "q", ScriptedLLM(lambda messages, body: "a, b, c"))
    trace.record_loss(trace.nodes[-1].output, "4", 0.0)
    assert trace.reached() == {"answer_instruction": "content", "list_instruction": "content"}
