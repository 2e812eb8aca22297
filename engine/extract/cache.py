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

from pydantic import BaseModel

from engine.extract.types import ExtractionResult


def text_hash(redacted_text: str, lang: str) -> str:
    """Version-independent hash of one document's text: how forget finds its cache rows."""
    digest = hashlib.sha256(b"persona-text\x00")
    for part in (lang, redacted_text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def owner_hash(user_id: str) -> str:
    """The user a row was extracted for, not stored in the clear (the cache file outlives users)."""
    return hashlib.sha256(b"persona-owner\x00" + user_id.encode("utf-8")).hexdigest()


class PurgeReport(BaseModel):
    rows_removed: int
    legacy_rows_removed: int  # rows from before text hashes were kept, matched by their evidence
    checkpoint_busy: bool  # another connection held the log open: some old pages may remain


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
            # Deleted rows are overwritten, not left in free pages: forget must reach the file.
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS extraction ("
                " key TEXT PRIMARY KEY, result TEXT NOT NULL, created REAL NOT NULL, text_hash TEXT)"
            )
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(extraction)")}
            if "text_hash" not in columns:  # a cache written before forget could find rows
                self._conn.execute("ALTER TABLE extraction ADD COLUMN text_hash TEXT")
            self._conn.execute("CREATE INDEX IF NOT EXISTS extraction_text ON extraction(text_hash)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS extraction_owner ("
                " key TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (key, owner))"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS extraction_owner_by ON extraction_owner(owner)")

    def get(self, key: str) -> ExtractionResult | None:
        with self._lock:
            row = self._conn.execute("SELECT result FROM extraction WHERE key = ?", (key,)).fetchone()
        return ExtractionResult.model_validate_json(row[0]) if row else None

    def put(
        self, key: str, result: ExtractionResult, *, text_hash: str | None = None, owner: str | None = None
    ) -> None:
        """Store a result; text_hash (see text_hash()) and owner (a user id) let forget find it."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO extraction (key, result, created, text_hash) VALUES (?, ?, ?, ?)",
                (key, result.model_dump_json(), time.time(), text_hash),
            )
            if owner is not None:
                self._add_owner(key, owner)

    def add_owner(self, key: str, owner: str) -> None:
        """Record that another user's document hit this row (identical text)."""
        with self._lock, self._conn:
            self._add_owner(key, owner)

    def _add_owner(self, key: str, owner: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO extraction_owner (key, owner) VALUES (?, ?)", (key, owner_hash(owner))
        )

    def purge(self, *, owner: str | None, texts: list[tuple[str, str]]) -> PurgeReport:
        """Delete every row extracted from one user's documents and scrub the file.

        Rows are found by owner, by the text hash of each (redacted text, lang), and — for rows
        written before either was kept — by evidence: a legacy row goes when all its facts'
        evidence occurs in one of the texts (a cache row is only a saved model call). Then the
        database is vacuumed and its write-ahead log truncated, so no deleted page is left.
        """
        hashes = [text_hash(t, lang) for t, lang in texts]
        with self._lock:
            with self._conn:
                keys: set[str] = set()
                if owner is not None:
                    rows = self._conn.execute(
                        "SELECT key FROM extraction_owner WHERE owner = ?", (owner_hash(owner),)
                    )
                    keys.update(r[0] for r in rows)
                for i in range(0, len(hashes), 500):
                    chunk = hashes[i : i + 500]
                    rows = self._conn.execute(
                        f"SELECT key FROM extraction WHERE text_hash IN ({','.join('?' * len(chunk))})",  # noqa: S608 - placeholders only
                        chunk,
                    )
                    keys.update(r[0] for r in rows)
                legacy = self._legacy_matches([t for t, _ in texts]) - keys
                for key in keys | legacy:
                    self._conn.execute("DELETE FROM extraction WHERE key = ?", (key,))
                    self._conn.execute("DELETE FROM extraction_owner WHERE key = ?", (key,))
                removed = len(keys)
            self._conn.execute("VACUUM")
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return PurgeReport(rows_removed=removed, legacy_rows_removed=len(legacy), checkpoint_busy=bool(busy))

    def _legacy_matches(self, texts: list[str]) -> set[str]:
        if not texts:
            return set()
        found: set[str] = set()
        for key, raw in self._conn.execute("SELECT key, result FROM extraction WHERE text_hash IS NULL"):
            evidence = [f.evidence for f in ExtractionResult.model_validate_json(raw).facts if f.evidence]
            if evidence and any(all(e in t for e in evidence) for t in texts):
                found.add(key)
        return found

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM extraction").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
