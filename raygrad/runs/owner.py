"""One owner per run (or sweep) directory: two processes on one directory would pay for the same calls and
trip over each other's files.

The owner holds an exclusive `flock` on `<dir>/.owner` for as long as it runs; the kernel releases it
when the process ends, however it ends, so a dead owner's directory is taken over by the next command
with no stale lock to clear. The file names the owner (PID, host, start time) for the refusal message.
The lock is advisory and local to one machine's file system: a run directory is on the driver's node.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raygrad.errors import ConfigError

OWNER = ".owner"


class DirectoryInUse(ConfigError):
    """Another live process owns the directory."""


@contextmanager
def owned(directory: Path) -> Iterator[None]:
    """Hold the directory for the `with` block, or raise DirectoryInUse naming its owner."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / OWNER, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the lock's life
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                owner = json.loads(handle.read() or "{}")
            except ValueError:
                owner = {}
            raise DirectoryInUse(
                f"{directory} is in use by raygrad process {owner.get('pid', '?')} on {owner.get('host', '?')} "
                f"(since {owner.get('since', '?')}): wait for it to end, or stop it, then run this again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
