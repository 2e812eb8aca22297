"""The one module that chains the stages; the CLI, the HTTP API, the demo and workers call it.

    records  ingest (validate, dedupe, language) → privacy (redact) → extract → link → fuse → check
    facts    ingest (validate) → link → fuse → check
    events   ingest (validate) → link → fuse.behaviour

`ingest_records`, `ingest_facts` and `ingest_events` take what the `engine.ingest` readers yield,
`(line, item | LineError)`, batch it, and return one `IngestReport`: the same error list (line and
field), distinct counts and conflict totals whoever calls them. `apply_*` write one batch.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field

from engine.check import CheckReport, check_users
from engine.config import Settings
from engine.contracts import DocumentIn, DocumentSentiment, Fact, Record, ResolvedFact, TargetRef
from engine.fuse import RELATION, EntityNodes, FuseReport, PreparedEvents, fuse, prepare_events, write_context
from engine.gc_pause import cyclic_gc_paused
from engine.ingest import Deduper, Event, FactLine, LineError, Numbered, detect_language, normalise_lang
from engine.ingest.events import IDLE
from engine.link import ItemLinker, ResolutionError, context_for, link_fact, link_fact_line
from engine.store import GraphStore

if TYPE_CHECKING:
    from engine.extract import ExtractionCache, ExtractionResult, Extractor
    from engine.privacy import Redactor

T = TypeVar("T")
EXTRACT_BATCH = 32
DUPLICATE = "duplicate of an earlier record (same doc_id or same user and text)"
Progress = Callable[[int], None]
DocStatus = Literal["ok", "empty", "duplicate", "failed"]


# --- reports ----------------------------------------------------------------------------------


class FactProblem(BaseModel):
    """A fact that could not be applied, addressed by its position in the batch."""

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


class EventBatchReport(BaseModel):
    events_in: int = 0
    events_applied: int = 0
    edges_written: int = 0
    users: list[str] = Field(default_factory=list)
    problems: list[tuple[int, str, str]] = Field(default_factory=list)  # (index, field, message)


class IngestReport(BaseModel):
    """What one ingest run did. Counts of users and documents are distinct over the whole run."""

    kind: Literal["records", "facts", "events"]
    lines: int = 0  # lines / rows / body items read, good or bad
    accepted: int = 0  # valid records, facts or events
    applied: int = 0  # facts fused, or new events
    documents: int = 0
    users: int = 0
    edges_written: int = 0
    warnings: int = 0
    conflicts: dict[str, int] = Field(default_factory=dict)
    errors: list[LineError] = Field(default_factory=list)
    # records only: documents by status, facts dropped by reason, LLM usage
    docs: dict[str, int] = Field(default_factory=dict)
    facts_extracted: int = 0
    facts_dropped: dict[str, int] = Field(default_factory=dict)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for e in self.errors if e.fatal)


class _Tally:
    """Distinct users and documents, and conflict counts, across batches."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        self.users: set[str] = set()
        self.documents: set[str] = set()
        self.conflicts: Counter[str] = Counter()
        self.started = time.perf_counter()

    def close(self) -> IngestReport:
        r = self.report
        r.users, r.documents = len(self.users), len(self.documents)
        r.conflicts = dict(self.conflicts)
        r.errors.sort(key=lambda e: (e.line is None, e.line or 0))
        r.seconds = round(time.perf_counter() - self.started, 3)
        return r


def _compact_after_bulk(store: GraphStore | None, settings: Settings, report: IngestReport) -> None:
    """After a bulk ingest, rewrite the database's log in the background: a restart then loads a
    snapshot instead of replaying every write (and the server's own growth policy stays idle)."""
    threshold = settings.db.compact_after_items
    if store is not None and threshold and report.accepted >= threshold:
        store.compact(wait=False)


def _batches(
    items: Iterable[Numbered[T]], report: IngestReport, size: int, progress: Progress | None
) -> Iterator[list[tuple[int | None, T]]]:
    """Valid items in batches of `size`; errors and warnings go straight into the report.

    `progress` hears of the lines read once per batch (a progress bar's update per line costs
    more than validating a line)."""
    pending: list[tuple[int | None, T]] = []
    last_line: int | None = None
    unreported = 0

    def batch_out() -> list[tuple[int | None, T]]:
        nonlocal unreported
        if progress is not None and unreported:
            progress(unreported)
        unreported = 0
        return pending

    for line, item in items:
        if item is IDLE:  # a live stream went quiet: write what is pending now
            if pending or unreported:
                out = batch_out()
                if out:
                    yield out
                pending = []
            continue
        if line != last_line or line is None:
            report.lines += 1
            last_line = line
            unreported += 1
        if isinstance(item, LineError):
            report.errors.append(item)
            if not item.fatal:
                report.warnings += 1
            continue
        report.accepted += 1
        pending.append((line, item))
        if len(pending) >= size:
            yield batch_out()
            pending = []
    out = batch_out()
    if out:
        yield out


