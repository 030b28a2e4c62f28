"""Built-in workflows."""
from __future__ import annotations

from raygrad.config import WorkflowConfig
from raygrad.engine import Function, LLMCall, Parameter, Workflow
from raygrad.evals import EVALS, EvalFn
from raygrad.retrieval import BM25, multihop_corpus


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


WORKFLOWS: dict[str, type[SingleCall] | type[MultiHopQA]] = {
    "generic": SingleCall, "object_count": ObjectCount, "multihop_qa": MultiHopQA}


def build_workflow(config: WorkflowConfig) -> tuple[Workflow, EvalFn]:
    """The workflow and eval function a config names."""
    cls = WORKFLOWS[config.name]
    workflow = cls(instruction=config.instruction, output_format=config.output_format)
    return workflow, EVALS[config.eval or cls.default_eval]
