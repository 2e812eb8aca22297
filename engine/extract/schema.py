"""The JSON schema the model is held to, derived from ``graph_schema.fact_predicates()``.

It differs from ``graph_schema.extractor_json_schema`` on purpose, because every generated token
costs ~45 ms on two CPU cores:

- no ``evidence`` field: the object must be copied from the text, and the code finds the
  evidence span itself (the sentence holding the object), so a copied quote is not generated
  twice and a span that is not in the text cannot be invented;
- no per-fact ``sentiment`` / ``confidence``: self-reported confidence is useless (notes), so
  confidence comes from token log-probabilities and fact sentiment from the predicate;
- ``reason`` comes before ``sentiment``: a short justification first is a cheap chain of thought
  that the label can then follow.
"""

from __future__ import annotations

from typing import Any

from graph_schema import SENTIMENT_LABELS, fact_predicates

MAX_FACTS = 6
MAX_OBJECT_CHARS = 60
MAX_REASON_CHARS = 60


def model_predicates(*, allow_sensitive: bool = False) -> list[str]:
    return [p.name for p in fact_predicates(allow_sensitive=allow_sensitive)]


def model_json_schema(*, allow_sensitive: bool = False) -> dict[str, Any]:
    """Schema for one document's answer: ``{"facts": [...], "reason": ..., "sentiment": ...}``."""
    fact = {
        "type": "object",
        "properties": {
            "predicate": {"type": "string", "enum": model_predicates(allow_sensitive=allow_sensitive)},
            "object": {"type": "string", "minLength": 1, "maxLength": MAX_OBJECT_CHARS},
        },
        "required": ["predicate", "object"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "facts": {"type": "array", "items": fact, "maxItems": MAX_FACTS},
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
            "sentiment": {"type": "string", "enum": list(SENTIMENT_LABELS)},
        },
        "required": ["facts", "reason", "sentiment"],
        "additionalProperties": False,
    }
