"""An agency's own register of filed applications, kept in SQLite.

Each simulated agency keeps its records on disk so that they survive a
restart of the simulator process; tests count filings here to prove that
every application reached the agency exactly once. The agency dedupes on
the idempotency key the way a real back end with idempotency support does,
and also logs every attempt so tests can see retries.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legacy.review import review_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS filings (
    reference TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    filed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    idempotency_key TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Filing:
    reference: str
    idempotency_key: str
    operation: str
    payload: dict[str, Any]
    filed_at: float


class AgencyRecords:
    """Thread-safe: sync simulators (spyne) and async ones share it."""

    def __init__(self, path: Path, agency: str, review_seconds: float = 3.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.agency = agency
        self.review_seconds = review_seconds
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def file(self, idempotency_key: str, operation: str, payload: dict[str, Any]) -> Filing:
        """File once per key; a repeated key returns the first filing."""
        with self._lock:
            self._db.execute("INSERT INTO attempts VALUES (?, ?)", (idempotency_key, time.time()))
            existing = self._get_by_key(idempotency_key)
            if existing is not None:
                return existing
            (count,) = self._db.execute("SELECT COUNT(*) FROM filings").fetchone()
            reference = f"{self.agency}-{time.strftime('%Y')}-{count + 1:06d}"
            now = time.time()
            self._db.execute(
                "INSERT INTO filings VALUES (?, ?, ?, ?, ?)",
                (reference, idempotency_key, operation, json.dumps(payload, default=str), now),
            )
            return Filing(reference, idempotency_key, operation, payload, now)

    def status(self, reference: str) -> tuple[str, str | None] | None:
        """The filing's current review state, or None if the agency never saw it."""
        with self._lock:
            row = self._db.execute(
                "SELECT filed_at, idempotency_key FROM filings WHERE reference = ?", (reference,)
            ).fetchone()
        if row is None:
            return None
        return review_state(row[1], time.time() - row[0], self.review_seconds)

    def filings(self) -> list[Filing]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM filings ORDER BY filed_at").fetchall()
        return [Filing(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def attempts(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM attempts").fetchone()
        return int(count)

    def _get_by_key(self, key: str) -> Filing | None:
        row = self._db.execute("SELECT * FROM filings WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else Filing(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def close(self) -> None:
        self._db.close()
