"""Contracts between the pipeline stages (DESIGN.md, "Contracts")."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


def _strip_nonempty(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{field} must not be empty")
    return value


class Record(BaseModel):
    """One piece of user-written text."""

    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(max_length=MAX_USER_ID)
    text: str = Field(max_length=MAX_TEXT)
    ts: datetime
    source: str = Field(default="unknown", max_length=64)
    lang: str | None = Field(default=None, max_length=16)
    doc_id: str | None = Field(default=None, max_length=256)

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, v: str) -> str:
        return _strip_nonempty(v, "user_id")


class Fact(BaseModel):
    """A fact about the author, as extracted from one document."""

    predicate: str
    object: str = Field(min_length=1, max_length=200)
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    confidence: float = Field(default=0.8, ge=0, le=1)
    evidence: str = Field(default="", max_length=2000)


class DocumentSentiment(BaseModel):
    label: str = Field(pattern="^(positive|negative|neutral)$")
    confidence: float = Field(default=0.5, ge=0, le=1)
    reason: str = Field(default="", max_length=200)
    alerts: list[str] = Field(default_factory=list)


class LinkedEntity(BaseModel):
    """A fact object grounded in Wikidata (qid) or an explicit NIL entity (nil key)."""

    key: str
    qid: str | None = None
    label_en: str | None = None
    label_zh: str | None = None
    label_es: str | None = None
    description: str | None = None
    types: list[str] = Field(default_factory=list)
    score: float = 0.0
    alternatives: list[dict[str, object]] = Field(default_factory=list)

    @property
    def is_nil(self) -> bool:
        return self.qid is None


class ContextEdge(BaseModel):
    """One Wikidata context edge (INSTANCE_OF / SUBCLASS_OF / LOCATED_IN / MANUFACTURER)."""

    model_config = ConfigDict(frozen=True)

    child: str
    rel: str
    parent: str
