"""Durable copies of a run's results on any pyarrow filesystem (s3://, gs://, hdfs://, file://, a path).

A run works in its local directory (the call journal is SQLite and wants a local disk). After every
step a consistent snapshot of the journal, then the checkpoint, are copied to `storage`; when the run
ends, its whole directory: results, tables, config. A run started where its local directory is gone
(a node lost, a new cluster) first takes its checkpoint and journal back from storage and resumes,
paying again at most for the calls of the step that was in progress.

Credentials come from the environment as pyarrow reads them (AWS_ACCESS_KEY_ID, ...), never from the
URI: a URI is printed and written to the run's config.
"""
from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from raygrad.data.remote import check_uri
from raygrad.runs.rundir import JOURNAL


class StorageError(OSError):
    """The storage path cannot be written or read; the message names it. Local files are intact."""


class Storage:
    def __init__(self, uri: str):
        from pyarrow import fs

        check_uri(uri, "storage")
        self.uri = uri
        try:
            self._fs, self._base = fs.FileSystem.from_uri(uri)
        except (TypeError, ValueError):  # a plain path
            self._fs, self._base = fs.LocalFileSystem(), str(Path(uri).resolve())

    def check(self) -> None:
        """Fail now, before any LLM call, if storage cannot be written."""
        probe = f"{self._base}/.raygrad-write-check"
        try:
            self._fs.create_dir(self._base, recursive=True)
            with self._fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self._fs.delete_file(probe)
        except (OSError, ValueError) as err:
            raise StorageError(f"storage {self.uri}: cannot write there: {err}") from None

    def put_run(self, run_dir: Path, journal: Path | None = None) -> None:
        """Copy a run's directory: every result file, and the journal as a consistent snapshot."""
        for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
            name = path.relative_to(run_dir).as_posix()
            if name.startswith(JOURNAL) or path.name.startswith(("_", ".")) or path.suffix in (".tmp", ".partial"):
                continue
            self.put(path, name)
        self.put_journal(journal or run_dir / JOURNAL)

    def put_journal(self, journal: Path) -> None:
        """A consistent snapshot of the call journal, if there is one."""
        if not journal.exists():
            return
        with tempfile.TemporaryDirectory() as folder:
            snapshot = Path(folder) / JOURNAL
            source, target = sqlite3.connect(journal), sqlite3.connect(snapshot)
            try:
                source.backup(target)  # consistent even while other processes write to it
            finally:
                source.close()
                target.close()
            self.put(snapshot)

    def after_checkpoint(self, journal: Path) -> Callable[[Path], None]:
        """What runs after every checkpoint: the journal's snapshot goes first, so the checkpoint in
        storage never counts on calls that storage's journal lacks."""
        def save(checkpoint: Path) -> None:
            self.put_journal(journal)
            self.put(checkpoint)
        return save

    def put(self, local: Path, name: str | None = None) -> None:
        """Copy one file in as `name` (default: its own); it appears whole or not at all (written aside, then moved)."""
        name = name or local.name
        final, partial = f"{self._base}/{name}", f"{self._base}/{name}.partial"
        try:
            self._fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
            with self._fs.open_output_stream(partial) as out:
                out.write(local.read_bytes())
            self._fs.move(partial, final)
        except (OSError, ValueError) as err:
            raise StorageError(f"storage {self.uri}: cannot write {name}: {err}; the local copy {local} "
                               "is intact") from None

    def get(self, name: str, local: Path, attempts: int = 5) -> bool:
        """Copy `name` out to `local` if storage has it; True if it did. A copy is whole: an object
        replaced while it is read (S3 reads a length, then ranges of whatever is there by then) is read again."""
        from pyarrow import fs

        path = f"{self._base}/{name}"
        for _ in range(attempts):
            before = self._fs.get_file_info(path)
            if before.type != fs.FileType.File:
                return False
            with self._fs.open_input_stream(path) as source:
                data = source.read()
            after = self._fs.get_file_info(path)
            if len(data) == before.size == after.size and before.mtime == after.mtime:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(data)
                return True
            time.sleep(0.2)
        raise StorageError(f"storage {self.uri}: {name} kept changing while it was read ({attempts} attempts)")
