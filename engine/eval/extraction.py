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
Further test sets, each scored the same way (`test_sets`): XPersona's Chinese translations with the
English labels projected onto them (`engine/train/project.py`; Chinese objects match when one contains
the other), KvPI's entailed responses that state a location or gender (`engine.corpora.kvpi`),
where precision counts only predictions of the predicate scored (its rows label nothing else), the
Spanish silver translations (`es-silver`), and PersonaExt test sentences with the checked silver facts
PersonaExt never labels (`silver-en`: WORKS_AS, AGE_BAND, GENDER, SPEAKS, ... beside its own labels). Every
set reports recall per gold predicate and the ECE of the confidences.
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


class GoldFact(BaseModel):
    predicates: list[str]  # any of these counts as correct
    object: str
    also: list[str] = Field(default_factory=list)  # other names that count (KvPI: province and city)

    def matched_by(self, predicate: str, obj: str, lang: str) -> bool:
        return any(fact_matches(predicate, obj, self.predicates, o, lang) for o in (self.object, *self.also))


class GoldItem(BaseModel):
    """A test sentence with its gold facts (one per PersonaExt row; all of a sentence elsewhere)."""

    text: str
    lang: str
    relation: str  # the source's own label (PersonaExt relation; the predicate elsewhere)
    gold: list[GoldFact]


class RowResult(BaseModel):
    sentence: str
    relation: str
    gold_predicates: list[str]
    gold_object: str
    lang: str = "en"
    gold: list[GoldFact] = Field(default_factory=list)
    found: list[bool] = Field(default_factory=list)  # per gold fact: matched by a prediction
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


_ZH_STRIP = "，。！？、；：,.!?;:\"'“”‘’ "


def zh_objects_match(pred: str, gold: str) -> bool:
    """Chinese has no spaces to compare words by: equal, or one contains the other."""
    a, b = pred.strip(_ZH_STRIP), gold.strip(_ZH_STRIP)
    return bool(a and b) and (a in b or b in a)


def fact_matches(predicate: str, obj: str, gold_predicates: tuple[str, ...] | list[str], gold_object: str,
                 lang: str = "en") -> bool:
    if predicate not in gold_predicates:
        return False
    gold_literal = literal_value(predicate, gold_object)
    same = zh_objects_match if lang == "zh" else objects_match
    if gold_literal is not None:
        return literal_value(predicate, obj) == gold_literal or same(obj, gold_object)
    return same(obj, gold_object)


def personaext_items(rows: list[PersonaRow]) -> list[GoldItem]:
    return [GoldItem(text=r.sentence, lang="en", relation=r.relation,
                     gold=[GoldFact(predicates=list(RELATION_MAP[r.relation] or ()), object=r.object)]) for r in rows]


def xpersona_items(split: str = "test") -> list[GoldItem]:
    """XPersona zh sentences of `split` with at least one projected fact."""
    from engine.corpora.xpersona import read_projected

    return [GoldItem(text=r.zh, lang="zh", relation=r.spans[0].predicate,
                     gold=[GoldFact(predicates=[s.predicate], object=s.text) for s in r.spans])
            for r in read_projected() if r.split == split and r.spans]


def kvpi_items(data_dir: Path, split: str = "test") -> list[GoldItem]:
    """KvPI zh responses of `split` that state a location or gender (any of the names counts)."""
    return [GoldItem(text=f.text, lang="zh", relation=f.predicate,
                     gold=[GoldFact(predicates=[f.predicate], object=f.objects[0], also=f.objects[1:])])
            for f in read_kvpi_facts(data_dir) if f.split == split]


def es_silver_items(split: str = "test") -> list[GoldItem]:
    """Spanish silver sentences of `split` (LLM-translated English ones, every object checked)."""
    from engine.corpora.es_silver import read_silver_es

    return [GoldItem(text=r.es, lang="es", relation=r.spans[0].predicate,
                     gold=[GoldFact(predicates=[s.predicate], object=s.text) for s in r.spans])
            for r in read_silver_es() if r.split == split and r.spans]


def silver_en_items(split: str = "test") -> list[GoldItem]:
    """PersonaExt sentences of `split` with checked silver facts (`engine/train/silver.py`: WORKS_AS,
    AGE_BAND, FROM_PLACE, SPEAKS, GENDER, LIVES_IN a pattern finds and the KB or literal rules accept),
    scored with PersonaExt's own labels of the sentence beside them."""
    from engine.corpora import split_of
    from engine.train.silver import read_silver

    return [GoldItem(text=r.text, lang="en", relation=r.silver[0].predicate,
                     gold=[GoldFact(predicates=[s.predicate], object=r.text[s.start:s.end])
                           for s in [*r.silver, *r.gold]])
            for r in read_silver() if r.silver and split_of(r.text) == split]


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


