"""The run directory's writes on a real full disk: a clear error, and the previous file intact."""
from __future__ import annotations

import pytest

from raygrad.runs.rundir import CheckpointError, CheckpointFile


def test_a_checkpoint_write_on_a_full_disk_fails_clearly_and_keeps_the_previous_one(small_disk):
    folder, fill = small_disk
    checkpoint = CheckpointFile(folder / "run" / "checkpoint.json")
    checkpoint.save('{"step": 1}')
    fill()
    with pytest.raises(CheckpointError, match=r"cannot write .*checkpoint.json: No space left on device; the "
                                              r"previous version of it is intact"):
        checkpoint.save('{"step": 2, "values": "' + "x" * 100_000 + '"}')
    assert checkpoint.load() == '{"step": 1}'
    assert not (folder / "run" / "checkpoint.json.tmp").exists()


SAVER = """
import json, sys
from raygrad.runs.rundir import CheckpointFile
checkpoint, n = CheckpointFile(sys.argv[1]), 0
while True:
    checkpoint.save(json.dumps({"step": n, "values": "x" * 2_000_000}))
    n += 1
    if n == 3:
        print("saving", flush=True)
"""


def test_kill_9_during_checkpoint_writes_leaves_a_whole_checkpoint_every_time(tmp_path):
    """A process killed while it writes checkpoint after checkpoint (2 MB each, so most kills land
    mid-write): the file is always one whole checkpoint, never a torn one."""
    import json
    import random
    import signal
    import subprocess
    import sys
    import time

    path, steps, rng = tmp_path / "checkpoint.json", [], random.Random(0)
    for _ in range(10):
        writer = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        state = json.loads(path.read_text())
        assert state["values"] == "x" * 2_000_000
        steps.append(state["step"])
    assert all(step >= 2 for step in steps)
