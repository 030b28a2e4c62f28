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
