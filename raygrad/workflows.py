"""Built-in workflows."""
from __future__ import annotations

import re

from raygrad.config import WorkflowConfig
from raygrad.engine import Function, LLMCall, Parameter, Workflow
from raygrad.evals import EVALS, EvalFn
from raygrad.retrieval import BM25, load_corpus, multihop_corpus


class SingleCall(Workflow):
    """The generic workflow for any input/target dataset: one LLM call, a system prompt of trainable parts."""

    default_instruction = "Answer the question."
    default_output_format = "Reply with the answer only."
    default_eval = "exact"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, demos: str = ""):
        self.instruction = Parameter(instruction or self.default_instruction, role="instruction")
        self.demos = Parameter(demos, role="demos")  # empty until the demo optimizer finds good ones
        self.output_format = Parameter(output_format or self.default_output_format, role="output format")
        self.answer = LLMCall(system=[self.instruction, self.demos, self.output_format])

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.answer(question=input)


class ObjectCount(SingleCall):
    """BIG-Bench Hard object counting (the paper's ObjectCount), scored by the last number in the reply."""

    default_instruction = "You will answer a reasoning question. Think step by step."
    default_output_format = "Respond with the final answer as a number on the last line, like 'Answer: 5'."
    default_eval = "number"


class MultiHopQA(Workflow):
    """Two hops of query -> BM25 retrieval, then an answer from the passages of both hops.

    A cycle in the workflow (the query call runs once per hop) and a functional node (the
    retriever) in the trace; the default retriever searches the corpus shipped with raygrad.
    """

    default_eval = "f1"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, *,
                 retriever: BM25 | None = None, hops: int = 2, passages_per_hop: int = 2):
        self.query_instruction = Parameter(
            "Write a search query for the fact still missing to answer the question. Reply with the query only.",
            role="instruction")
        self.answer_instruction = Parameter(instruction or "Answer the question from the passages.",
                                            role="instruction")
        self.answer_format = Parameter(output_format or "Reply with the answer only, in a few words.",
                                       role="output format")
        self.query = LLMCall(system=[self.query_instruction])
        self.answer = LLMCall(system=[self.answer_instruction, self.answer_format])
        self.retriever = retriever or BM25(multihop_corpus())
        self.retrieve = Function(self.retriever.search, name="retrieve")
        self.hops, self.passages_per_hop = hops, passages_per_hop

    async def forward(self, input: str) -> str:  # noqa: A002
        passages: list[str] = []
        for _ in range(self.hops):
            query = await self.query(question=input, passages=passages)
            found = await self.retrieve(query, k=self.passages_per_hop)
            passages = passages + [p for p in found if p not in passages]
        return await self.answer(question=input, passages=passages)


TREC_CLASSES = {"ABBR": "abbreviation", "ENTY": "entity", "DESC": "description", "HUM": "human",
                "LOC": "location", "NUM": "numeric value"}


def parse_label(reply: str) -> str:
    """The last TREC class named in a reply ('... so the class is LOC.' -> 'LOC'), else the reply itself."""
    found = re.findall(r"\b(" + "|".join(TREC_CLASSES) + r")\b", reply, re.I)
    return found[-1].upper() if found else reply.strip()


class QuestionClassification(SingleCall):
    """TREC-style question classification into six coarse classes; a parser node reads the label."""

    default_instruction = ("Classify the question by the kind of answer it asks for: "
                           + ", ".join(f"{label} ({meaning})" for label, meaning in TREC_CLASSES.items()) + ".")
    default_output_format = "Reply with the class label."
    default_eval = "exact"

    def __init__(self, instruction: str | None = None, output_format: str | None = None, demos: str = ""):
        super().__init__(instruction, output_format, demos)
        self.parse = Function(parse_label, name="parse_label")

    async def forward(self, input: str) -> str:  # noqa: A002
        return await self.parse(await self.answer(question=input))


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
                                                    "need, one search per turn.", role="instruction")
        self.demos = Parameter("", role="demos")
        self.tool_format = Parameter(output_format or "Reply with one action: search[query] to look something up, "
                                                      "or finish[answer] when you know the answer.",
                                     role="output format")
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


WORKFLOWS: dict[str, type[Workflow]] = {
    "generic": SingleCall, "object_count": ObjectCount, "trec": QuestionClassification, "multihop_qa": MultiHopQA,
    "react_agent": ReActAgent}


def build_workflow(config: WorkflowConfig) -> tuple[Workflow, EvalFn]:
    """The workflow and eval function a config names."""
    cls = WORKFLOWS[config.name]
    options = {"retriever": BM25(load_corpus(config.corpus))} if config.corpus else {}
    workflow = cls(instruction=config.instruction, output_format=config.output_format, **options)
    return workflow, EVALS[config.eval or cls.default_eval]  # type: ignore[attr-defined]
