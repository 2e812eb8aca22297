"""Helpers to build fact lines in tests."""

from __future__ import annotations

import json
from typing import Any

from engine.ingest import FactLine, parse_fact_line


def fact(**fields: Any) -> FactLine:
    fields.setdefault("ts", "2024-01-01T00:00:00Z")
    fields.setdefault("user_id", "u1")
    parsed = parse_fact_line(json.dumps(fields), 1)
    assert isinstance(parsed, FactLine), parsed
    return parsed
