"""Quality of what the engine extracted, from reviewers' judgements: plain functions.

Facts: a fact judged correct is a true positive; wrong or fixed is a false positive; a fixed fact's
correction and a missing fact are false negatives. Precision = TP/(TP+FP), recall = TP/(TP+FN),
F1 = 2TP/(2TP+FP+FN). Sentiment: macro-F1 over the labels that occur (gold or predicted).

Intervals: Wilson score intervals for precision and recall (facts treated as independent), and a
seeded percentile bootstrap over documents (the sampling unit) for F1 and sentiment macro-F1. With
~100 documents they are wide; the report says how wide.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from statistics import NormalDist

from pydantic import BaseModel, Field

SENTIMENT = ("negative", "neutral", "positive")


class Interval(BaseModel):
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0  # the denominator (facts) or documents behind the value

    @property
    def width(self) -> float | None:
        return None if self.low is None or self.high is None else self.high - self.low


class DocCounts(BaseModel):
    """One judged document's contribution to a slice."""

    tp: int = 0
    fp: int = 0
    fn: int = 0


class SliceQuality(BaseModel):
    key: str
    docs: int
    tp: int
    fp: int
    fn: int | None  # None: not attributable (extractor tiers: a missed fact has no tier)
    precision: Interval
    recall: Interval | None
    f1: Interval | None


class SentimentQuality(BaseModel):
    key: str
    docs: int
    accuracy: float | None
    macro_f1: Interval


