"""POST /ingest (bearer token): fact lines in the `ingest-facts` format, and free-text records for
the LLM pipeline (engine.ingest: dedupe, language, redaction, extraction) when a model is there.

Bodies: `application/json` {"facts": [...], "records": [...]} or `application/x-ndjson` /
`text/plain` with one fact line per line (what `curl --data-binary @facts.jsonl` sends).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from engine import pipeline
from engine.api.deps import get_settings, get_store
from engine.api.security import require_token
from engine.config import Settings
from engine.ingest import FactLine, Numbered, facts_from_items, parse_fact_line, records_from_items
from engine.pipeline import IngestReport
from engine.store import GraphStore

router = APIRouter(tags=["ingest"])

FACT_BATCH = 5000
MAX_ITEMS = 100_000
# One model in memory serves one document at a time (llama.cpp contexts are not thread-safe).
_EXTRACT_LOCK = threading.Lock()


class LineProblem(BaseModel):
    line: int = Field(description="1-based position in `facts` (or the NDJSON line)")
    field: str
    message: str


class FactsSummary(BaseModel):
    lines: int = 0
    facts_applied: int = 0
    documents: int = 0
    edges_written: int = 0
    failed: int = 0
    conflicts: dict[str, int] = Field(default_factory=dict)
    errors: list[LineProblem] = Field(default_factory=list)


class RecordsSummary(BaseModel):
    records: int = 0
    record_errors: list[str] = Field(default_factory=list)
    documents: dict[str, int] = Field(default_factory=dict, description="ok / empty / duplicate / failed")
    facts_applied: int = 0
    errors: list[str] = Field(default_factory=list)


class IngestResult(BaseModel):
    facts: FactsSummary | None = None
    records: RecordsSummary | None = None


class IngestBody(BaseModel):
    """Documented shape of the JSON body (the handler also takes NDJSON fact lines)."""

    facts: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ITEMS)


# --- facts and records: the same pipeline entries as the CLI ---------------------------------


def _problems(report: IngestReport) -> list[LineProblem]:
    return [LineProblem(line=e.line or 0, field=e.field, message=e.message) for e in report.errors if e.fatal]


def ingest_facts(store: GraphStore, settings: Settings, items: Iterable[Numbered[FactLine]]) -> FactsSummary:
    report = pipeline.ingest_facts(store, settings, items, batch=FACT_BATCH)
    return FactsSummary(
        lines=report.lines, facts_applied=report.applied, documents=report.documents,
        edges_written=report.edges_written, failed=report.failed, conflicts=report.conflicts,
        errors=_problems(report),
    )


def _extractor(request: Request) -> Any:
    """The app's extractor, built once (loading a model takes seconds); 503 when none can be had."""
    state = request.app.state
    if state.extractor is None:
        try:
            from engine.extract import make_tier

            s = state.settings
            state.extractor = make_tier(s.extractor, s.llm, allow_sensitive=s.allow_sensitive,
                                        model_cache=s.model_cache)
        except Exception as exc:  # noqa: BLE001 - any backend failure means "no extractor here"
            raise HTTPException(503, f"no LLM extractor available for records: {exc}") from None
    return state.extractor


def ingest_records(
    store: GraphStore, settings: Settings, extractor: Any, items: list[dict[str, Any]]
) -> RecordsSummary:
    with _EXTRACT_LOCK:
        report = pipeline.ingest_records(store, settings, records_from_items(items), extractor=extractor)
    fatal = [e for e in report.errors if e.fatal]
    invalid = [e for e in fatal if e.line is not None and not e.message.startswith("extraction failed")]
    return RecordsSummary(
        records=report.accepted,
        record_errors=[str(e) for e in invalid],
        documents=report.docs,
        facts_applied=report.applied,
        errors=[f"{e.doc_id}: {e.field}: {e.message}" for e in fatal if e not in invalid],
    )


# --- body parsing -----------------------------------------------------------------------------


def _ndjson_facts(body: bytes) -> list[Numbered[FactLine]]:
    """One fact per line, each line parsed and validated on its own (a bad line fails alone)."""
    lines = body.split(b"\n")
    return [(n, parse_fact_line(raw, n)) for n, raw in enumerate(lines, start=1) if raw.strip()]


def _json_body(body: bytes) -> IngestBody:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:  # nested beyond what the decoder follows
        raise HTTPException(400, "body is not valid JSON: too deeply nested") from None
    if not isinstance(data, dict):
        raise HTTPException(422, 'the JSON body must be an object: {"facts": [...], "records": [...]}')
    unknown = set(data) - {"facts", "records"}
    if unknown:
        raise HTTPException(422, f"unknown body fields: {sorted(unknown)} (use 'facts' and 'records')")
    for key in ("facts", "records"):
        value = data.get(key, [])
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise HTTPException(422, f"'{key}' must be a list of at most {MAX_ITEMS} objects")
    return IngestBody(facts=data.get("facts", []), records=data.get("records", []))


@router.post(
    "/ingest",
    response_model=IngestResult,
    dependencies=[Depends(require_token)],
    summary="Ingest fact lines (and records for the LLM pipeline); needs the bearer token",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": IngestBody.model_json_schema()},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one fact line per line"}},
    }}},
)
async def ingest(
    request: Request,
    store: Annotated[GraphStore, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> IngestResult:
    body = await request.body()  # the size limit middleware has already capped this
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type in ("application/x-ndjson", "application/jsonl", "text/plain"):
        lines, records = _ndjson_facts(body), []
    else:
        parsed = _json_body(body)
        lines, records = list(facts_from_items(parsed.facts)), parsed.records
    if not lines and not records:
        raise HTTPException(422, "nothing to ingest: send 'facts' and/or 'records'")
    result = IngestResult()
    if lines:
        result.facts = await run_in_threadpool(ingest_facts, store, settings, lines)
    if records:
        extractor = _extractor(request)
        result.records = await run_in_threadpool(ingest_records, store, settings, extractor, records)
    return result
