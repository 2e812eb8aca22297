"""Free-text records (`persona ingest`): validation, oversize texts, content ids, dedupe.

A record's text must be text: bytes that are not UTF-8, lone surrogates or mostly control
characters are refused by field. Texts longer than MAX_TEXT are chunked (or truncated) into
several records with a warning, never silently cut.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.contracts import MAX_TEXT, Record
from engine.ingest.errors import LineError, Numbered, from_validation
from engine.ingest.rows import Row, nul_field, numbered, read_rows

OVERSIZE_POLICIES = ("chunk", "truncate")
# A document longer than MAX_TEXT is split into at most this many parts; beyond that, truncated.
MAX_CHUNKS = 10


def content_doc_id(user_id: str, text: str) -> str:
    """Stable id for records without doc_id: the content hash of (user, text)."""
    return "h:" + hashlib.sha256(f"{user_id}\x00{text}".encode()).hexdigest()[:24]


def _text_problem(text: Any) -> str | None:
    if text is None:
        return "missing"
    if not isinstance(text, str):
        return "must be a string"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "invalid UTF-8"
    if "\x00" in text:
        return "binary content (NUL bytes) in text"
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if text and controls / len(text) > 0.05:
        return f"binary content ({controls} control characters) in text"
    return None


def split_text(text: str, size: int) -> list[str]:
    """Split at whitespace or sentence ends near the size limit so words stay whole."""
    parts: list[str] = []
    while len(text) > size:
        cut = max(text.rfind(sep, 0, size) for sep in ("\n", "。", ". ", "! ", "? ", " "))
        cut = cut + 1 if cut > size // 2 else size
        parts.append(text[:cut])
        text = text[cut:]
    if text:
        parts.append(text)
    return parts


def _oversize(text: str, oversize: str) -> tuple[list[str], str]:
    parts = split_text(text, MAX_TEXT)
    if oversize == "truncate" or len(parts) > MAX_CHUNKS:
        keep = 1 if oversize == "truncate" else MAX_CHUNKS
        kept = parts[:keep]
        how = "truncated" if keep == 1 else f"chunked into {keep} documents and truncated"
        dropped = len(text) - sum(len(p) for p in kept)
        return kept, f"text of {len(text)} characters {how}: the last {dropped} were dropped"
    return parts, f"text of {len(text)} characters chunked into {len(parts)} documents (limit {MAX_TEXT})"


def records_from_dict(data: dict[str, Any], line: int | None, *, oversize: str = "chunk") -> list[Record | LineError]:
    """Validate one raw mapping into Record(s); oversized text is chunked or truncated with a warning."""
    if (bad := nul_field(data)) is not None:
        return [bad.model_copy(update={"line": line})]
    raw_id = data.get("doc_id")
    doc_id = str(raw_id) if raw_id not in (None, "") else None
    text = data.get("text")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            text = "\ud800"  # reported as invalid UTF-8 below
    if (why := _text_problem(text)) is not None:
        return [LineError(line=line, field="text", message=why, doc_id=doc_id)]
    texts = [text]
    out: list[Record | LineError] = []
    if len(text) > MAX_TEXT:
        texts, message = _oversize(text, oversize)
        out.append(LineError(line=line, field="text", message=message, doc_id=doc_id, fatal=False))
    for k, part in enumerate(texts):
        fields = {**data, "text": part, "doc_id": doc_id}
        if len(texts) > 1:
            stem = doc_id or content_doc_id(str(data.get("user_id", "")), text)
            fields["doc_id"] = f"{stem}#part{k + 1}"
        try:
            out.append(Record.model_validate(fields))
        except ValidationError as exc:
            return [from_validation(exc, line, doc_id)]
    return out


def read_records(
    path: str | Path, *, fmt: str | None = None, oversize: str = "chunk"
) -> Iterator[Numbered[Record]]:
    """(line, record or error) from a .jsonl/.ndjson, .csv or .parquet file; a chunked text gives
    a warning and several records for its line."""
    if oversize not in OVERSIZE_POLICIES:
        raise ValueError(f"oversize must be one of {OVERSIZE_POLICIES}")
    yield from _records(read_rows(path, fmt), oversize)


def records_from_items(items: Iterable[Any], *, oversize: str = "chunk") -> Iterator[Numbered[Record]]:
    """Records from already-parsed items (an API body), numbered from 1 like lines."""
    return _records(numbered(items), oversize)


def _records(rows: Iterable[Row], oversize: str) -> Iterator[Numbered[Record]]:
    for line, row in rows:
        if isinstance(row, LineError):
            yield line, row
        else:
            yield from ((line, r) for r in records_from_dict(row, line, oversize=oversize))


class Deduper:
    """Drops a record seen before in the same run: the same doc_id, or the same user and text."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._content: set[str] = set()

    def doc_id(self, record: Record) -> str:
        return record.doc_id or content_doc_id(record.user_id, record.text)

    def seen(self, record: Record) -> bool:
        doc_id, content = self.doc_id(record), content_doc_id(record.user_id, record.text)
        if doc_id in self._ids or content in self._content:
            return True
        self._ids.add(doc_id)
        self._content.add(content)
        return False
