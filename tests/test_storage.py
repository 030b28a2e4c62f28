"""Durable copies of run results on a pyarrow filesystem."""
from __future__ import annotations

from raygrad.storage import Storage


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
