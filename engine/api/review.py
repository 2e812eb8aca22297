"""The review loop over HTTP (the explorer's Review and Quality pages): batches, one document at a
time, judgements (bearer token; the token's name is recorded as the reviewer), quality over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

import engine.api.edge  # noqa: F401 - registers the {…:pid} path convertor before the routes
from engine.api.deps import get_settings, get_store
from engine.api.security import Reviewer
from engine.config import Settings
from engine.review import (
    Batch,
    BatchDetail,
    DocumentJudgement,
    ItemView,
    JudgeResult,
    QualityReport,
    ReviewError,
    SampleReport,
    get_batch,
    get_item,
    judge_document,
    list_batches,
    quality_report,
    sample_batch,
)
from engine.review.model import STRATA, Stratum
from engine.store import GraphStore
from graph_schema import fact_predicates

router = APIRouter(prefix="/review", tags=["review"])

BatchId = Annotated[str, Path(min_length=1, max_length=128)]
DocId = Annotated[str, Path(min_length=1, max_length=256, description="Document id (a `/` in it as %2F)")]
Store = Annotated[GraphStore, Depends(get_store)]


class SampleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=100, ge=1, le=10_000)
    since: str | None = Field(default=None, max_length=40,
                              description="ISO date; default 30 days before the newest document")
    stratify: list[Stratum] = Field(default_factory=list, description=f"any of {', '.join(STRATA)}")
    seed: int = Field(default=0, ge=-(2**63), le=2**63 - 1, description="the graph stores 64-bit integers")
    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\w.-]+$")


class ReviewOptions(BaseModel):
    """What the Review page offers in its forms."""

    predicates: list[str]
    sentiment_labels: list[str]


def _http(exc: ReviewError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


@router.get("/batches", response_model=list[Batch], summary="Review batches with their progress")
def batches(store: Store) -> list[Batch]:
    return list_batches(store)


@router.post("/batches", response_model=SampleReport, status_code=201,
             summary="Sample a new review batch (needs the bearer token)")
def create_batch(body: SampleBody, store: Store, who: Reviewer) -> SampleReport:
    try:
        return sample_batch(store, body.n, since=body.since, stratify=body.stratify, seed=body.seed,
                            name=body.name, created_by=who)
    except ReviewError as exc:
        raise _http(exc) from None


@router.get("/options", response_model=ReviewOptions, summary="Predicates and sentiment labels a reviewer may pick")
def options(settings: Annotated[Settings, Depends(get_settings)]) -> ReviewOptions:
    return ReviewOptions(predicates=sorted(p.name for p in fact_predicates(allow_sensitive=settings.allow_sensitive)),
                         sentiment_labels=["negative", "neutral", "positive"])


@router.get("/batches/{batch_id:pid}", response_model=BatchDetail, summary="A batch and its documents")
def batch(batch_id: BatchId, store: Store) -> BatchDetail:
    try:
        return get_batch(store, batch_id)
    except ReviewError as exc:
        raise _http(exc) from None


@router.get("/batches/{batch_id:pid}/items/{doc_id:pid}", response_model=ItemView,
            summary="One sampled document: text, the engine's facts and sentiment, judgements so far")
def item(batch_id: BatchId, doc_id: DocId, store: Store) -> ItemView:
    try:
        return get_item(store, batch_id, doc_id)
    except ReviewError as exc:
        raise _http(exc) from None


@router.put(
    "/batches/{batch_id:pid}/items/{doc_id:pid}", response_model=JudgeResult,
    summary="Judge a document: every fact, missing facts, sentiment (needs the bearer token)",
    responses={409: {"description": "judged by someone else since `rev`, or a fact no longer exists"},
               410: {"description": "the document was removed since sampling (stale batch)"},
               422: {"description": "a verdict is missing, a predicate unknown, a span not in the text, …"}},
)
def judge(batch_id: BatchId, doc_id: DocId, body: DocumentJudgement, store: Store,
          settings: Annotated[Settings, Depends(get_settings)], who: Reviewer) -> JudgeResult:
    try:
        return judge_document(store, settings, batch_id, doc_id, body, who)
    except ReviewError as exc:
        raise _http(exc) from None


@router.get("/quality", response_model=QualityReport,
            summary="Quality per batch (month) with intervals, and the drift alert")
def quality(store: Store, settings: Annotated[Settings, Depends(get_settings)]) -> QualityReport:
    return quality_report(store, settings.review)
