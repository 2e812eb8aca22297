"""POST /ingest (bearer token): fact lines in the `ingest-facts` format, and free-text records for
the LLM pipeline (engine.ingest: dedupe, language, redaction, extraction) when a model is there.

Bodies: `application/json` {"facts": [...], "records": [...]} or `application/x-ndjson` /
`text/plain` with one fact line per line (what `curl --data-binary @facts.jsonl` sends).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from engine.api.deps import get_settings, get_store
from engine.api.security import require_token
from engine.config import Settings
from engine.facts_input import FactLine, LineError, parse_fact_line
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


# --- facts ------------------------------------------------------------------------------------


def _parse_facts(raw_lines: list[tuple[int, str]]) -> tuple[list[tuple[int, FactLine]], list[LineProblem]]:
    good: list[tuple[int, FactLine]] = []
    bad: list[LineProblem] = []
    for line_no, raw in raw_lines:
        item = parse_fact_line(raw, line_no)
        if isinstance(item, LineError):
            bad.append(LineProblem(line=item.line, field=item.field, message=item.message))
        else:
            good.append((line_no, item))
    return good, bad


def ingest_facts(store: GraphStore, settings: Settings, raw_lines: list[tuple[int, str]]) -> FactsSummary:
    from engine.pipeline import apply_fact_lines

    good, problems = _parse_facts(raw_lines)
    summary = FactsSummary(lines=len(raw_lines))
    conflicts: Counter[str] = Counter()
    for start in range(0, len(good), FACT_BATCH):
        chunk = good[start:start + FACT_BATCH]
        report = apply_fact_lines(store, settings, [f for _, f in chunk])
        problems += [LineProblem(line=chunk[p.index][0], field=p.field, message=p.message)
                     for p in report.problems]
        line_of_doc = {f.doc_id: n for n, f in chunk}
        problems += [LineProblem(line=line_of_doc.get(doc, 0), field="doc_id", message=why)
                     for doc, why in report.fuse.rejected]
        summary.facts_applied += report.facts_applied
        summary.documents += report.documents
        summary.edges_written += report.fuse.fact_edges_written
        conflicts.update(report.check.counts())
    summary.errors = sorted(problems, key=lambda p: p.line)
    summary.failed = len(summary.errors)
    summary.conflicts = dict(conflicts)
    return summary


# --- records (LLM pipeline) -------------------------------------------------------------------


def _extractor(request: Request) -> Any:
    """The app's extractor, built once (loading a model takes seconds); 503 when none can be had."""
    state = request.app.state
    if state.extractor is None:
        try:
            from engine.extract import make_extractor

            state.extractor = make_extractor(allow_sensitive=state.settings.allow_sensitive)
        except Exception as exc:  # noqa: BLE001 - any backend failure means "no extractor here"
            raise HTTPException(503, f"no LLM extractor available for records: {exc}") from None
    return state.extractor


def ingest_records(
    store: GraphStore, settings: Settings, extractor: Any, items: list[dict[str, Any]]
) -> RecordsSummary:
    from engine.contracts import Record
    from engine.ingest import RecordError, process_records, records_from_dict
    from engine.pipeline import apply_documents

    summary = RecordsSummary()
    records: list[Record] = []
    for i, item in enumerate(items, start=1):
        for out in records_from_dict(item, "records", i):
            if isinstance(out, RecordError):
                summary.record_errors.append(str(out))
            else:
                records.append(out)
    summary.records = len(records)
    with _EXTRACT_LOCK:
        docs = list(process_records(records, extractor, store_text=settings.store_text))
    summary.documents = dict(Counter(d.status for d in docs))
    summary.errors = [f"{d.doc_id}: {d.error}" for d in docs if d.status == "failed" and d.error]
    ok = [d for d in docs if d.status == "ok"]
    if ok:
        report = apply_documents(store, settings, ok)
        summary.facts_applied = report.facts_applied
        summary.errors += [f"{p.doc_id}: {p.field}: {p.message}" for p in report.problems]
    return summary


# --- body parsing -----------------------------------------------------------------------------


def _ndjson_lines(body: bytes) -> list[tuple[int, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"body is not UTF-8 (byte {exc.start})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _json_body(body: bytes) -> IngestBody:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from None
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
        lines, records = _ndjson_lines(body), []
    else:
        parsed = _json_body(body)
        lines = [(n, json.dumps(item, ensure_ascii=False)) for n, item in enumerate(parsed.facts, start=1)]
        records = parsed.records
    if not lines and not records:
        raise HTTPException(422, "nothing to ingest: send 'facts' and/or 'records'")
    result = IngestResult()
    if lines:
        result.facts = await run_in_threadpool(ingest_facts, store, settings, lines)
    if records:
        extractor = _extractor(request)
        result.records = await run_in_threadpool(ingest_records, store, settings, extractor, records)
    return result