# --- facts ------------------------------------------------------------------------------------


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
    """Link and fuse one batch of fact lines, then run the rules on the touched users."""
    report = BatchReport(facts_in=len(lines))
    docs: dict[str, DocumentIn] = {}
    facts: list[ResolvedFact] = []
    for i, line in enumerate(lines):
        try:
            facts.append(link_fact_line(line, allow_sensitive=settings.allow_sensitive))
        except ResolutionError as exc:
            report.problems.append(FactProblem(index=i, doc_id=line.doc_id, field=exc.field, message=exc.message))
            continue
        doc = docs.get(line.doc_id)
        if doc is None or (line.text and not doc.text):
            docs[line.doc_id] = DocumentIn(
                doc_id=line.doc_id, user_id=line.user_id, ts=line.ts, source=line.source, lang=line.lang,
                text=line.text if settings.store_text else None,
            )
    report.fuse, report.check = write_batch(store, list(docs.values()), facts, run_checks=run_checks)
    rejected = {d for d, _ in report.fuse.rejected}
    report.facts_applied = sum(1 for f in facts if f.doc_id not in rejected)
    report.documents = report.fuse.documents
    return report


def ingest_facts(
    store: GraphStore,
    settings: Settings,
    items: Iterable[Numbered[FactLine]],
    *,
    batch: int = 5000,
    progress: Progress | None = None,
) -> IngestReport:
    """Fact lines (from `engine.ingest.read_fact_lines` or an API body) into the graph."""
    report = IngestReport(kind="facts")
    tally = _Tally(report)
    for chunk in _batches(items, report, batch, progress):
        result = apply_fact_lines(store, settings, [f for _, f in chunk])
        line_of_doc = {f.doc_id: n for n, f in chunk}
        report.errors += [
            LineError(line=chunk[p.index][0], field=p.field, message=p.message, doc_id=p.doc_id)
            for p in result.problems
        ]
        report.errors += [
            LineError(line=line_of_doc.get(doc), field="doc_id", message=why, doc_id=doc)
            for doc, why in result.fuse.rejected
        ]
        rejected = {doc for doc, _ in result.fuse.rejected}
        report.applied += result.facts_applied
        report.edges_written += result.fuse.fact_edges_written
        tally.users.update(result.fuse.users)
        tally.documents.update(f.doc_id for _, f in chunk if f.doc_id not in rejected)
        tally.conflicts.update(result.check.counts())
    _compact_after_bulk(store, settings, report)
    return tally.close()


# --- events -----------------------------------------------------------------------------------


def plan_events(
    store: GraphStore, events: Sequence[Event], *, batch: int = 5000, linker: ItemLinker | None = None,
    entities: EntityNodes | None = None, busy: frozenset[str] = frozenset(), settle: Callable[[], object] | None = None,
) -> tuple[EventBatchReport, PreparedEvents]:
    """Link the items of one batch of events and plan its writes (`prepare_events`: `busy` users
    are read only after `settle()`); the batch's report and what writes it."""
    linker = linker or ItemLinker()
    entities = EntityNodes() if entities is None else entities
    report = EventBatchReport(events_in=len(events))
    linked: list[tuple[Event, TargetRef]] = []
    positions: list[int] = []  # index in `events` of each linked event
    for i, ev in enumerate(events):
        try:
            target = linker.target(RELATION[ev.type], ev.item, qid=ev.item_qid, category=ev.category)
        except ValueError as exc:  # ResolutionError, InvalidMentionError
            report.problems.append((i, "item", str(exc)))
            continue
        linked.append((ev, target))
        positions.append(i)
    ctx = context_for({t.key: t for _, t in linked if t.key not in entities}.values())
    prepared = prepare_events(store, linked, ctx.context, ctx.parents, batch=batch, entities=entities, busy=busy,
                              settle=settle)
    planned = prepared.report
    report.events_applied, report.edges_written = planned.events_applied, planned.edges_written
    report.problems += [(positions[i], field, message) for i, field, message in planned.problems]
    report.problems.sort()
    report.users = planned.users
    return report, prepared


