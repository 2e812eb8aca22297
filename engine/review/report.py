"""Quality over time: per review batch (month) precision / recall / F1 of facts and macro-F1 of
sentiment, overall and per language, predicate and extractor tier, with intervals, and the drift
alert (`persona review report`, GET /review/quality, the explorer's Quality page)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from engine.config import ReviewSettings
from engine.review.items import list_batches
from engine.review.metrics import Alert, BatchMetrics, Judged, batch_metrics, drift_alert
from engine.store import GraphStore

_JUDGEMENTS = """
MATCH (j:Judgement)
WHERE j.batch_id IN $ids
RETURN j.batch_id AS batch_id, j.doc_id AS doc_id, coalesce(j.lang, 'unknown') AS lang, j.kind AS kind,
       j.verdict AS verdict, j.predicate AS predicate, j.tier AS tier, j.fix_predicate AS fix_predicate,
       j.engine_label AS engine_label, j.label AS label
"""

WIDE = 0.2  # an interval wider than this (in F1) gets a warning on the page and in the CLI


class BatchQuality(BaseModel):
    batch_id: str
    name: str
    period: str
    created_at: str
    size: int
    judged: int
    metrics: BatchMetrics | None = None  # None until a document is judged
    note: str | None = None


class QualityReport(BaseModel):
    confidence: float
    alert_points: float
    batches: list[BatchQuality] = Field(default_factory=list)
    alert: Alert | None = None
    note: str = ""


def _note(b: BatchQuality) -> str | None:
    if b.metrics is None:
        return "nothing judged yet"
    f1 = b.metrics.facts.f1
    parts = []
    if b.judged < b.size:
        parts.append(f"{b.judged} of {b.size} documents judged")
    if f1 is not None and f1.width is not None and f1.width > WIDE:
        parts.append(f"wide interval: F1 {f1.low:.2f}–{f1.high:.2f} from {b.judged} documents; "
                     "read differences between months with care")
    return "; ".join(parts) or None


def quality_report(store: GraphStore, settings: ReviewSettings | None = None) -> QualityReport:
    settings = settings or ReviewSettings()
    batches = list_batches(store)
    rows_by_batch: dict[str, list[Judged]] = {b.id: [] for b in batches}
    for r in store.ro_query(_JUDGEMENTS, {"ids": [b.id for b in batches]}).records():
        rows_by_batch[r.pop("batch_id")].append(Judged(**{k: v for k, v in r.items() if v is not None}))
    out = QualityReport(confidence=settings.confidence, alert_points=settings.alert_points,
                        note=f"{settings.confidence:.0%} intervals: Wilson for precision and recall, "
                             f"bootstrap over documents ({settings.bootstrap} resamples) for F1 and macro-F1")
    for b in batches:
        rows = rows_by_batch[b.id]
        docs = {r.doc_id: r.lang for r in rows}
        q = BatchQuality(batch_id=b.id, name=b.name, period=b.period, created_at=b.created_at, size=b.size,
                         judged=b.judged)
        if docs:
            q.metrics = batch_metrics(rows, docs, confidence=settings.confidence, resamples=settings.bootstrap)
        q.note = _note(q)
        out.batches.append(q)
    series = [(q.batch_id, q.metrics.facts.f1) for q in out.batches if q.metrics and q.metrics.facts.f1]
    out.alert = drift_alert(series, settings.alert_points)
    return out