def z_of(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (value None when n is 0)."""
    if n <= 0:
        return Interval(value=None, n=0)
    z = z_of(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not 1e-17 from rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(value=p, low=low, high=high, n=n)


def f1_of(tp: int, fp: int, fn: int) -> float | None:
    denom = 2 * tp + fp + fn
    return None if denom == 0 else 2 * tp / denom


def bootstrap(units: Sequence[object], statistic: Callable[[Sequence[object]], float | None],
              *, confidence: float = 0.95, resamples: int = 1000, seed: int = 13) -> tuple[float, float] | None:
    """Percentile interval of `statistic` over resamples of `units` (with replacement)."""
    if not units:
        return None
    rng = random.Random(seed)  # noqa: S311 - reproducible resampling, not crypto
    k = len(units)
    values = []
    for _ in range(resamples):
        v = statistic([units[rng.randrange(k)] for _ in range(k)])
        if v is not None:
            values.append(v)
    if not values:
        return None
    values.sort()
    alpha = (1 - confidence) / 2
    lo = values[min(len(values) - 1, max(0, math.floor(alpha * len(values))))]
    hi = values[min(len(values) - 1, max(0, math.ceil((1 - alpha) * len(values)) - 1))]
    return lo, hi


def _sum_f1(docs: Sequence[object]) -> float | None:
    return f1_of(sum(d.tp for d in docs), sum(d.fp for d in docs), sum(d.fn for d in docs))  # type: ignore[attr-defined]


def slice_quality(key: str, docs: list[DocCounts], *, recall: bool = True, confidence: float = 0.95,
                  resamples: int = 1000, seed: int = 13) -> SliceQuality:
    tp, fp, fn = sum(d.tp for d in docs), sum(d.fp for d in docs), sum(d.fn for d in docs)
    precision = wilson(tp, tp + fp, confidence)
    if not recall:
        return SliceQuality(key=key, docs=len(docs), tp=tp, fp=fp, fn=None, precision=precision, recall=None,
                            f1=None)
    f1 = f1_of(tp, fp, fn)
    ci = bootstrap(docs, _sum_f1, confidence=confidence, resamples=resamples, seed=seed) if f1 is not None else None
    return SliceQuality(
        key=key, docs=len(docs), tp=tp, fp=fp, fn=fn, precision=precision, recall=wilson(tp, tp + fn, confidence),
        f1=Interval(value=f1, low=ci[0] if ci else None, high=ci[1] if ci else None, n=len(docs)),
    )


def macro_f1(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Macro-F1 of (gold, predicted) pairs over the labels that occur in either."""
    pairs = list(pairs)
    if not pairs:
        return None
    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    scores = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        scores.append(f1_of(tp, fp, fn) or 0.0)
    return sum(scores) / len(scores)


def sentiment_quality(key: str, pairs: list[tuple[str, str]], *, confidence: float = 0.95,
                      resamples: int = 1000, seed: int = 13) -> SentimentQuality:
    value = macro_f1(pairs)
    ci = bootstrap(pairs, macro_f1, confidence=confidence, resamples=resamples, seed=seed) if pairs else None  # type: ignore[arg-type]
    return SentimentQuality(
        key=key, docs=len(pairs),
        accuracy=sum(1 for g, p in pairs if g == p) / len(pairs) if pairs else None,
        macro_f1=Interval(value=value, low=ci[0] if ci else None, high=ci[1] if ci else None, n=len(pairs)),
    )


class Judged(BaseModel):
    """One judgement row as metrics need it (engine.review.report reads them from the graph)."""

    doc_id: str
    lang: str = "unknown"
    kind: str  # fact | missing | sentiment
    verdict: str
    predicate: str | None = None
    tier: str | None = None
    fix_predicate: str | None = None
    engine_label: str | None = None
    label: str | None = None


class BatchMetrics(BaseModel):
    facts: SliceQuality
    by_lang: list[SliceQuality] = Field(default_factory=list)
    by_predicate: list[SliceQuality] = Field(default_factory=list)
    by_tier: list[SliceQuality] = Field(default_factory=list)
    sentiment: SentimentQuality
    sentiment_by_lang: list[SentimentQuality] = Field(default_factory=list)


def _counts(rows: Iterable[Judged], slicer: Callable[[Judged, str], str | None]) -> dict[str, dict[str, DocCounts]]:
    """slice → document → counts. `slicer(row, role)` names the slice a row counts in for a role
    (tp, fp, fn), or None when it does not count there."""
    out: dict[str, dict[str, DocCounts]] = {}
    for r in rows:
        roles: list[tuple[str, str | None]] = []
        if r.kind == "fact":
            roles.append(("tp" if r.verdict == "correct" else "fp", r.predicate))
            if r.verdict == "fix":
                roles.append(("fn", r.fix_predicate))
        elif r.kind == "missing":
            roles.append(("fn", r.predicate))
        for role, predicate in roles:
            key = slicer(r.model_copy(update={"predicate": predicate}), role)
            if key is None:
                continue
            doc = out.setdefault(key, {}).setdefault(r.doc_id, DocCounts())
            setattr(doc, role, getattr(doc, role) + 1)
    return out


def batch_metrics(rows: list[Judged], judged_docs: dict[str, str], *, confidence: float = 0.95,
                  resamples: int = 1000, seed: int = 13) -> BatchMetrics:
    """Metrics of one batch. `judged_docs` (doc → language) lists every judged document, so a
    document with no facts and nothing missing still counts (as zeros) in the bootstrap."""
    kw = {"confidence": confidence, "resamples": resamples, "seed": seed}

    def with_zeros(docs: dict[str, DocCounts], langs: set[str] | None = None) -> list[DocCounts]:
        return [docs.get(d, DocCounts()) for d, lang in sorted(judged_docs.items()) if langs is None or lang in langs]

    overall = _counts(rows, lambda r, role: "all").get("all", {})
    by_lang = _counts(rows, lambda r, role: r.lang)
    by_pred = _counts(rows, lambda r, role: r.predicate)
    by_tier = _counts(rows, lambda r, role: None if role == "fn" else (r.tier or "unknown"))
    langs = sorted(set(judged_docs.values()))
    pairs = [(r.label, r.engine_label, r.lang) for r in rows
             if r.kind == "sentiment" and r.label and r.engine_label]
    return BatchMetrics(
        facts=slice_quality("all", with_zeros(overall), **kw),
        by_lang=[slice_quality(lang, with_zeros(by_lang.get(lang, {}), {lang}), **kw) for lang in langs],
        by_predicate=[slice_quality(p, list(by_pred[p].values()), **kw) for p in sorted(by_pred)],
        by_tier=[slice_quality(t, list(by_tier[t].values()), recall=False, **kw) for t in sorted(by_tier)],
        sentiment=sentiment_quality("all", [(g, p) for g, p, _ in pairs], **kw),
        sentiment_by_lang=[sentiment_quality(lang, [(g, p) for g, p, la in pairs if la == lang], **kw)
                           for lang in langs],
    )


class Alert(BaseModel):
    batch_id: str
    previous_batch_id: str
    f1: float
    previous_f1: float
    previous_low: float
    points: float  # the configured allowance, in F1 points (0-100)
    drop_points: float  # how far below the previous interval's lower bound, in points
    message: str


def drift_alert(series: list[tuple[str, Interval]], points: float) -> Alert | None:
    """Alert when the last batch's F1 is more than `points` (0-100) below the lower bound of the
    previous batch's interval. `series` is (batch id, F1) in time order; batches without an F1
    are skipped."""
    usable = [(b, i) for b, i in series if i.value is not None]
    if len(usable) < 2:
        return None
    (prev_id, prev), (last_id, last) = usable[-2], usable[-1]
    low = prev.low if prev.low is not None else prev.value
    assert low is not None and last.value is not None and prev.value is not None
    drop = (low - last.value) * 100
    if drop <= points:
        return None
    return Alert(
        batch_id=last_id, previous_batch_id=prev_id, f1=last.value, previous_f1=prev.value, previous_low=low,
        points=points, drop_points=round(drop, 2),
        message=f"fact F1 of {last_id} is {last.value:.3f}, {drop:.1f} points below the lower bound "
                f"{low:.3f} of {prev_id}'s interval (allowed: {points:g} points)",
    )
