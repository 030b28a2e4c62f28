"""VanillaRAG: a BM25 retriever over a corpus shipped with the example, then one LLM call whose user
message is the trainable task description followed by a template over the context and the question.

The task description sits in the user message, as AdalFlow's RAG tutorial sends it: raygrad gives it
gradients and candidates like any system-prompt text. The retriever is a plain blocking function
(raygrad runs it in a worker thread).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from math import log
from pathlib import Path

from raygrad import Function, LLMCall, Parameter, Workflow

CORPUS = Path(__file__).parent / "corpus.jsonl"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class Retriever:
    """BM25 over the passages of a JSONL corpus ({"title", "text"} per line)."""

    def __init__(self, path: Path = CORPUS, k1: float = 1.5, b: float = 0.75):
        self.passages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        self.docs = [Counter(_words(p["title"] + " " + p["text"])) for p in self.passages]
        self.k1, self.b = k1, b
        self.average = sum(sum(d.values()) for d in self.docs) / len(self.docs)
        frequency = Counter(word for doc in self.docs for word in doc)
        self.idf = {w: log(1 + (len(self.docs) - n + 0.5) / (n + 0.5)) for w, n in frequency.items()}

    def __call__(self, query: str, top_k: int = 2) -> list[str]:
        def score(doc: Counter) -> float:
            size = sum(doc.values())
            return sum(self.idf.get(w, 0) * doc[w] * (self.k1 + 1)
                       / (doc[w] + self.k1 * (1 - self.b + self.b * size / self.average)) for w in _words(query))
        ranked = sorted(range(len(self.docs)), key=lambda i: -score(self.docs[i]))[:top_k]
        return [f"{self.passages[i]['title']}: {self.passages[i]['text']}" for i in ranked]


class VanillaRAG(Workflow):
    default_eval = "f1"

    def __init__(self, top_k: int = 2):
        self.task_description = Parameter("Answer the question using the context.",
                                          description="the task text at the top of the user message")
        self.answer_style = Parameter("", role="output format", description="how the answer should be written")
        self.retrieve = Function(Retriever(), name="retrieve")
        self.generate = LLMCall(system=[self.answer_style],
                                user=[self.task_description, "Context: {context}\nQuestion: {question}"])
        self.top_k = top_k

    async def forward(self, question: str) -> str:
        context = await self.retrieve(question, self.top_k)
        return await self.generate(context=context, question=question)
