"""A durable journal of completed LLM calls (SQLite in WAL mode).

Each entry is written in one transaction, so a process killed at any moment leaves either the whole
entry or none of it. WAL lets several processes on one node write the same file. Keep the file on a
local disk: SQLite over NFS/Lustre corrupts.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from raygrad.errors import DamagedFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key        TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


class JournalError(OSError):
    """The call journal cannot be written (disk full, read-only); what it holds is intact."""


def _damaged(path: Path, err: sqlite3.DatabaseError) -> DamagedFile:
    return DamagedFile(f"{path} is not a readable call journal ({err}). Move it aside to go on without it: "
                       "the checkpoint keeps every finished step, and only the calls of the step in progress are "
                       "paid again")


def call_key(model: str, api_base: str | None, messages: list[dict], params: dict[str, Any],
             response_schema: dict | None = None, tag: str | None = None) -> str:
    """Content hash of everything that determines a reply; never the API key."""
    payload = {
        "model": model,
        "api_base": api_base,
        "messages": messages,
        "params": params,
        "schema": response_schema,
        "tag": tag,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Journal:
    """Maps call keys to completed replies. Safe for threads of one process and for many processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        # Switching to WAL ignores the busy timeout when another process is creating the same file.
        for attempt in range(100):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(_SCHEMA)
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 99:
                    raise
                time.sleep(0.05)
            except sqlite3.DatabaseError as err:  # another file, or one cut short: not a retry's to fix
                self._conn.close()
                raise _damaged(self.path, err) from None
        # NORMAL is durable against process crashes (kill -9); only power loss may drop the last commits.
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def get(self, key: str) -> dict | None:
        with self._lock:
            try:
                row = self._conn.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as err:  # a damaged page ("database disk image is malformed")
                raise _damaged(self.path, err) from None
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, response: dict) -> None:
        blob = json.dumps(response, ensure_ascii=False)
        with self._lock:
            try:
                self._conn.execute("INSERT OR REPLACE INTO calls (key, model, response, created_at) "
                                   "VALUES (?, ?, ?, ?)", (key, model, blob, time.time()))
            except sqlite3.OperationalError as err:  # disk full, read-only: every call journaled before is intact
                raise JournalError(f"cannot write the call journal {self.path}: {err}") from None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # A journal travels to Ray actors as its path; each process opens its own connection.
    def __reduce__(self):
        return (Journal, (str(self.path),))
