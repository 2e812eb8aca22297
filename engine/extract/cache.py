"""Extraction cache: hash of (redacted text, prompt/model version) → extraction result.

Re-ingesting the same text costs no LLM call. Only redacted text ever reaches this module, and
the cache stores the *result* (facts whose objects and evidence come from redacted text), keyed
by a hash, never the raw input.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

from engine.extract.types import ExtractionResult


def cache_key(redacted_text: str, lang: str, version: str) -> str:
    """Content hash: the same redacted text under the same extractor version hits the cache."""
    digest = hashlib.sha256()
    for part in (version, lang, redacted_text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


class ExtractionCache:
    """A small sqlite key-value table; safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False)
        with self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS extraction ("
                " key TEXT PRIMARY KEY, result TEXT NOT NULL, created REAL NOT NULL)"
            )

    def get(self, key: str) -> ExtractionResult | None:
        with self._lock:
            row = self._conn.execute("SELECT result FROM extraction WHERE key = ?", (key,)).fetchone()
        return ExtractionResult.model_validate_json(row[0]) if row else None

    def put(self, key: str, result: ExtractionResult) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO extraction (key, result, created) VALUES (?, ?, ?)",
                (key, result.model_dump_json(), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM extraction").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