def apply_events(
    store: GraphStore, events: Sequence[Event], *, batch: int = 5000, linker: ItemLinker | None = None,
    entities: EntityNodes | None = None,
) -> EventBatchReport:
    """Link the items of one batch of events, then write the behaviour edges.

    `entities`: the items an ingest run has written already (with their context), kept across
    its batches so each item is written once per run."""
    report, prepared = plan_events(store, events, batch=batch, linker=linker, entities=entities)
    prepared.write(store)
    return report


def ingest_events(
    store: GraphStore,
    settings: Settings,
    items: Iterable[Numbered[Event] | tuple[None, Any]],
    *,
    batch: int = 5000,
    progress: Progress | None = None,
    after_batch: Callable[[EventBatchReport], None] | None = None,
) -> IngestReport:
    """Behaviour events (from `engine.ingest.read_events`, `read_event_stream` or an API body) into the graph.

    Pipelined in three stages on three threads, with the cyclic GC paused: this one reads and
    validates batch N+2 while a planner reads what the graph holds of batch N+1's users and plans
    it (links, idempotency, refunds, aggregates) while a writer writes batch N. The planner reads
    the users of batch N only once N is written, so every batch sees the ones before it.
    `after_batch` runs on the writer thread after each batch is in the graph (e.g. to refresh the
    segments of the batch's users).
    """
    report = IngestReport(kind="events")
    tally = _Tally(report)
    linker, entities = ItemLinker(), EntityNodes()
    sent: deque[tuple[list[tuple[int | None, Event]], Future[EventBatchReport]]] = deque()

    def write(result: EventBatchReport, prepared: PreparedEvents) -> EventBatchReport:
        prepared.write(store)
        if after_batch is not None:
            after_batch(result)
        return result

    def plan(events: list[Event], previous: _InFlight | None, before: Future[EventBatchReport] | None) -> _InFlight:
        if before is not None:
            before.result()  # the batch before the previous one is in the graph
        result, prepared = plan_events(
            store, events, batch=batch, linker=linker, entities=entities,
            busy=previous.users if previous else frozenset(), settle=previous.written.result if previous else None)
        return _InFlight(users=frozenset(result.users), written=writer.submit(write, result, prepared))

    def collect(chunk: list[tuple[int | None, Event]], result: EventBatchReport) -> None:
        report.errors.extend(LineError(line=chunk[i][0], field=f, message=m) for i, f, m in result.problems)
        report.applied += result.events_applied
        report.edges_written += result.edges_written
        tally.users.update(result.users)

    with cyclic_gc_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-planner") as planner, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-writer") as writer:
        planning: tuple[list[tuple[int | None, Event]], Future[_InFlight]] | None = None
        previous: _InFlight | None = None
        for chunk in _batches(items, report, batch, progress):
            before = previous.written if previous else None
            if planning is not None:
                previous = planning[1].result()
                sent.append((planning[0], previous.written))
            planning = (chunk, planner.submit(plan, [e for _, e in chunk], previous, before))
            while sent and sent[0][1].done():
                collect(*_result(sent.popleft()))
        if planning is not None:
            sent.append((planning[0], planning[1].result().written))
        while sent:
            collect(*_result(sent.popleft()))
    _compact_after_bulk(store, settings, report)
    return tally.close()


class _InFlight(NamedTuple):
    """A planned batch on its way to the graph: its users, and the write that finishes it."""

    users: frozenset[str]
    written: Future[EventBatchReport]


def _result(item: tuple[T, Future[EventBatchReport]]) -> tuple[T, EventBatchReport]:
    return item[0], item[1].result()


# --- records ----------------------------------------------------------------------------------


class ExtractedDocument(BaseModel):
    """One record after dedupe, language, redaction and extraction: the unit `apply_documents` takes.

    Only `status == "ok"` documents go to the graph; the others are reported.
    """

    doc_id: str
    user_id: str
    ts: datetime
    source: str
    lang: str
    line: int | None = None
    # The redacted text (None when Settings.store_text is off). Never the raw text.
    redacted_text: str | None
    facts: list[Fact] = Field(default_factory=list)
    sentiment: DocumentSentiment = Field(default_factory=lambda: DocumentSentiment(label="neutral", confidence=0.0))
    dropped: dict[str, int] = Field(default_factory=dict)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None
    status: DocStatus = "ok"
    # Placeholder → count of PII replaced before the model saw the text.
    redactions: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _numbered(records: Iterable[Record | tuple[int | None, Record]]) -> Iterator[tuple[int | None, Record]]:
    for item in records:
        yield item if isinstance(item, tuple) else (None, item)


