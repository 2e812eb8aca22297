"""Behaviour events (`persona ingest-events`): purchase / view / cart / refund lines, JSONL or CSV.

`{user_id, type, item, item_qid?, category?, amount?, currency?, ts, event_id?}`; each event has an
idempotency key (its event_id, else a hash of its content), so a re-sent event counts once.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from engine.contracts import MAX_USER_ID, Identifier, Number, Timestamp, iso, to_utc
from engine.ingest.errors import LineError, Numbered, from_validation
from engine.ingest.events_fast import plain_event
from engine.ingest.rows import numbered, parse_json_line, read_rows, validated

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")
EVENT_TYPES = ("purchase", "view", "cart", "refund")
# Clocks of event sources drift; a day ahead is drift, further ahead is a wrong date (a purchase
# "in 2199" would otherwise become the user's last_seen and win every recency window).
FUTURE_TOLERANCE = timedelta(days=1)


def _finite(value: Any) -> Any:
    """NaN / infinity (JSON numbers or CSV text) are refused as what they are, before the range check."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value  # pydantic names it: not a valid number
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{value!r} is not a number (NaN and infinity are refused)")
    return value


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[Identifier, Field(max_length=MAX_USER_ID)]
    type: Literal["purchase", "view", "cart", "refund"]
    item: Annotated[Identifier, Field(min_length=1, max_length=500)]
    item_qid: str | None = None
    category: str | None = Field(default=None, max_length=200)
    amount: Annotated[Number, BeforeValidator(_finite), Field(ge=0, le=1e12)] | None = None
    currency: str | None = None
    ts: Timestamp
    event_id: Annotated[Identifier, Field(min_length=1, max_length=256)] | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("item_qid")
    @classmethod
    def _qid(cls, v: str | None) -> str | None:
        if v is not None and not QID.match(v):
            raise ValueError(f"{v!r} is not a Wikidata QID (Q followed by digits)")
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{3}", v.strip()):
            raise ValueError(f"{v!r} is not an ISO 4217 currency code (3 letters)")
        return v.strip().upper()

    @field_validator("ts")
    @classmethod
    def _utc(cls, v: Any) -> Any:
        ts = to_utc(v)
        if ts > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValueError(f"{iso(ts)} is in the future (more than {FUTURE_TOLERANCE.days} day after now)")
        return ts

    @property
    def key(self) -> str:
        """Idempotency key: the event id, else a hash of the content."""
        if self.event_id:
            return self.event_id
        body = json.dumps(
            [self.user_id, self.type, self.item, self.item_qid, self.category, self.amount, self.currency,
             iso(self.ts)],
            ensure_ascii=False,
        )
        return "h:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def event_from_dict(data: dict[str, Any], line: int | None) -> Event | LineError:
    fast = plain_event(data, Event, QID, datetime.now(UTC) + FUTURE_TOLERANCE)
    if fast is not None:
        return fast
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        return from_validation(exc, line)


def read_events(path: str | Path, fmt: str | None = None) -> Iterator[Numbered[Event]]:
    """(line, event or error) for each non-blank line; CSV when fmt or the suffix says so."""
    return validated(read_rows(path, fmt), event_from_dict)


def events_from_items(items: Iterable[Any]) -> Iterator[Numbered[Event]]:
    """Events from already-parsed items (an API body), numbered from 1 like lines."""
    return validated(numbered(items), event_from_dict)


class _Idle:
    """The marker a live stream yields when no line came for a while: write what is pending now."""


IDLE = _Idle()
_EOF = object()


def _lines_of(handle: BinaryIO, lines: queue.Queue[Any]) -> None:
    for raw in handle:
        lines.put(raw)
    lines.put(_EOF)


def read_event_stream(handle: BinaryIO, idle_seconds: float) -> Iterator[Numbered[Event] | tuple[None, _Idle]]:
    """JSONL events from a live stream (standard input), numbered like a file's lines.

    `(None, IDLE)` comes once whenever no line arrived for `idle_seconds`, so a slow stream is
    written (and its segments refreshed) promptly instead of waiting for a full batch.
    """
    lines: queue.Queue[Any] = queue.Queue(maxsize=10_000)
    threading.Thread(target=_lines_of, args=(handle, lines), name="event-stream", daemon=True).start()
    line, idle = 0, True
    while True:
        try:
            raw = lines.get(timeout=None if idle else idle_seconds)
        except queue.Empty:
            idle = True
            yield None, IDLE
            continue
        if raw is _EOF:
            return
        line += 1
        idle = False
        if raw.strip():
            row = parse_json_line(raw, line)
            yield line, row if isinstance(row, LineError) else event_from_dict(row, line)
