"""Durable copies of run results on a pyarrow filesystem."""
from __future__ import annotations

from raygrad.runs.storage import Storage


def test_put_and_get_through_a_filesystem_uri_and_a_plain_path(tmp_path):
    local = tmp_path / "run" / "checkpoint.json"
    local.parent.mkdir()
    local.write_text('{"step": 3}')
    for target in (f"file://{tmp_path / 'bucket' / 'prefix'}", str(tmp_path / "plain")):
        storage = Storage(target)
        assert storage.get("checkpoint.json", tmp_path / "x.json") is False  # nothing there yet
        storage.put(local)
        back = tmp_path / "restored" / "checkpoint.json"
        assert storage.get("checkpoint.json", back) and back.read_text() == '{"step": 3}'
    assert sorted(p.name for p in (tmp_path / "bucket" / "prefix").iterdir()) == ["checkpoint.json"]  # no partial left


def test_an_object_replaced_while_it_is_read_from_s3_is_read_whole(s3_storage, tmp_path):
    """S3 reads take the object's length, then byte ranges of whatever is stored by then: a checkpoint
    replaced by a longer one in between came back cut short."""
    storage = Storage(s3_storage("race"))
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text('{"step": 1}')
    new.write_text('{"step": 2, "values": "' + "x" * 5000 + '"}')
    storage.put(old, "checkpoint.json")
    real, replaced = storage._fs, []

    class ReplacedAfterOpening:
        """The filesystem, with the checkpoint replaced between the first read's opening and its reading."""

        def __getattr__(self, name):
            return getattr(real, name)

        def open_input_stream(self, path):
            stream = real.open_input_stream(path)
            if not replaced:
                replaced.append(path)
                storage._fs = real
                storage.put(new, "checkpoint.json")
                storage._fs = self
            return stream

    storage._fs = ReplacedAfterOpening()
    assert storage.get("checkpoint.json", tmp_path / "back.json")
    assert replaced and (tmp_path / "back.json").read_text() == new.read_text()


def test_a_whole_run_directory_goes_to_storage_with_a_consistent_journal_snapshot(tmp_path):
    from raygrad.llm.journal import Journal

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "samples" / "test-after.parquet").write_bytes(b"PAR1")
    (run / "samples" / "_val.parquet.partial").write_bytes(b"half")  # unfinished: not copied
    (run / "result.json").write_text("{}")
    journal = Journal(run / "journal.sqlite")  # open, in WAL mode, as during a run
    journal.put("k1", "m", {"text": "a reply"})
    Storage(str(tmp_path / "store")).put_run(run)
    copied = sorted(p.relative_to(tmp_path / "store").as_posix() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert copied == ["journal.sqlite", "result.json", "samples/test-after.parquet"]
    assert Journal(tmp_path / "store" / "journal.sqlite").get("k1") == {"text": "a reply"}
    journal.close()


def test_a_uri_with_credentials_is_refused_before_anything_runs():
    import pytest

    from raygrad.runs.config import RunConfig

    with pytest.raises(ValueError, match="storage: the URI carries secret_key; give credentials in the environment"):
        RunConfig(storage="s3://bucket/prefix?endpoint_override=localhost:9000&secret_key=abc")


def _run_config(path, server, output, storage) -> None:
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    path.write_text(f"""
name: durable
output_dir: {output}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 140, seed: 4}}, splits: {{train: "0:40", val: "40:100", test: "100:140"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 6, batch_size: 4, proposals: 2, seed: 1}}
storage: "{storage}"
""")


def test_a_run_on_s3_that_loses_its_local_directory_resumes_from_storage_and_repays_only_the_step_in_progress(
        sim_server, s3_storage, tmp_path, capsys):
    """On an S3 API: a run killed (kill -9) mid-step whose local directory is then gone resumes from the
    journal and checkpoint that storage got after its last step, with the result of a run never stopped."""
    import json
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from raygrad.cli import main

    whole_server, cut_server = (sim_server(responder="object_count_trainer", latency_s=0.02) for _ in range(2))
    _run_config(tmp_path / "whole.yaml", whole_server, tmp_path / "whole", s3_storage("whole"))
    assert main(["optimize", str(tmp_path / "whole.yaml"), "--local"]) == 0
    whole = json.loads((tmp_path / "whole" / "durable" / "result.json").read_text())
    steps = json.loads((tmp_path / "whole" / "durable" / "checkpoint.json").read_text())["steps"]
    calls_per_step = [sum(u["calls"] for u in s["usage"].values()) for s in steps]
    calls_per_step = [calls_per_step[0]] + [b - a for a, b in zip(calls_per_step, calls_per_step[1:])]

    _run_config(tmp_path / "cut.yaml", cut_server, tmp_path / "cut", s3_storage("cut"))
    storage = Storage(s3_storage("cut"))
    process = subprocess.Popen([sys.executable, "-m", "raygrad", "optimize", str(tmp_path / "cut.yaml"), "--local"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, deadline = tmp_path / "seen.json", time.monotonic() + 120
    while not (storage.get("checkpoint.json", seen) and json.loads(seen.read_text())["step"] >= 3):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be cut"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    in_flight = json.loads(seen.read_text())["step"]  # the index of the step that was in progress
    shutil.rmtree(tmp_path / "cut")  # the node and its disk are gone
    capsys.readouterr()
    assert main(["optimize", str(tmp_path / "cut.yaml"), "--local"]) == 0
    assert f"resumed from {s3_storage('cut')}/checkpoint.json" in capsys.readouterr().out
    cut = json.loads((tmp_path / "cut" / "durable" / "result.json").read_text())
    assert (cut["values"], cut["best_val"], cut["steps"]) == (whole["values"], whole["best_val"], whole["steps"])
    # The test split's first scoring (before training, in no checkpoint) came back from storage's journal...
    assert cut["usage"]["task"]["cached_calls"] >= 40
    # ...and, counted at the servers, the calls sent twice are at most those of the step the kill cut short.
    repaid = len(cut_server.log) - len(whole_server.log)
    assert 0 <= repaid <= calls_per_step[in_flight], (repaid, in_flight, calls_per_step)
    assert storage.get("journal.sqlite", tmp_path / "journal.sqlite")  # the final snapshot, too
