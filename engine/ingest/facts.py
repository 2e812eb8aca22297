"""Fact lines (`persona ingest-facts`): one fact per JSONL line, validated with line and field named.

Lets the backbone run before (or without) the extractor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.contracts import MAX_TEXT, MAX_USER_ID, Identifier, Polarity, Probability, Timestamp
from engine.ingest.errors import LineError, Numbered, from_validation
from engine.ingest.rows import numbered, parse_json_line, read_rows, validated
from graph_schema import UnknownPredicateError, get_predicate

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")


class FactLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_id: Annotated[Identifier, Field(max_length=256)]
    user_id: Annotated[Identifier, Field(max_length=MAX_USER_ID)]
    ts: Timestamp
    predicate: str
    object: str | None = Field(default=None, max_length=500)
    value: str | None = Field(default=None, max_length=100)
    object_qid: str | None = None
    object_types: list[str] = Field(default_factory=list, max_length=50)
    confidence: Probability = 0.8
    sentiment: Polarity | None = None
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    source: str = Field(default="facts", max_length=64)
    lang: str | None = Field(default=None, max_length=16)

    @field_validator("predicate")
    @classmethod
    def _known_predicate(cls, v: str) -> str:
        try:
            return get_predicate(v).name
        except UnknownPredicateError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("object_qid")
    @classmethod
    def _qid(cls, v: str | None) -> str | None:
        if v is not None and not QID.match(v):
            raise ValueError(f"{v!r} is not a Wikidata QID (Q followed by digits)")
        return v

    @field_validator("object_types")
    @classmethod
    def _qids(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not isinstance(t, str) or not QID.match(t)]
        if bad:
            raise ValueError(f"not Wikidata QIDs: {bad[:3]}")
        return v

    @model_validator(mode="after")
    def _object_or_value(self) -> FactLine:
        pred = get_predicate(self.predicate)
        if pred.behaviour:
            raise ValueError(f"{pred.name} is behaviour: send it with `persona ingest-events`")
        surface = self.value if self.value is not None else self.object
        if (surface is None or not surface.strip()) and not self.object_qid:
            raise ValueError("one of object, value or object_qid is required")
        return self

    @property
    def surface(self) -> str | None:
        raw = self.value if self.value is not None else self.object
        return raw.strip() if raw else None


def fact_from_dict(data: dict[str, Any], line: int | None) -> FactLine | LineError:
    try:
        return FactLine.model_validate(data)
    except ValidationError as exc:
        return from_validation(exc, line, data.get("doc_id") if isinstance(data.get("doc_id"), str) else None)


def parse_fact_line(raw: bytes | str, line: int) -> FactLine | LineError:
    data = parse_json_line(raw, line)
    return data if isinstance(data, LineError) else fact_from_dict(data, line)


def read_fact_lines(path: str | Path, fmt: str | None = None) -> Iterator[Numbered[FactLine]]:
    """(line, fact or error) for every non-blank line of the file."""
    return validated(read_rows(path, fmt), fact_from_dict)


def facts_from_items(items: Iterable[Any]) -> Iterator[Numbered[FactLine]]:
    """Facts from already-parsed items (an API body), numbered from 1 like lines."""
    return validated(numbered(items), fact_from_dict)
