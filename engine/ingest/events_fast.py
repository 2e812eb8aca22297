"""The hot path of event validation: a plain, well-formed event checked without a pydantic run.

Bulk event files are millions of small flat objects; pydantic's validation with the model's
Python validators was most of the client's time per event. `plain_event` applies the same rules
as `Event` (engine/ingest/events.py) to the common shapes (strings, JSON numbers, ISO timestamps)
and builds the model without validating it again. Anything else, and anything that fails a rule,
returns None: the caller then validates with the model, which words the error (line and field).
So this path decides only what is accepted quickly, never what an error says.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.contracts import CONTROL_CHARACTER, MAX_USER_ID, to_utc

if TYPE_CHECKING:
    from engine.ingest.events import Event

_CONTROL = CONTROL_CHARACTER  # what `Identifier` refuses
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_FIELDS = frozenset(("user_id", "type", "item", "item_qid", "category", "amount", "currency", "ts", "event_id"))
_REQUIRED = ("user_id", "type", "item", "ts")
_TYPES = frozenset(("purchase", "view", "cart", "refund"))


class _Refer(Exception):  # noqa: N818 - not an error: "let the model decide"
    """This value is not one the fast path decides: the model validates the whole event."""


def _identifier(value: Any, low: int, high: int) -> str:
    """`Identifier` with `Field(min_length, max_length)`: length on the raw text, then stripped,
    non-empty and free of control characters."""
    if type(value) is not str or not low <= len(value) <= high:
        raise _Refer
    text = value.strip()
    if not text or _CONTROL.search(text):
        raise _Refer
    return text


def _optional_text(value: Any, high: int | None = None) -> str | None:
    if value is None:
        return None
    if type(value) is not str or (high is not None and len(value) > high):
        raise _Refer
    return value


def _amount(value: Any) -> float | None:
    """JSON numbers only (not booleans, not text): finite, 0 ≤ amount ≤ 1e12."""
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:
        raise _Refer
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 1e12:
        raise _Refer
    return number


def _timestamp(value: Any, limit: datetime) -> datetime:
    if type(value) is not str:
        raise _Refer
    parsed = datetime.fromisoformat(value.strip())  # ValueError: the model says why
    if parsed.year < 1900 or parsed.year > 2200:
        raise _Refer
    ts = to_utc(parsed)
    if ts > limit:
        raise _Refer
    return ts


def plain_event(data: dict[str, Any], model: type[Event], qid: re.Pattern[str], limit: datetime) -> Event | None:
    """The event when every field is a plain valid value, else None (validate with the model).

    `limit`: the latest timestamp accepted (now plus the clock-drift tolerance).
    """
    if not _FIELDS.issuperset(data) or any(data.get(k) is None for k in _REQUIRED):
        return None
    try:
        kind = data["type"]
        if type(kind) is not str:
            return None
        kind = kind.strip().lower()
        if kind not in _TYPES:
            return None
        item_qid = _optional_text(data.get("item_qid"))
        if item_qid is not None and not qid.match(item_qid):
            return None
        currency = _optional_text(data.get("currency"))
        if currency is not None:
            currency = currency.strip()
            if not _CURRENCY.fullmatch(currency):
                return None
            currency = currency.upper()
        event_id = data.get("event_id")
        values = {
            "user_id": _identifier(data["user_id"], 0, MAX_USER_ID),
            "type": kind,
            "item": _identifier(data["item"], 1, 500),
            "item_qid": item_qid,
            "category": _optional_text(data.get("category"), 200),
            "amount": _amount(data.get("amount")),
            "currency": currency,
            "ts": _timestamp(data["ts"], limit),
            "event_id": None if event_id is None else _identifier(event_id, 1, 256),
        }
    except (_Refer, ValueError, OverflowError):
        return None
    return model.model_construct(_fields_set=set(data), **values)
