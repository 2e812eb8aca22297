"""The `persona ingest-facts` input: one fact per JSONL line, validated with line and field named.

Lets the backbone run before (or without) the extractor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.contracts import MAX_TEXT, MAX_USER_ID
from graph_schema import UnknownPredicateError, get_predicate

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")


class FactLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(max_length=MAX_USER_ID)
    ts: datetime
    predicate: str
    object: str | None = Field(default=None, max_length=500)
    value: str | None = Field(default=None, max_length=100)
    object_qid: str | None = None
    object_types: list[str] = Field(default_factory=list, max_length=50)
    confidence: float = Field(default=0.8, ge=0, le=1)
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    source: str = Field(default="facts", max_length=64)
    lang: str | None = Field(default=None, max_length=16)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        # NUL cannot travel through the graph stores' query protocol: refuse it by field.
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and "\x00" in value:
                    raise ValueError(f"{key}: contains a NUL character")
        return data

    @field_validator("user_id", "doc_id")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

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

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.year < 1900 or v.year > 2200:
            raise ValueError("timestamp out of range 1900–2200")
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


class LineError(BaseModel):
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "record"
    message = err.get("msg", "invalid").removeprefix("Value error, ")
    return field, message


def parse_fact_line(raw: str, line_no: int) -> FactLine | LineError:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineError(line=line_no, field="record", message=f"not valid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return LineError(line=line_no, field="record", message="a line must be a JSON object")
    try:
        return FactLine.model_validate(data)
    except ValidationError as exc:
        field, message = _first_error(exc)
        return LineError(line=line_no, field=field, message=message)


def read_fact_lines(path: Path) -> Iterator[tuple[int, FactLine | LineError]]:
    """Yield (line number, fact or error); blank lines are skipped, bad bytes are an error."""
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, LineError(
                    line=line_no, field="record", message=f"invalid UTF-8 at byte {exc.start}"
                )
                continue
            yield line_no, parse_fact_line(text, line_no)
