"""`persona eval extraction`: precision / recall / F1 of (predicate, object) on PersonaExt.

Data: ../shared/data/persona/personaext.jsonl (eval only, never shipped). One sentence → one
gold (subject, relation, object). Relations are mapped to graph_schema predicates by the ONE
table below; relations with no counterpart in the schema (names, physical attributes, abilities,
past jobs, negations ...) are left out of the sample, because the extractor is told not to
produce them. The sample is stratified by relation and seeded; ``--split dev`` and
``--split test`` are disjoint, so thresholds are chosen on dev and reported on test.

Scoring (documented, lenient as in notes/llm-baseline.md):
- a predicted fact matches the gold when its predicate is one the relation maps to and the
  objects match: equal after normalisation (lower case, leading articles/possessives and
  numbers dropped, plural -s stripped), or one's content words contain the other's;
  literal predicates compare canonical values (both sides through the extractor's literal
  normaliser);
- precision = matched predictions / all predictions; PersonaExt labels one fact per sentence,
  so a true but unlabelled second fact counts against precision: it is a lower bound;
- recall = gold facts matched / gold facts.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from graph_schema import LiteralError, get_predicate

DEFAULT_DATA = Path("../shared/data/persona/personaext.jsonl")

# PersonaExt relation → graph_schema predicates that count as correct. None = not in the schema.
RELATION_MAP: dict[str, tuple[str, ...] | None] = {
    # likes / favourites
    "like_activity": ("LIKES",), "like_food": ("LIKES",), "like_general": ("LIKES",),
    "like_animal": ("LIKES",), "like_watching": ("LIKES",), "like_read": ("LIKES",),
    "like_drink": ("LIKES",), "like_color": ("LIKES",), "like_character": ("LIKES",),
    "like_subject": ("LIKES",), "like_sport": ("LIKES",), "like_music": ("LIKES",),
    "favorite_music_artist": ("LIKES",), "favorite_color": ("LIKES",), "favorite_drink": ("LIKES",),
    "favorite_movie": ("LIKES",), "favorite_place": ("LIKES",), "favorite_show": ("LIKES",),
    "favorite_book": ("LIKES",), "favorite_animal": ("LIKES",), "favorite_hobby": ("LIKES",),
    "favorite_sport": ("LIKES",), "favorite_season": ("LIKES",), "favorite_food": ("LIKES",),
    # dislikes / avoidance
    "dislike": ("DISLIKES",), "dislike_food": ("DISLIKES",), "dislike_activity": ("DISLIKES",),
    "dislike_animal": ("DISLIKES",), "dislike_sport": ("DISLIKES",), "dislike_color": ("DISLIKES",),
    "dislike_job": ("DISLIKES",), "dislike_drink": ("DISLIKES",), "dislike_subject": ("DISLIKES",),
    "dislike_music": ("DISLIKES",), "do_not_eat": ("DISLIKES", "DIET"), "do_not_drink": ("DISLIKES",),
    "allergy_to": ("DISLIKES",),
    # possessions, pets, places, work, school, family, literals
    "have_pet": ("HAS_PET",), "own": ("OWNS",), "have_vehicle": ("OWNS",),
    "live_in_citystatecountry": ("LIVES_IN",), "live_in_general": ("LIVES_IN",),
    "employed_by_general": ("WORKS_AT", "WORKS_AS"), "employed_by_company": ("WORKS_AT",),
    "want_job": ("WANTS",), "attend_school": ("STUDIES_AT",),
    "have_chidren": ("HAS_FAMILY",), "have_children": ("HAS_FAMILY",),
    "have_family": ("HAS_FAMILY",), "have_sibling": ("HAS_FAMILY",),
    "marital_status": ("MARITAL_STATUS",), "diet": ("DIET",), "gender": ("GENDER",),
    # not in the schema (or sensitive, refused by default)
    "physical_attribute": None, "has_ability": None, "other": None, "name": None,
    "school_status": None, "job_status": None, "health_status": None, "has_degree": None,
    "weakness": None, "relationship": None, "member_of": None, "belief": None,
    "international_exp": None, "used_to": None, "have_no": None, "have_no_family": None,
    "fall_out": None, "get_along": None, "have_no_sibling": None, "have_no_children": None,
    "race": None, "pre_employed_by_company": None, "doing": None, "want_no": None,
    "do_not_do": None, "work_schedule": None, "scared_of": None, "worry_about": None,
    "never_do": None,
}

_ARTICLES = re.compile(
    r"^(?:a|an|the|my|our|some|his|her|their|two|three|four|five|six|one|\d+)\s+", re.I
)
_STOP = frozenset("a an the my our of to in on at for with and or i me is am are be".split())


class Row(BaseModel):
    sentence: str
    relation: str
    object: str


class Prediction(BaseModel):
    predicate: str
    object: str
    confidence: float
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


def load_rows(path: Path) -> list[Row]:
    with path.open(encoding="utf-8") as handle:
        return [Row.model_validate(json.loads(line)) for line in handle if line.strip()]


def stratified_sample(rows: list[Row], size: int, seed: int, split: str) -> list[Row]:
    """Equal quota per mapped relation (fewer when a relation is small), disjoint dev/test."""
    by_rel: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if RELATION_MAP.get(row.relation):
            by_rel[row.relation].append(row)
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    for rel in sorted(by_rel):
        rng.shuffle(by_rel[rel])
    quota = math.ceil(size / len(by_rel))
    # Relations smaller than 2×quota give dev and test half each.
    sample: list[Row] = []
    for rel in sorted(by_rel):
        items = by_rel[rel]
        take = min(quota, len(items) // 2)
        start = 0 if split == "test" else take
        sample.extend(items[start : start + take])
    # Top up from the largest relations so the sample reaches `size` despite small relations.
    if len(sample) < size:
        used = {id(r) for r in sample}
        pool = [r for rel in sorted(by_rel) for r in by_rel[rel][2 * quota :] if id(r) not in used]
        rng.shuffle(pool)
        half = len(pool) // 2
        pool = pool[:half] if split == "test" else pool[half:]
        sample.extend(pool[: size - len(sample)])
    rng.shuffle(sample)
    return sample


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


def run_rows(rows: list[Row], extractor: Any, redactor: Any, progress: Any = None) -> list[RowResult]:
    results: list[RowResult] = []
    for row in rows:
        gold_preds = RELATION_MAP[row.relation] or ()
        started = time.perf_counter()
        redacted = redactor.redact(row.sentence, "en").text
        res = extractor.extract(redacted, "en")
        out = RowResult(
            sentence=row.sentence, relation=row.relation, gold_predicates=list(gold_preds),
            gold_object=row.object, dropped=res.dropped, valid_first_try=res.valid_first_try,
            error=res.error, llm_calls=res.llm_calls, prompt_tokens=res.prompt_tokens,
            completion_tokens=res.completion_tokens, seconds=time.perf_counter() - started,
        )
        for fact in res.facts:
            out.predictions.append(
                Prediction(
                    predicate=fact.predicate, object=fact.object, confidence=fact.confidence,
                    match=fact_matches(fact.predicate, fact.object, gold_preds, row.object),
                )
            )
        results.append(out)
        if progress is not None:
            progress()
    return results


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
    }
