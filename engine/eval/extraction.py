"""`persona eval extraction`: precision / recall / F1 of (predicate, object) on PersonaExt's test split.

Data: ../shared/data/persona/personaext.jsonl (eval only, never shipped). The split is the one rule
in `engine/corpora/splits.py` (a hash of the sentence), the same the encoder was trained with, so
its training never saw a test sentence; thresholds were chosen on dev. Relations with no
counterpart in the schema are left out of the scored rows (`engine.corpora.RELATION_MAP`).

Scoring (documented, lenient as in notes/llm-baseline.md):
- a predicted fact matches the gold when its predicate is one the relation maps to and the
  objects match: equal after normalisation (lower case, leading articles/possessives and
  numbers dropped, plural -s stripped), or one's content words contain the other's;
  literal predicates compare canonical values (both sides through the extractor's literal
  normaliser);
- precision = matched predictions / all predictions; PersonaExt labels one fact per sentence,
  so a true but unlabelled second fact counts against precision: it is a lower bound;
- recall = gold facts matched / gold facts.
The zh measure reads KvPI: entailed responses that state a location or gender (`engine.corpora.kvpi`).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine.corpora import RELATION_MAP, PersonaRow, read_kvpi_facts, read_personaext
from engine.train.calibrate import ece
from graph_schema import LiteralError, get_predicate

TIER_BATCH = 64


_ARTICLES = re.compile(
    r"^(?:a|an|the|my|our|some|his|her|their|two|three|four|five|six|one|\d+)\s+", re.I
)
_STOP = frozenset("a an the my our of to in on at for with and or i me is am are be".split())


class Prediction(BaseModel):
    predicate: str
    object: str
    confidence: float
    tier: str | None = None
    match: bool = False


class RowResult(BaseModel):
    sentence: str
    relation: str
    gold_predicates: list[str]
    gold_object: str
    predictions: list[Prediction] = Field(default_factory=list)
    dropped: dict[str, int] = Field(default_factory=dict)
    valid_first_try: bool = True
    error: str | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def test_rows(data_dir: Path, size: int | None = None, seed: int = 13) -> list[PersonaRow]:
    """The scored rows of the test split; `size` draws a stratified, seeded sample (the LLM is slow)."""
    rows = [r for r in read_personaext(data_dir) if r.split == "test" and RELATION_MAP.get(r.relation)]
    if size is None or size >= len(rows):
        return rows
    by_rel: dict[str, list[PersonaRow]] = defaultdict(list)
    for row in rows:
        by_rel[row.relation].append(row)
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    quota = math.ceil(size / len(by_rel))
    sample: list[PersonaRow] = []
    for rel in sorted(by_rel):
        items = by_rel[rel][:]
        rng.shuffle(items)
        sample.extend(items[:quota])
    rng.shuffle(sample)
    return sample[:size]


def _norm(obj: str) -> str:
    text = obj.lower().strip().strip(".,!?'\"")
    for _ in range(2):
        text = _ARTICLES.sub("", text)
    words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in text.split()]
    return " ".join(words)


def _content(obj: str) -> set[str]:
    return {w for w in _norm(obj).split() if w not in _STOP}


def objects_match(pred: str, gold: str) -> bool:
    a, b = _norm(pred), _norm(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    ca, cb = _content(pred), _content(gold)
    return bool(ca and cb) and (ca <= cb or cb <= ca)


def literal_value(predicate: str, obj: str) -> str | None:
    from engine.extract.postprocess import normalise_literal_object

    pred = get_predicate(predicate)
    if pred.literal_kind is None:
        return None
    try:
        return normalise_literal_object(pred.literal_kind, obj)
    except LiteralError:
        return None


def fact_matches(predicate: str, obj: str, gold_predicates: tuple[str, ...], gold_object: str) -> bool:
    if predicate not in gold_predicates:
        return False
    gold_literal = literal_value(predicate, gold_object)
    if gold_literal is not None:
        return literal_value(predicate, obj) == gold_literal or objects_match(obj, gold_object)
    return objects_match(obj, gold_object)


def extract_all(texts: list[str], langs: list[str], extractor: Any, progress: Any = None) -> list[Any]:
    """One result per text: batched through tiers that take batches, else one call each."""
    if hasattr(extractor, "extract_batch"):
        out = []
        for k in range(0, len(texts), TIER_BATCH):
            out += extractor.extract_batch(texts[k : k + TIER_BATCH], langs[k : k + TIER_BATCH])
            if progress is not None:
                progress(len(texts[k : k + TIER_BATCH]))
        return out
    out = []
    for text, lang in zip(texts, langs, strict=True):
        out.append(extractor.extract(text, lang))
        if progress is not None:
            progress(1)
    return out


def run_rows(rows: list[PersonaRow], extractor: Any, redactor: Any, progress: Any = None) -> list[RowResult]:
    started = time.perf_counter()
    texts = [redactor.redact(row.sentence, "en").text for row in rows]
    results = extract_all(texts, ["en"] * len(texts), extractor, progress)
    per_row = (time.perf_counter() - started) / max(len(rows), 1)
    out: list[RowResult] = []
    for row, res in zip(rows, results, strict=True):
        gold_preds = RELATION_MAP[row.relation] or ()
        result = RowResult(
            sentence=row.sentence, relation=row.relation, gold_predicates=list(gold_preds),
            gold_object=row.object, dropped=res.dropped, valid_first_try=res.valid_first_try,
            error=res.error, llm_calls=res.llm_calls, prompt_tokens=res.prompt_tokens,
            completion_tokens=res.completion_tokens, seconds=per_row,
        )
        for fact in res.facts:
            result.predictions.append(Prediction(
                predicate=fact.predicate, object=fact.object, confidence=fact.confidence, tier=fact.tier,
                match=fact_matches(fact.predicate, fact.object, gold_preds, row.object),
            ))
        out.append(result)
    return out


class ExtractionScores(BaseModel):
    rows: int
    min_confidence: float
    predictions: int
    precision: float
    recall: float
    f1: float


def score(results: list[RowResult], min_confidence: float = 0.0) -> ExtractionScores:
    predictions = [p for r in results for p in r.predictions if p.confidence >= min_confidence]
    tp_pred = sum(p.match for p in predictions)
    tp_gold = sum(
        any(p.match and p.confidence >= min_confidence for p in r.predictions) for r in results
    )
    precision = tp_pred / len(predictions) if predictions else 0.0
    recall = tp_gold / len(results) if results else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ExtractionScores(
        rows=len(results), min_confidence=min_confidence, predictions=len(predictions),
        precision=round(precision, 4), recall=round(recall, 4), f1=round(f1, 4),
    )


def report(results: list[RowResult]) -> dict[str, Any]:
    n = max(len(results), 1)
    kept = sum(len(r.predictions) for r in results)
    dropped: Counter[str] = Counter()
    for r in results:
        dropped.update(r.dropped)
    proposed = kept + sum(dropped.values())
    per_pred: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        for p in r.predictions:
            per_pred[p.predicate]["predicted"] += 1
            per_pred[p.predicate]["correct"] += int(p.match)
        for g in r.gold_predicates[:1]:
            per_pred[g]["gold"] += 1
            per_pred[g]["found"] += int(any(p.match for p in r.predictions))
    for c in per_pred.values():
        c["precision"] = round(c["correct"] / c["predicted"], 3) if c["predicted"] else 0.0
        c["recall"] = round(c["found"] / c["gold"], 3) if c["gold"] else 0.0
    confidences = [p.confidence for r in results for p in r.predictions]
    matched = [p.match for r in results for p in r.predictions]
    return {
        "scores": score(results).model_dump(),
        "confidence_sweep": [score(results, t).model_dump() for t in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)],
        "valid_json_first_try": round(sum(r.valid_first_try for r in results) / n, 4),
        "valid_json_after_repair": round(sum(r.error is None for r in results) / n, 4),
        "facts_proposed": proposed,
        "facts_kept": kept,
        "facts_dropped_share": round(sum(dropped.values()) / proposed, 4) if proposed else 0.0,
        "dropped_by_reason": dict(dropped.most_common()),
        "llm_calls_per_doc": round(sum(r.llm_calls for r in results) / n, 3),
        "prompt_tokens_per_doc": round(sum(r.prompt_tokens for r in results) / n, 1),
        "completion_tokens_per_doc": round(sum(r.completion_tokens for r in results) / n, 1),
        "seconds_per_doc": round(sum(r.seconds for r in results) / n, 3),
        "per_predicate": {k: dict(v) for k, v in sorted(per_pred.items())},
        "ece": round(ece(confidences, matched), 4),
        "errors": confusion(results),
        "tiers": dict(Counter(p.tier or "?" for r in results for p in r.predictions)),
    }


def confusion(results: list[RowResult], top: int = 12) -> list[dict[str, Any]]:
    """The most frequent errors: a wrong predicate on the right object, a wrong object, a miss."""
    errors: Counter[tuple[str, str, str]] = Counter()
    for r in results:
        gold = r.gold_predicates[0] if r.gold_predicates else "-"
        for p in r.predictions:
            if p.match:
                continue
            if objects_match(p.object, r.gold_object):
                errors[("wrong predicate", p.predicate, gold)] += 1
            else:
                errors[("wrong object", p.predicate, gold)] += 1
        if not any(p.match for p in r.predictions):
            errors[("missed", "-", gold)] += 1
    return [{"kind": k, "predicted": p, "gold": g, "count": n} for (k, p, g), n in errors.most_common(top)]


def kvpi_scores(data_dir: Path, extractor: Any, redactor: Any, progress: Any = None) -> dict[str, Any]:
    """zh LIVES_IN / GENDER from KvPI's entailed responses: P / R / F1 per predicate."""
    gold = list(read_kvpi_facts(data_dir))
    texts = [redactor.redact(g.text, "zh").text for g in gold]
    results = extract_all(texts, ["zh"] * len(texts), extractor, progress)
    out: dict[str, Any] = {}
    for predicate in ("LIVES_IN", "GENDER"):
        pairs = [(g, r) for g, r in zip(gold, results, strict=True) if g.predicate == predicate]
        predicted = hits = found = 0
        for g, r in pairs:
            preds = [f for f in r.facts if f.predicate == predicate]
            ok = [f for f in preds if any(o in f.object or f.object in o for o in g.objects if f.object)]
            predicted, hits, found = predicted + len(preds), hits + len(ok), found + bool(ok)
        p = hits / predicted if predicted else 0.0
        rc = found / len(pairs) if pairs else 0.0
        out[predicate] = {"gold": len(pairs), "predicted": predicted, "precision": round(p, 4),
                          "recall": round(rc, 4), "f1": round(2 * p * rc / (p + rc), 4) if p + rc else 0.0}
    return out