class _Pending(BaseModel):
    """A record between redaction and extraction (redacted text only)."""

    base: dict[str, Any]
    text: str
    lang: str
    key: str
    counts: dict[str, int]
    notes: list[str]
    started: float


def extract_documents(
    records: Iterable[Record | tuple[int | None, Record]],
    extractor: Extractor,
    *,
    redactor: Redactor | None = None,
    cache: ExtractionCache | None = None,
    store_text: bool = True,
    batch: int = EXTRACT_BATCH,
    deduper: Deduper | None = None,
) -> Iterator[ExtractedDocument]:
    """Dedupe → language → redact → (cache | extract), lazily, one document per record, in order.

    Records are extracted `batch` at a time when the extractor takes batches (the encoder tier);
    no raw text leaves this function: the redactor runs before the cache and the extractor see it.
    `deduper` spans more than this call (a distributed job's batches share one); default: this run.
    """
    from engine.extract.cache import cache_key
    from engine.privacy import get_redactor

    redactor = redactor or get_redactor()
    dedupe = deduper if deduper is not None else Deduper()
    waiting: list[ExtractedDocument | _Pending] = []
    for line, rec in _numbered(records):
        lang = normalise_lang(rec.lang) or detect_language(rec.text)
        base = {"doc_id": dedupe.doc_id(rec), "user_id": rec.user_id, "ts": rec.ts, "source": rec.source,
                "lang": lang, "line": line}
        if dedupe.seen(rec):
            waiting.append(ExtractedDocument(**base, redacted_text=None, status="duplicate", notes=[DUPLICATE]))
        elif not rec.text.strip():
            waiting.append(ExtractedDocument(**base, redacted_text="" if store_text else None, status="empty",
                                             notes=["empty text: nothing to extract, no model call"]))
        else:
            started = time.perf_counter()
            redaction = redactor.redact(rec.text, lang)
            notes = ["language not en/zh/es: extraction quality is unmeasured"] if lang == "other" else []
            waiting.append(_Pending(base=base, text=redaction.text, lang=lang, counts=redaction.counts, notes=notes,
                                    key=cache_key(redaction.text, lang, extractor.version), started=started))
        if sum(isinstance(w, _Pending) for w in waiting) >= batch:
            yield from _extract_waiting(waiting, extractor, cache, store_text)
            waiting = []
    yield from _extract_waiting(waiting, extractor, cache, store_text)


def _extract_many(extractor: Extractor, texts: list[str], langs: list[str]) -> list[ExtractionResult | Exception]:
    """Results in order; a failing document fails alone (a failed batch is retried one by one)."""
    if hasattr(extractor, "extract_batch") and len(texts) > 1:
        try:
            return list(extractor.extract_batch(texts, langs))
        except Exception:  # noqa: BLE001, S110 - fall through to one at a time to find the bad one
            pass
    out: list[ExtractionResult | Exception] = []
    for text, lang in zip(texts, langs, strict=True):
        try:
            out.append(extractor.extract(text, lang))
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop the batch
            out.append(exc)
    return out


def _extract_waiting(
    waiting: list[ExtractedDocument | _Pending], extractor: Extractor, cache: ExtractionCache | None,
    store_text: bool,
) -> Iterator[ExtractedDocument]:
    from engine.extract.cache import text_hash

    pending = [w for w in waiting if isinstance(w, _Pending)]
    cached = {p.key: cache.get(p.key) for p in pending} if cache is not None else {}
    todo = list({p.key: p for p in pending if cached.get(p.key) is None}.values())  # one call per text
    fresh = dict(zip([p.key for p in todo], _extract_many(extractor, [p.text for p in todo],
                                                           [p.lang for p in todo]), strict=True))
    paid_for: set[str] = set()
    for item in waiting:
        if isinstance(item, ExtractedDocument):
            yield item
            continue
        kept_text = item.text if store_text else None
        hit = cached.get(item.key)
        if hit is None and item.key in paid_for:
            hit = fresh[item.key]  # the same text earlier in this batch: its result, not a second call
        result = hit if hit is not None else fresh[item.key]
        paid_for.add(item.key)
        seconds = round(time.perf_counter() - item.started, 4)
        if isinstance(result, Exception):
            yield ExtractedDocument(**item.base, redacted_text=kept_text, status="failed", seconds=seconds,
                                    error=f"{type(result).__name__}: {result}"[:500], redactions=item.counts)
            continue
        if cache is not None and hit is not None:
            cache.add_owner(item.key, item.base["user_id"])  # so forgetting this user finds the shared row
        elif cache is not None and result.error is None:
            cache.put(item.key, result, text_hash=text_hash(item.text, item.lang), owner=item.base["user_id"])
        paid = hit is None
        yield ExtractedDocument(
            **item.base, redacted_text=kept_text, facts=result.facts, sentiment=result.sentiment,
            dropped=result.dropped, llm_calls=result.llm_calls if paid else 0,
            prompt_tokens=result.prompt_tokens if paid else 0,
            completion_tokens=result.completion_tokens if paid else 0,
            seconds=seconds, cached=not paid, error=result.error, status="failed" if result.error else "ok",
            redactions=item.counts, notes=item.notes + result.notes,
        )


