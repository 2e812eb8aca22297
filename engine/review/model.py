"""The review loop's contracts: batches, items (one sampled document with the facts the engine
stored for it, frozen at sampling time), judgements, and the errors a judgement can meet."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

STRATA = ("lang", "predicate", "tier")
Stratum = Literal["lang", "predicate", "tier"]
Verdict = Literal["correct", "wrong", "fix"]
SentimentLabel = Literal["negative", "neutral", "positive"]


# --- errors: each says which record and field -------------------------------------------------


class ReviewError(ValueError):
    """A judgement or request the review loop refuses; `status` is the HTTP answer."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReviewNotFound(ReviewError):
    status = 404


class ReviewConflict(ReviewError):
    """Someone else judged the document first, or a fact is gone: reload and judge again."""

    status = 409


class ReviewGone(ReviewError):
    """The batch is stale: its document was removed (forgotten) after sampling."""

    status = 410


class ReviewInvalid(ReviewError):
    status = 422


# --- what is stored -------------------------------------------------------------------------


class ItemFact(BaseModel):
    """One fact edge as the engine had it for the document when the batch was sampled."""

    ref: str  # PREDICATE:key, unique within the document
    predicate: str
    target_label: str
    key: str
    label: str
    confidence: float | None = None
    status: str | None = None
    tier: str = "unknown"
    span: tuple[int, int] | None = None  # where the object appears in the text (located, may be None)


class Batch(BaseModel):
    id: str
    name: str
    period: str  # YYYY-MM the batch measures (its month)
    created_at: str
    created_by: str | None = None
    since: str | None = None
    seed: int = 0
    stratify: list[str] = Field(default_factory=list)
    size: int = 0
    judged: int = 0
    forgotten: int = Field(default=0, description="documents removed by forget since sampling (counted in size)")


class ItemSummary(BaseModel):
    doc_id: str
    position: int
    state: Literal["pending", "done"]
    lang: str | None = None
    n_facts: int = 0
    judged_by: str | None = None
    judged_at: str | None = None


class BatchDetail(BaseModel):
    batch: Batch
    items: list[ItemSummary]


class JudgementView(BaseModel):
    kind: Literal["fact", "missing", "sentiment"]
    verdict: str
    ref: str | None = None
    predicate: str | None = None
    object: str | None = None
    fix_predicate: str | None = None
    fix_object: str | None = None
    span: tuple[int, int] | None = None
    label: str | None = None
    reviewer: str
    ts: str


class ItemView(BaseModel):
    batch_id: str
    doc_id: str
    user_id: str
    position: int
    of: int
    state: Literal["pending", "done"]
    rev: int = Field(description="send it back with the judgement; a newer one means someone else judged")
    lang: str | None = None
    ts: str | None = None
    text: str = Field(description="the redacted text as stored")
    sentiment: str | None = Field(default=None, description="the engine's document sentiment at sampling")
    facts: list[ItemFact]
    current_status: dict[str, str | None] = Field(default_factory=dict, description="ref → status now")
    judgements: list[JudgementView] = Field(default_factory=list)
    judged_by: str | None = None
    judged_at: str | None = None


# --- what a reviewer sends -------------------------------------------------------------------


def _no_nul(value: str) -> str:
    """NUL cannot travel through the graph stores' query protocol: refused by field, as in ingest."""
    if "\x00" in value:
        raise PydanticCustomError("nul", "contains a NUL character (binary content)")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class FactJudgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: Text = Field(min_length=1, max_length=600, description="the fact's ref from the item")
    verdict: Verdict
    predicate: Text | None = Field(default=None, max_length=64, description="fix: the right predicate")
    object: Text | None = Field(default=None, max_length=500, description="fix: the right object or value")
    span: tuple[int, int] | None = Field(default=None, description="fix: where the right object is")


class MissingFact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predicate: Text = Field(min_length=1, max_length=64)
    object: Text = Field(min_length=1, max_length=500)
    span: tuple[int, int] | None = Field(default=None, description="[start, end) in the text")
    evidence: Text | None = Field(default=None, max_length=2000,
                                 description="the words in the text, when no span is given")


class SentimentJudgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["correct", "wrong"]
    label: SentimentLabel | None = Field(default=None, description="wrong: the right label")


class DocumentJudgement(BaseModel):
    """Every fact of the document judged, facts it missed, its sentiment: applied as one unit."""

    model_config = ConfigDict(extra="forbid")

    rev: int = Field(ge=0, description="the item's rev as read; a stale one is refused with 409")
    facts: list[FactJudgement] = Field(default_factory=list, max_length=500)
    missing: list[MissingFact] = Field(default_factory=list, max_length=100)
    sentiment: SentimentJudgement


class JudgeResult(BaseModel):
    item: ItemView
    rejected: int = 0
    confirmed: int = 0
    added: int = 0  # fixed and missing facts fused
