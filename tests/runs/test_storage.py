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
