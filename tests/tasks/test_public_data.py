"""Loaders for the paper's public datasets, on small files written in their formats (no network here)."""
from __future__ import annotations

import json
import socket

import pytest

from raygrad.cli import main
from raygrad.data import load_examples
from raygrad.runs.assemble import build_workflow
from raygrad.runs.config import ConfigError, WorkflowConfig

TREC_TRAIN = "DESC:manner How did serfdom develop in Russia ?\nNUM:date When was the telephone invented ?\n"
TREC_TEST = "LOC:city What is the capital of Peru ?\nHUM:ind Who wrote Hamlet ?\nENTY:animal What is a group of owls called ?\n"
HOTPOT = [
    {"_id": "q1", "question": "In which country was the author of Quiet Rivers born?", "answer": "Norway",
     "type": "bridge", "level": "easy", "supporting_facts": [["Quiet Rivers", 0], ["Ingrid Solberg", 1]],
     "context": [["Quiet Rivers", ["Quiet Rivers is a novel.", " It was written by Ingrid Solberg."]],
                 ["Ingrid Solberg", ["Ingrid Solberg is a writer.", " She was born in Norway."]],
                 ["Loud Streams", ["Loud Streams is a film."]]]},
    {"_id": "q2", "question": "What is Loud Streams?", "answer": "a film", "type": "comparison", "level": "hard",
     "supporting_facts": [["Loud Streams", 0]], "context": [["Loud Streams", ["Loud Streams is a film."]]]},
]


def test_trec_label_files_become_jsonl_with_coarse_classes(tmp_path, capsys):
    (tmp_path / "train.label").write_bytes(TREC_TRAIN.encode("latin-1"))
    (tmp_path / "test.label").write_bytes(TREC_TEST.encode("latin-1") + "HUM:ind Who is Bront\xeb ?\n".encode("latin-1"))
    out = tmp_path / "trec"
    assert main(["fetch", "trec", str(out), "--source", str(tmp_path / "train.label"), str(tmp_path / "test.label")]) == 0
    assert "test.jsonl (4 rows)" in capsys.readouterr().out
    test = load_examples(out / "test.jsonl")
    assert [(e.input, e.target) for e in test][:2] == [("What is the capital of Peru ?", "LOC"), ("Who wrote Hamlet ?", "HUM")]
    assert test[3].input == "Who is Brontë ?"
    assert json.loads((out / "train.jsonl").read_text().splitlines()[1])["fine"] == "NUM:date"


def test_a_bad_trec_line_or_a_missing_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "train.label").write_text("this is not a label line\n")
    assert main(["fetch", "trec", str(tmp_path / "o"), "--source", str(tmp_path / "train.label"), str(tmp_path / "t")]) == 2
    assert "train.label: line 0: not 'CLASS:fine question'" in capsys.readouterr().err
    (tmp_path / "train.label").write_text(TREC_TRAIN)
    assert main(["fetch", "trec", str(tmp_path / "o"), "--source", str(tmp_path / "train.label"), str(tmp_path / "t")]) == 2
    assert f"{tmp_path / 't'}: cannot read it" in capsys.readouterr().err


def test_hotpotqa_becomes_questions_and_a_corpus_the_multihop_workflows_search(tmp_path, capsys):
    (tmp_path / "hotpot.json").write_text(json.dumps(HOTPOT))
    out = tmp_path / "hotpot"
    assert main(["fetch", "hotpotqa", str(out), "--source", str(tmp_path / "hotpot.json"), "--limit", "1"]) == 0
    questions = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert questions == [{"input": HOTPOT[0]["question"], "target": "Norway", "supporting": ["ingrid-solberg", "quiet-rivers"],
                          "id": "q1", "type": "bridge", "level": "easy"}]
    for name in ("multihop_qa", "react_agent"):
        workflow, _ = build_workflow(WorkflowConfig(name=name, corpus=str(out / "corpus.jsonl")))
        assert workflow.retriever.search("Ingrid Solberg born", k=1) == [
            "Ingrid Solberg: Ingrid Solberg is a writer.  She was born in Norway."]
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "no answer"}]))
    assert main(["fetch", "hotpotqa", str(out), "--source", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: record 0: not a HotPotQA record" in capsys.readouterr().err


def test_a_bad_corpus_names_the_file_and_line(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "title": "A", "text": "x"}\n{"id": "b"}\n')
    with pytest.raises(ConfigError, match=r"corpus\.jsonl: line 1: not a passage .*title: Field required"):
        build_workflow(WorkflowConfig(name="multihop_qa", corpus=str(tmp_path / "corpus.jsonl")))
    with pytest.raises(ValueError, match="workflow object_count searches no corpus"):
        WorkflowConfig(name="object_count", corpus="x.jsonl")


def test_without_a_network_fetch_says_how_to_convert_a_copy_instead(tmp_path, capsys, monkeypatch):
    from raygrad.tasks import public_data

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(public_data, "HOTPOTQA_URL", f"http://127.0.0.1:{port}/hotpot.json")
    assert main(["fetch", "hotpotqa", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert f"cannot download http://127.0.0.1:{port}/hotpot.json" in err and "--source FILE" in err
    assert not (tmp_path / "h").exists()
