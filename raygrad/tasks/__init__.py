"""Built-in tasks, one module each: its workflow, its data (a seeded generator or questions shipped
with raygrad), and its simulated-provider answers; the public dataset fetchers; BM25 retrieval.

Imports core/ and optim/ (metrics), never runs/ or distributed/.
"""
from __future__ import annotations

from collections.abc import Callable

from raygrad.core.workflow import Workflow
from raygrad.tasks.generic import SingleCall
from raygrad.tasks.item_kind import ItemKind, generate_item_kinds
from raygrad.tasks.multihop import MultiHopQA, multihop_questions
from raygrad.tasks.object_count import ObjectCount, generate_object_counting
from raygrad.tasks.react_agent import ReActAgent
from raygrad.tasks.trec import QuestionClassification, trec_questions

WORKFLOWS: dict[str, type[Workflow]] = {
    "generic": SingleCall, "object_count": ObjectCount, "trec": QuestionClassification, "multihop_qa": MultiHopQA,
    "react_agent": ReActAgent, "item_kind": ItemKind}


def _shipped(rows: Callable[[], list[dict]]) -> Callable[[int, int], list[dict]]:
    return lambda size, seed: [{"input": r["input"], "target": r["target"]} for r in rows()[:size]]


# Built-in datasets by name: (size, seed) -> rows of input and target.
GENERATORS: dict[str, Callable[[int, int], list[dict]]] = {
    "object_count": generate_object_counting, "multihop_qa": _shipped(multihop_questions),
    "trec": _shipped(trec_questions), "item_kind": generate_item_kinds}

__all__ = ["GENERATORS", "WORKFLOWS", "ItemKind", "MultiHopQA", "ObjectCount", "QuestionClassification", "ReActAgent",
           "SingleCall"]
