"""The hot path of event validation (engine/ingest/events_fast.py) accepts exactly what the model
accepts, with the same values: every variant here goes through both and must agree."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine.ingest import Event, LineError, event_from_dict
from engine.ingest.events import FUTURE_TOLERANCE, QID
from engine.ingest.events_fast import plain_event

BASE: dict[str, Any] = {"user_id": "ana", "type": "purchase", "item": "basketball", "item_qid": "Q5372",
                        "amount": 30.0, "currency": "eur", "ts": "2024-05-01T10:00:00Z", "event_id": "e1"}
SOON = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
LATE = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

VARIANTS: dict[str, list[Any]] = {
    "user_id": ["bob", " bob ", "", "  ", "a" * 128, "a" * 129, "al\u0000ice", "al\u0085ice", "x\tx", 7, None,
                "ünïcode 用户"],
    "type": ["view", "cart", "refund", " Purchase ", "VIEW", "teleport", 3, None],
    "item": ["Nike", " Nike ", "", " ", "i" * 500, "i" * 501, "ba\u0001ll", 12, None],
    "item_qid": [None, "Q1", "Q0", "64", "Q5372\n", "q5", 5372],
    "category": [None, "shoes", "c" * 200, "c" * 201, 3],
    "amount": [None, 0, 12, 12.5, -5, -0.0, 1e12, 1e12 + 1, float("nan"), float("inf"), True, "12.5", "abc",
               10**400, [1]],
    "currency": [None, "usd", " EUR ", "euros", "E1R", 978],
    "ts": ["2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00", " 2024-05-01 10:00:00Z ", "2024-05-01",
           "last tuesday", "1899-12-31T00:00:00Z", "2199-01-01T00:00:00Z", SOON, LATE, 1714557600, None],
    "event_id": [None, "", " e2 ", "e" * 256, "e" * 257, "e\u0007", 9],
}


def model_result(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        event = Event.model_validate(data)
    except ValidationError:
        return None
    return {**event.model_dump(), "_set": event.model_fields_set}


def fast_result(data: dict[str, Any]) -> dict[str, Any] | None:
    limit = datetime.now(UTC) + FUTURE_TOLERANCE
    event = plain_event(data, Event, QID, limit)
    return None if event is None else {**event.model_dump(), "_set": event.model_fields_set}


CASES = [{**BASE, field: value} for field, values in VARIANTS.items() for value in values]
CASES += [{k: v for k, v in BASE.items() if k != field} for field in BASE]
CASES += [{**BASE, "colour": "red"}, {**BASE, "amount": None, "currency": None, "event_id": None}]
CASES += [{**BASE, "type": t, "amount": a} for t, a in itertools.product(("view", "refund"), (None, 0, 3))]


@pytest.mark.parametrize("data", CASES, ids=[repr(c)[:80] for c in CASES])
def test_fast_path_accepts_what_the_model_accepts_with_the_same_values(data: dict[str, Any]) -> None:
    expected = model_result(data)
    fast = fast_result(data)
    if fast is not None:
        assert fast == expected
    # through the public entry the result is the model's either way
    out = event_from_dict(data, 3)
    if expected is None:
        assert isinstance(out, LineError) and out.line == 3
    else:
        assert isinstance(out, Event) and {**out.model_dump(), "_set": out.model_fields_set} == expected


def test_plain_lines_take_the_fast_path() -> None:
    """The common shapes of a bulk file are decided without the model (what makes it fast)."""
    for data in (BASE, {**BASE, "type": "view", "amount": None, "currency": None},
                 {k: v for k, v in BASE.items() if k not in ("item_qid", "event_id")}):
        assert fast_result(data) is not None, data


def test_errors_still_name_the_field() -> None:
    out = event_from_dict({**BASE, "amount": float("nan")}, 5)
    assert isinstance(out, LineError) and (out.line, out.field) == (5, "amount") and "not a number" in out.message
    out = event_from_dict({**BASE, "ts": LATE}, 6)
    assert isinstance(out, LineError) and out.field == "ts" and "in the future" in out.message
