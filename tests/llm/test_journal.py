"""The call journal survives kill -9 with no corrupted or partial entries."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from raygrad.llm.journal import Journal, call_key

WRITER = """
import sys
from raygrad.llm.journal import Journal
journal = Journal(sys.argv[1])
i = 0
while True:
    journal.put(f"key-{i}", "m", {"text": "x" * 5000, "n": i})
    i += 1
    if i == 50:
        print("writing", flush=True)
"""


def test_killed_writers_leave_a_journal_that_opens_cleanly(tmp_path):
    path = tmp_path / "journal.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    for writer in writers:  # both are writing the same file, concurrently
        assert writer.stdout.readline().strip() == "writing"
    time.sleep(0.5)
    for writer in writers:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    journal = Journal(path)
    assert journal.integrity_ok()
    count = len(journal)
    assert count >= 100
    rows = journal._conn.execute("SELECT key, response FROM calls").fetchall()
    for key, blob in rows:  # every entry is whole
        entry = json.loads(blob)
        assert key == f"key-{entry['n']}" and entry["text"] == "x" * 5000


def test_call_key_covers_everything_that_changes_a_reply_but_not_the_key():
    base = dict(model="openai/gpt-4o-mini", api_base=None, messages=[{"role": "user", "content": "q"}],
                params={"temperature": 0})
    key = call_key(**base)
    assert key == call_key(**base)  # stable across calls (and processes: sha256, not hash())
    assert key != call_key(**{**base, "api_base": "http://127.0.0.1:9/v1"})
    assert key != call_key(**{**base, "params": {"temperature": 0.5}})
    assert key != call_key(**{**base, "model": "openai/gpt-4o"})
    assert key != call_key(**base, response_schema={"type": "object"})
    assert key != call_key(**{**base, "messages": [{"role": "user", "content": "q2"}]})


def test_a_full_disk_stops_journal_writes_with_a_clear_error_and_keeps_what_was_written(small_disk):
    import pytest

    from raygrad.llm.journal import JournalError

    folder, fill = small_disk
    journal = Journal(folder / "journal.sqlite")
    for i in range(20):
        journal.put(f"k{i}", "m", {"text": f"reply {i}"})
    filler = fill()
    with pytest.raises(JournalError, match=r"cannot write the call journal .*journal.sqlite: database or disk is full"):
        for i in range(20, 2000):
            journal.put(f"k{i}", "m", {"text": "x" * 4000})
    journal.close()
    filler.unlink()
    reopened = Journal(folder / "journal.sqlite")
    assert reopened.integrity_ok() and all(reopened.get(f"k{i}") == {"text": f"reply {i}"} for i in range(20))