def apply_documents(
    store: GraphStore, settings: Settings, docs: Sequence[ExtractedDocument], *, run_checks: bool = True
) -> BatchReport:
    """Link and fuse extracted documents (text already redacted), then run the rules."""
    report = BatchReport(documents=len(docs))
    documents: list[DocumentIn] = []
    facts: list[ResolvedFact] = []
    for doc in docs:
        documents.append(DocumentIn(
            doc_id=doc.doc_id, user_id=doc.user_id, ts=doc.ts, source=doc.source, lang=doc.lang,
            text=doc.redacted_text if settings.store_text else None, sentiment=doc.sentiment,
        ))
        for fact in doc.facts:
            report.facts_in += 1
            try:
                facts.append(link_fact(fact, doc.doc_id, doc.user_id, doc.ts, lang=doc.lang,
                                       context=doc.redacted_text, allow_sensitive=settings.allow_sensitive))
            except ResolutionError as exc:
                report.problems.append(FactProblem(index=len(facts), doc_id=doc.doc_id, field=exc.field,
                                                   message=exc.message))
    report.fuse, report.check = write_batch(store, documents, facts, run_checks=run_checks)
    rejected = {d for d, _ in report.fuse.rejected}
    report.facts_applied = sum(1 for f in facts if f.doc_id not in rejected)
    return report


def _count_document(report: IngestReport, doc: ExtractedDocument) -> None:
    report.docs[doc.status] = report.docs.get(doc.status, 0) + 1
    report.facts_extracted += len(doc.facts)
    for reason, n in doc.dropped.items():
        report.facts_dropped[reason] = report.facts_dropped.get(reason, 0) + n
    report.llm_calls += doc.llm_calls
    report.prompt_tokens += doc.prompt_tokens
    report.completion_tokens += doc.completion_tokens
    report.cached += int(doc.cached)
    if doc.status == "failed":
        report.errors.append(LineError(line=doc.line, field="text", doc_id=doc.doc_id,
                                       message=f"extraction failed: {doc.error}"))


def ingest_records(
    store: GraphStore | None,
    settings: Settings,
    items: Iterable[Numbered[Record]],
    *,
    extractor: Extractor,
    redactor: Redactor | None = None,
    cache: ExtractionCache | None = None,
    batch: int = 32,
    progress: Progress | None = None,
    on_document: Callable[[ExtractedDocument], None] | None = None,
    deduper: Deduper | None = None,
) -> IngestReport:
    """Free-text records through every stage; with `store=None` a dry run (extract only).

    `deduper`: what counts as seen before (default: earlier records of this call)."""
    report = IngestReport(kind="records")
    tally = _Tally(report)
    # one deduper and one lazy chain over the whole run: batches only bound graph writes
    valid = (pair for chunk in _batches(items, report, batch, progress) for pair in chunk)
    docs = extract_documents(valid, extractor, redactor=redactor, cache=cache, store_text=settings.store_text,
                             deduper=deduper)
    pending: list[ExtractedDocument] = []

    def flush() -> None:
        if store is not None and pending:
            result = apply_documents(store, settings, pending)
            report.applied += result.facts_applied
            report.edges_written += result.fuse.fact_edges_written
            report.errors += [LineError(field=p.field, message=p.message, doc_id=p.doc_id) for p in result.problems]
            tally.conflicts.update(result.check.counts())
        pending.clear()

    for doc in docs:
        _count_document(report, doc)
        if on_document is not None:
            on_document(doc)
        if doc.status == "ok":
            tally.documents.add(doc.doc_id)
            tally.users.add(doc.user_id)
            pending.append(doc)
            if len(pending) >= batch:
                flush()
    flush()
    _compact_after_bulk(store, settings, report)
    return tally.close()
