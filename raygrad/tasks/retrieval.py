"""Okapi BM25 over an in-memory corpus, corpus files, and the data files shipped with raygrad."""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from raygrad.errors import ConfigError

_STOPWORDS = frozenset(
    "a an and are as at be by for from had has he her his in is it its of on or she that the their there "
    "they this to was were what when where which who whom whose why how with".split())


def tokenize(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOPWORDS]


class Passage(BaseModel):
    id: str
    title: str
    text: str

    def render(self) -> str:
        return f"{self.title}: {self.text}"


class BM25:
    """Okapi BM25 (k1, b as in Robertson & Zaragoza); `search` returns the top passages as text."""

    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75):
        self.passages, self.k1, self.b = passages, k1, b
        self._docs = [Counter(tokenize(f"{p.title} {p.text}")) for p in passages]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._average = sum(self._lengths) / max(len(self._lengths), 1)
        frequency = Counter(term for doc in self._docs for term in doc)
        n = len(passages)
        self._idf = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}

    def scores(self, query: str) -> list[float]:
        terms = tokenize(query)
        scores = []
        for doc, length in zip(self._docs, self._lengths):
            norm = self.k1 * (1 - self.b + self.b * length / self._average)
            scores.append(sum(self._idf.get(t, 0.0) * doc[t] * (self.k1 + 1) / (doc[t] + norm)
                              for t in terms if t in doc))
        return scores

    def top(self, query: str, k: int = 2) -> list[Passage]:
        scores = self.scores(query)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [self.passages[i] for i in ranked[:k] if scores[i] > 0]

    def search(self, query: str, k: int = 2) -> list[str]:
        return [p.render() for p in self.top(query, k)]


def shipped_rows(folder: str, name: str) -> list[dict]:
    """The rows of a JSONL file shipped with raygrad under tasks/corpora/<folder>/."""
    text = resources.files("raygrad.tasks.corpora").joinpath(folder, name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class CorpusError(ConfigError):
    """A corpus file (workflow.corpus) that cannot be searched; the message names the file and line."""


def load_corpus(path: str | Path) -> list[Passage]:
    """Passages from a JSONL file of {id, title, text} (as `raygrad fetch hotpotqa` writes)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such corpus file (workflow.corpus)") from None
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from None
    passages = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            passages.append(Passage.model_validate_json(line))
        except ValidationError as err:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in err.errors())
            raise CorpusError(f"{path}: line {number}: not a passage {{id, title, text}} ({problem})") from None
    if not passages:
        raise CorpusError(f"{path}: no passages")
    return passages
