"""Loaders for the public datasets of the paper's tasks, converted to files raygrad reads.

    raygrad fetch trec DIR          # TREC question classification: DIR/train.jsonl, DIR/test.jsonl
    raygrad fetch hotpotqa DIR      # HotPotQA (dev, distractor setting): DIR/questions.jsonl, DIR/corpus.jsonl

Both need a network connection; with `--source FILE` they convert a copy downloaded by hand instead.
BIG-Bench Hard's object_counting.json needs no conversion: `data.path` reads it as it is.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from raygrad.errors import DatasetError

TREC_URLS = {"train": "https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label",
             "test": "https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label"}
HOTPOTQA_URL = "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"


def parse_trec(text: str, source: str = "TREC") -> list[dict]:
    """Lines like 'NUM:dist How far is it from Denver to Aspen ?' -> {input, target (coarse), fine}."""
    rows = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        label, _, question = line.strip().partition(" ")
        coarse, _, fine = label.partition(":")
        if not (coarse.isupper() and fine and question):
            raise DatasetError(f"{source}: line {number}: not 'CLASS:fine question' ({line[:60]!r})")
        rows.append({"input": question.strip(), "target": coarse, "fine": label})
    return rows


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def parse_hotpotqa(records: list[dict], limit: int | None = None, source: str = "HotPotQA"
                   ) -> tuple[list[dict], list[dict]]:
    """HotPotQA records -> (questions {input, target, supporting, id, type, level}, corpus {id, title, text}).

    The corpus is every context paragraph of the chosen questions (gold and distractors), once each.
    """
    questions, corpus, seen = [], [], set()
    for number, record in enumerate(records[:limit]):
        try:
            context = [(title, " ".join(sentences)) for title, sentences in record["context"]]
            questions.append({"input": record["question"], "target": record["answer"],
                              "supporting": sorted({_slug(title) for title, _ in record["supporting_facts"]}),
                              "id": record["_id"], "type": record.get("type"), "level": record.get("level")})
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{source}: record {number}: not a HotPotQA record ({type(err).__name__}: {err})") from None
        for title, text in context:
            if _slug(title) not in seen:
                seen.add(_slug(title))
                corpus.append({"id": _slug(title), "title": title, "text": text})
    return questions, corpus


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=120) as reply:
            return reply.read()
    except (urllib.error.URLError, OSError) as err:
        raise DatasetError(f"cannot download {url}: {getattr(err, 'reason', err)}; download it by hand and "
                           "convert it with --source FILE") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read it ({err.strerror or err})") from None


def _write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


def fetch_trec(directory: Path, sources: dict[str, Path] | None = None) -> list[Path]:
    """TREC's training (5,452) and test (500) questions as DIR/train.jsonl and DIR/test.jsonl."""
    written = []
    for split, url in TREC_URLS.items():
        if sources and split in sources:
            raw, origin = _read(sources[split]), str(sources[split])
        else:
            raw, origin = _download(url), url
        rows = parse_trec(raw.decode("latin-1"), origin)  # the files are Latin-1, not UTF-8
        written.append(_write_jsonl(directory / f"{split}.jsonl", rows))
    return written


def fetch_hotpotqa(directory: Path, source: Path | None = None, limit: int | None = None) -> list[Path]:
    """HotPotQA's dev questions (distractor setting) and their paragraphs as a corpus to search."""
    raw, origin = (_read(source), str(source)) if source else (_download(HOTPOTQA_URL), HOTPOTQA_URL)
    try:
        records = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{origin}: not HotPotQA's JSON ({err})") from None
    if not isinstance(records, list):
        raise DatasetError(f"{origin}: expected a list of HotPotQA records")
    questions, corpus = parse_hotpotqa(records, limit, origin)
    return [_write_jsonl(directory / "questions.jsonl", questions), _write_jsonl(directory / "corpus.jsonl", corpus)]
