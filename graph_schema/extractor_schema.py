"""The JSON schema the LLM extractor is held to, generated from the predicate table."""

from __future__ import annotations

from typing import Any

from graph_schema.predicates import fact_predicates

SENTIMENT_LABELS: tuple[str, ...] = ("positive", "negative", "neutral")


def extractor_json_schema(*, allow_sensitive: bool = False) -> dict[str, Any]:
    """Schema for one document: facts about the author plus the document's sentiment."""
    predicates = [p.name for p in fact_predicates(allow_sensitive=allow_sensitive)]
    fact = {
        "type": "object",
        "properties": {
            "predicate": {"type": "string", "enum": predicates},
            "object": {"type": "string", "minLength": 1, "maxLength": 200},
            "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "evidence": {"type": "string", "minLength": 1, "maxLength": 400},
        },
        "required": ["predicate", "object", "evidence"],
        "additionalProperties": False,
    }
    sentiment = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(SENTIMENT_LABELS)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 120},
        },
        "required": ["label", "reason"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "facts": {"type": "array", "items": fact, "maxItems": 12},
            "sentiment": sentiment,
        },
        "required": ["facts", "sentiment"],
        "additionalProperties": False,
    }
