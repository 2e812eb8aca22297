"""Glue between stages: resolve (link) → fuse → check, for fact lines and extracted documents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from engine.check import CheckReport, check_users
from engine.config import Settings
from engine.contracts import DocumentSentiment, Fact
from engine.facts_input import FactLine
from engine.fuse import DocumentIn, FuseReport, ResolvedFact, fuse, write_context
from engine.resolve import ResolutionError, context_for, resolve_target
from engine.store import GraphStore
from graph_schema import get_predicate


class FactProblem(BaseModel):
    """A fact that could not be applied, addressed by its position in the input."""

    index: int
    doc_id: str
    field: str
    message: str


class BatchReport(BaseModel):
    documents: int = 0
    facts_in: int = 0
    facts_applied: int = 0
    problems: list[FactProblem] = Field(default_factory=list)
    fuse: FuseReport = Field(default_factory=FuseReport)
    check: CheckReport = Field(default_factory=CheckReport)


class SensitivePredicateError(ValueError):
    pass


def ensure_allowed(predicate: str, settings: Settings) -> None:
    pred = get_predicate(predicate)
    if pred.sensitive and not settings.allow_sensitive:
        raise SensitivePredicateError(
            f"{pred.name} is a special category and is refused "
            "(set PERSONA_ALLOW_SENSITIVE=1 to allow it)"
        )


def _resolve_line(line: FactLine, settings: Settings) -> ResolvedFact:
    ensure_allowed(line.predicate, settings)
    pred = get_predicate(line.predicate)
    target = resolve_target(
        pred,
        line.surface,
        qid=line.object_qid,
        types=line.object_types,
        lang=line.lang,
        context=line.text,
    )
    return ResolvedFact(
        doc_id=line.doc_id,
        user_id=line.user_id,
        ts=line.ts,
        predicate=pred.name,
        target=target,
        confidence=line.confidence,
        sentiment=line.sentiment,
    )


def write_batch(
    store: GraphStore,
    documents: list[DocumentIn],
    facts: list[ResolvedFact],
    *,
    run_checks: bool = True,
    batch: int = 5000,
) -> tuple[FuseReport, CheckReport]:
    """Documents and fact edges, then Wikidata context (so range rules see it), then the rules."""
    ctx = context_for(f.target for f in facts)
    fuse_report = fuse(store, documents, facts, batch=batch)
    write_context(store, ctx.context, ctx.parents, batch)
    check = check_users(store, fuse_report.users) if run_checks else CheckReport()
    return fuse_report, check


def apply_fact_lines(
    store: GraphStore, settings: Settings, lines: Sequence[FactLine], *, run_checks: bool = True
) -> BatchReport:
    report = BatchReport(facts_in=len(lines))
    docs: dict[str, DocumentIn] = {}
    facts: list[ResolvedFact] = []
    for i, line in enumerate(lines):
        try:
            facts.append(_resolve_line(line, settings))
        except (ResolutionError, SensitivePredicateError, ValueError) as exc:
            field = str(exc).split(":", 1)[0] if isinstance(exc, ResolutionError) else "predicate"
            report.problems.append(
                FactProblem(index=i, doc_id=line.doc_id, field=field, message=str(exc))
            )
            continue
        doc = docs.get(line.doc_id)
        if doc is None or (line.text and not doc.text):
            docs[line.doc_id] = DocumentIn(
                doc_id=line.doc_id,
                user_id=line.user_id,
                ts=line.ts,
                source=line.source,
                lang=line.lang,
                text=line.text if settings.store_text else None,
            )
    report.fuse, report.check = write_batch(
        store, list(docs.values()), facts, run_checks=run_checks
    )
    rejected = {d for d, _ in report.fuse.rejected}
    report.facts_applied = sum(1 for f in facts if f.doc_id not in rejected)
    report.documents = report.fuse.documents
    return report


class ExtractedLike(Protocol):
    """What the extractor hands over per document (engine.ingest.ExtractedDocument)."""

    doc_id: str
    user_id: str
    ts: datetime
    source: str
    lang: str | None
    redacted_text: str
    facts: list[Fact]
    sentiment: DocumentSentiment | None


def apply_documents(
    store: GraphStore, settings: Settings, docs: Sequence[ExtractedLike], *, run_checks: bool = True
) -> BatchReport:
    """Link and fuse extracted documents (text already redacted)."""
    report = BatchReport(documents=len(docs))
    documents: list[DocumentIn] = []
    facts: list[ResolvedFact] = []
    for doc in docs:
        documents.append(
            DocumentIn(
                doc_id=doc.doc_id,
                user_id=doc.user_id,
                ts=doc.ts,
                source=doc.source,
                lang=doc.lang,
                text=doc.redacted_text if settings.store_text else None,
                sentiment=doc.sentiment,
            )
        )
        for fact in doc.facts:
            report.facts_in += 1
            try:
                ensure_allowed(fact.predicate, settings)
                pred = get_predicate(fact.predicate)
                target = resolve_target(pred, fact.object, lang=doc.lang, context=doc.redacted_text)
            except ValueError as exc:
                report.problems.append(
                    FactProblem(index=len(facts), doc_id=doc.doc_id, field="object", message=str(exc))
                )
                continue
            facts.append(
                ResolvedFact(
                    doc_id=doc.doc_id,
                    user_id=doc.user_id,
                    ts=doc.ts,
                    predicate=pred.name,
                    target=target,
                    confidence=fact.confidence,
                    sentiment=fact.sentiment,
                )
            )
    report.fuse, report.check = write_batch(store, documents, facts, run_checks=run_checks)
    rejected = {d for d, _ in report.fuse.rejected}
    report.facts_applied = sum(1 for f in facts if f.doc_id not in rejected)
    return report