def run_items(items: list[GoldItem], extractor: Any, redactor: Any, progress: Any = None) -> list[RowResult]:
    started = time.perf_counter()
    texts = [redactor.redact(item.text, item.lang).text for item in items]
    results = extract_all(texts, [item.lang for item in items], extractor, progress)
    per_row = (time.perf_counter() - started) / max(len(items), 1)
    out: list[RowResult] = []
    for item, res in zip(items, results, strict=True):
        result = RowResult(
            sentence=item.text, relation=item.relation, gold_predicates=item.gold[0].predicates,
            gold_object=item.gold[0].object, lang=item.lang, gold=item.gold, dropped=res.dropped,
            valid_first_try=res.valid_first_try, error=res.error, llm_calls=res.llm_calls,
            prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens, seconds=per_row,
        )
        for fact in res.facts:
            result.predictions.append(Prediction(
                predicate=fact.predicate, object=fact.object, confidence=fact.confidence, tier=fact.tier,
                match=any(g.matched_by(fact.predicate, fact.object, item.lang) for g in item.gold)))
        result.found = [any(g.matched_by(p.predicate, p.object, item.lang) for p in result.predictions)
                        for g in item.gold]
        out.append(result)
    return out


def run_rows(rows: list[PersonaRow], extractor: Any, redactor: Any, progress: Any = None) -> list[RowResult]:
    return run_items(personaext_items(rows), extractor, redactor, progress)


class ExtractionScores(BaseModel):
    rows: int
    min_confidence: float
    predictions: int
    precision: float
    recall: float
    f1: float


def _found(r: RowResult, min_confidence: float) -> int:
    return sum(any(p.confidence >= min_confidence and g.matched_by(p.predicate, p.object, r.lang)
                   for p in r.predictions) for g in r.gold)


def score(results: list[RowResult], min_confidence: float = 0.0, only: str | None = None) -> ExtractionScores:
    """P / R / F1 over the results; `only`: count just that predicate's predictions and gold facts."""
    predictions = [p for r in results for p in r.predictions
                   if p.confidence >= min_confidence and (only is None or p.predicate == only)]
    tp_pred = sum(p.match for p in predictions)
    gold = sum(len(r.gold) for r in results if only is None or r.relation == only)
    tp_gold = sum(_found(r, min_confidence) for r in results if only is None or r.relation == only)
    precision = tp_pred / len(predictions) if predictions else 0.0
    recall = tp_gold / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ExtractionScores(
        rows=len(results), min_confidence=min_confidence, predictions=len(predictions),
        precision=round(precision, 4), recall=round(recall, 4), f1=round(f1, 4),
    )


def per_predicate(results: list[RowResult]) -> dict[str, dict[str, float]]:
    """Per predicate: gold facts, how many were found (recall), predictions and their precision."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        for p in r.predictions:
            counts[p.predicate]["predicted"] += 1
            counts[p.predicate]["correct"] += int(p.match)
        for g, hit in zip(r.gold, r.found, strict=True):
            counts[g.predicates[0]]["gold"] += 1
            counts[g.predicates[0]]["found"] += int(hit)
    out: dict[str, dict[str, float]] = {}
    for name, c in sorted(counts.items()):
        out[name] = {**c, "precision": round(c["correct"] / c["predicted"], 3) if c["predicted"] else 0.0,
                     "recall": round(c["found"] / c["gold"], 3) if c["gold"] else 0.0}
    return out


def calibration_error(results: list[RowResult], only: str | None = None) -> float:
    chosen = [p for r in results for p in r.predictions if only is None or p.predicate == only]
    return round(ece([p.confidence for p in chosen], [p.match for p in chosen]), 4)


def report(results: list[RowResult]) -> dict[str, Any]:
    n = max(len(results), 1)
    kept = sum(len(r.predictions) for r in results)
    dropped: Counter[str] = Counter()
    for r in results:
        dropped.update(r.dropped)
    proposed = kept + sum(dropped.values())
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
        "per_predicate": per_predicate(results),
        "ece": calibration_error(results),
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
        if not any(r.found):
            errors[("missed", "-", gold)] += 1
    return [{"kind": k, "predicted": p, "gold": g, "count": n} for (k, p, g), n in errors.most_common(top)]


def set_summary(results: list[RowResult], *, by_predicate: tuple[str, ...] = ()) -> dict[str, Any]:
    """One test set's headline: P / R / F1, ECE, recall per gold predicate (and per-predicate
    scores where a set labels only some predicates, as KvPI does)."""
    out: dict[str, Any] = {**score(results).model_dump(), "ece": calibration_error(results),
                           "recall_by_predicate": {k: v["recall"] for k, v in per_predicate(results).items()
                                                   if v.get("gold")}}
    for name in by_predicate:
        chosen = [r for r in results if r.relation == name]
        out[name] = {**score(chosen, only=name).model_dump(), "ece": calibration_error(chosen, only=name)}
    return out


TEST_SETS = ("personaext", "xpersona-zh", "kvpi-zh", "es-silver", "silver-en")


def sample(items: list[GoldItem], size: int | None, seed: int) -> list[GoldItem]:
    if size is None or size >= len(items):
        return items
    return random.Random(seed).sample(items, size)  # noqa: S311 - seeded sampling, not crypto


def test_items(name: str, data_dir: Path, size: int | None, seed: int) -> list[GoldItem]:
    """The test split of one set (a seeded sample of `size`; PersonaExt's stratified by relation)."""
    if name == "personaext":
        return personaext_items(test_rows(data_dir, size, seed))
    if name == "xpersona-zh":
        return sample(xpersona_items("test"), size, seed)
    if name == "kvpi-zh":
        return sample(kvpi_items(data_dir, "test"), size, seed)
    if name == "es-silver":
        return sample(es_silver_items("test"), size, seed)
    if name == "silver-en":
        return sample(silver_en_items("test"), size, seed)
    raise ValueError(f"unknown test set {name!r}; choose from {', '.join(TEST_SETS)}")
