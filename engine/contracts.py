"""Contracts between the pipeline stages (DESIGN.md, "Contracts"): the types more than one stage
uses, and the field types every input shares (identifiers, timestamps, probabilities).

What one stage alone produces and consumes stays in that stage; the linker's output types
(`LinkedEntity`, `ContextEdge`) live in `linkers`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from graph_schema import Target

MAX_USER_ID = 128
MAX_TEXT = 20_000


def to_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso(ts: datetime) -> str:
    """Timestamps are stored as fixed-width UTC strings so both backends compare them the same."""
    offset = ts.utcoffset()
    if offset:
        ts = ts - offset
    # f-string formatting: astimezone()+strftime() is the hot spot of bulk fusion
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}Z"


# --- field types shared by every input ------------------------------------------------------


# Unicode category Cc is exactly U+0000–U+001F and U+007F–U+009F; one regex scan instead of a
# unicodedata call per character (identifiers are validated once per input line).
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def _identifier(value: str) -> str:
    """Ids must survive the graph's indexes: FalkorDB's range index misses strings with control
    characters, so such an id would be stored but never found again."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    bad = CONTROL_CHARACTER.search(value)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad.group()):04X}")
    return value


def _timestamp(value: Any) -> Any:
    """ISO-8601 strings (or datetimes from typed files) only: a number is not a timestamp."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO-8601 timestamp") from None
    if parsed.year < 1900 or parsed.year > 2200:
        raise ValueError("timestamp out of range 1900–2200")
    return parsed


def _number(value: Any) -> Any:
    """JSON booleans are not numbers (pydantic would take true as 1.0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Probability = Annotated[float, BeforeValidator(_number), Field(ge=0, le=1)]
Polarity = Annotated[float, BeforeValidator(_number), Field(ge=-1, le=1)]
Number = Annotated[float, BeforeValidator(_number)]


# --- what enters ------------------------------------------------------------------------------


class Record(BaseModel):
    """One piece of user-written text."""

    model_config = ConfigDict(extra="ignore")

    user_id: Annotated[Identifier, Field(max_length=MAX_USER_ID)]
    text: str = Field(max_length=MAX_TEXT)
    ts: Timestamp
    source: str = Field(default="unknown", max_length=64)
    lang: str | None = Field(default=None, max_length=16)
    doc_id: Annotated[Identifier, Field(max_length=256)] | None = None

    @field_validator("user_id", "doc_id", mode="before")
    @classmethod
    def _numeric_ids(cls, v: Any) -> Any:
        # numeric ids in JSON or Parquet are still ids
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


# --- what the extractor produces, what fusion consumes ----------------------------------------


class Fact(BaseModel):
    """A fact about the author, as extracted from one document."""

    predicate: str
    object: str = Field(min_length=1, max_length=200)
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    confidence: float = Field(default=0.8, ge=0, le=1)
    evidence: str = Field(default="", max_length=2000)
    tier: str | None = None  # which extractor produced it: "encoder" | "llm" (None: given as a fact line)


class DocumentSentiment(BaseModel):
    label: str = Field(pattern="^(positive|negative|neutral)$")
    confidence: float = Field(default=0.5, ge=0, le=1)
    reason: str = Field(default="", max_length=200)
    alerts: list[str] = Field(default_factory=list)


class TargetRef(BaseModel):
    """The node a fact edge points at: an Entity (QID or NIL key) or a literal Value (engine.link)."""

    label: Target
    key: str
    props: dict[str, Any] = Field(default_factory=dict)


class ResolvedFact(BaseModel):
    """A fact whose object is grounded (engine.link), ready for fusion."""

    doc_id: str
    user_id: str
    ts: datetime
    predicate: str
    target: TargetRef
    confidence: float = Field(ge=0, le=1)
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    tier: str | None = None  # the extractor tier that produced it (None for fact lines)


class DocumentIn(BaseModel):
    """A document as fusion writes it (text already redacted, or None when text is not stored)."""

    doc_id: str
    user_id: str
    ts: datetime
    source: str = "unknown"
    lang: str | None = None
    text: str | None = None
    sentiment: DocumentSentiment | None = None
