"""`persona train facts|sentiment`: reproduce the shipped task weights from ../shared/data.

facts      PersonaExt train split (+ KB-vocabulary templates for what it lacks), early stopping on
           the dev split's F1, Platt calibration and the confidence threshold chosen on dev
sentiment  zh / en / es train splits (balanced, capped per language), early stopping on the dev
           macro-F1 averaged over languages, temperature calibration on dev
Test splits are never read here: `persona eval` reports on them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from engine.corpora import RELATION_MAP, PersonaRow, read_personaext
from engine.extract.encoder.tagging import TAGS, decode_spans, encode_tags
from engine.extract.encoder.tasks import SENTIMENT_LABELS, AdapterShape, EncoderTasks
from engine.extract.encoder.weights import Calibration, TaskMeta, save_task
from engine.train.calibrate import ece, fit_platt, fit_temperature
from engine.train.examples import FactExample, SentimentExample, personaext_examples, sentiment_examples
from engine.train.loop import Progress, TrainConfig, TrainResult, build_cache, predict, train

MIN_PRECISION = 0.75  # the threshold on dev keeps precision at least this, when it can
# Share of dev documents the cascade may send to the LLM for each reason (unsure facts, unsure
# sentiment): at ~1.6 s per LLM call, 2.5 % + 2.5 % keeps a cascade near 10 short documents/s.
ESCALATION_BUDGET = 0.025


class TaskReport(BaseModel):
    task: str
    sizes: dict[str, int]
    result: TrainResult
    dev: dict[str, Any]
    meta: TaskMeta
    seconds: float
    extra: dict[str, Any] = Field(default_factory=dict)


# --- facts ------------------------------------------------------------------------------------


def _dev_rows(data_dir: Path) -> list[PersonaRow]:
    return [r for r in read_personaext(data_dir) if r.split == "dev"]


def score_facts(predictions: Sequence[Sequence[tuple[str, str, float]]], rows: Sequence[PersonaRow],
                min_confidence: float = 0.0) -> dict[str, float]:
    """The `persona eval extraction` scorer over rows whose relation is in the schema."""
    from engine.eval.extraction import fact_matches

    n_pred = n_hit = rows_hit = n_rows = 0
    for preds, row in zip(predictions, rows, strict=True):
        gold = RELATION_MAP.get(row.relation)
        if not gold:
            continue
        n_rows += 1
        kept = [(p, o) for p, o, c in preds if c >= min_confidence]
        hits = [fact_matches(p, o, gold, row.object) for p, o in kept]
        n_pred += len(kept)
        n_hit += sum(hits)
        rows_hit += any(hits)
    precision = n_hit / n_pred if n_pred else 0.0
    recall = rows_hit / n_rows if n_rows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "predictions": n_pred}


def fact_predictions(extractor: Any, texts: Sequence[str], probs: Sequence[np.ndarray],
                     offsets: Sequence[Sequence[tuple[int, int]]]) -> list[list[tuple[str, str, float]]]:
    """(predicate, object, confidence) per text, through the extractor's own grounding."""
    out = []
    for text, p, off in zip(texts, probs, offsets, strict=True):
        facts, _ = extractor.facts_from_spans(text, "en", decode_spans(text, off, p))
        out.append([(f.predicate, f.object, f.confidence) for f in facts])
    return out


def choose_threshold(predictions: Sequence[Sequence[tuple[str, str, float]]], rows: Sequence[PersonaRow]) -> float:
    """The confidence threshold with the best dev F1 among those keeping precision ≥ MIN_PRECISION."""
    grid = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]
    scored = [(t, score_facts(predictions, rows, t)) for t in grid]
    ok = [(t, s) for t, s in scored if s["precision"] >= MIN_PRECISION] or scored
    return float(max(ok, key=lambda ts: ts[1]["f1"])[0])


def choose_unsure_from(predictions: Sequence[Sequence[tuple[str, str, float]]], min_confidence: float) -> float:
    """The lowest floor whose unsure band [floor, min_confidence) touches at most the budget's share
    of dev documents."""
    for floor in sorted({round(t, 2) for t in np.arange(0.05, min_confidence, 0.05)}):
        share = sum(any(floor <= c < min_confidence for _, _, c in row) for row in predictions) / max(
            len(predictions), 1)
        if share <= ESCALATION_BUDGET:
            return float(floor)
    return float(min_confidence)


def calibration_pairs(predictions: Sequence[Sequence[tuple[str, str, float]]], rows: Sequence[PersonaRow]):
    from engine.eval.extraction import fact_matches

    scores, correct = [], []
    for preds, row in zip(predictions, rows, strict=True):
        gold = RELATION_MAP.get(row.relation)
        for p, o, c in preds:
            scores.append(c)
            correct.append(bool(gold) and fact_matches(p, o, gold, row.object))
    return scores, correct


def train_facts(
    model: EncoderTasks, tokenizer: Any, data_dir: Path, out_dir: Path, config: TrainConfig, *,
    extra_examples: Sequence[FactExample] = (), max_train: int | None = None, compounds: int = 1500,
    progress: Progress | None = None, base_sha256: str | None = None,
) -> TaskReport:
    from engine.extract.encoder.extractor import EncoderExtractor
    from engine.train.synthetic import compound_examples

    started = time.perf_counter()
    examples = personaext_examples(data_dir)
    train_ex = [e for e in examples if e.split == "train"][:max_train] + list(extra_examples)
    # English documents that state several facts: PersonaExt sentences and templates, two at a time
    english = [e for e in train_ex if e.lang == "en" and e.spans]
    rng = random.Random(config.seed)  # noqa: S311 - seeded sampling, not crypto
    train_ex += compound_examples(english, compounds, rng) if english else []
    rows = _dev_rows(data_dir)
    cache = build_cache(model, tokenizer, [e.text for e in train_ex], max_tokens=config.max_tokens,
                        progress=progress)
    targets = [encode_tags(enc.offsets, e.spans) for enc, e in zip(cache.encoded, train_ex, strict=True)]
    dev_cache = build_cache(model, tokenizer, [r.sentence for r in rows], max_tokens=config.max_tokens)
    shape = model.shape
    raw_meta = TaskMeta(task="facts", shape=shape.__dict__, labels=list(TAGS), thresholds={"min_confidence": 0.0})
    grounding = EncoderExtractor(model, tokenizer, {"facts": raw_meta})
    texts, offsets = [r.sentence for r in rows], [enc.offsets for enc in dev_cache.encoded]

    def dev_predictions() -> list[list[tuple[str, str, float]]]:
        return fact_predictions(grounding, texts, predict(model, "facts", dev_cache), offsets)

    def evaluate() -> dict[str, Any]:
        return score_facts(dev_predictions(), rows, 0.5)

    result = train(model, "facts", cache, targets, evaluate, config, score_key="f1", progress=progress)
    meta, dev = calibrate_facts(dev_predictions(), rows, raw_meta.model_copy(update={"base_sha256": base_sha256}))
    save_task(out_dir, meta, model.task_state("facts"))
    sizes = {"train_all": len(train_ex), "train_templates": len(extra_examples), "train_compounds": compounds,
             "dev": len(rows)}
    return TaskReport(task="facts", sizes=sizes, result=result, dev=dev, meta=meta,
                      seconds=round(time.perf_counter() - started, 1))


def calibrate_facts(
    predictions: list[list[tuple[str, str, float]]], rows: Sequence[PersonaRow], meta: TaskMeta
) -> tuple[TaskMeta, dict[str, Any]]:
    """Platt scaling, the confidence threshold and the cascade's unsure floor, all on dev."""
    a, b = fit_platt(*calibration_pairs(predictions, rows))
    calibration = Calibration(kind="platt", a=a, b=b)
    calibrated = [[(p, o, calibration.apply(c)) for p, o, c in row] for row in predictions]
    threshold = choose_threshold(calibrated, rows)
    unsure_from = choose_unsure_from(calibrated, threshold)
    scores, correct = calibration_pairs(calibrated, rows)
    dev = {**score_facts(calibrated, rows, threshold), "ece": round(ece(scores, correct), 4),
           "min_confidence": threshold, "unsure_from": unsure_from}
    thresholds = {"min_confidence": threshold, "unsure_from": unsure_from}
    metrics = {**meta.metrics, "dev": dev}
    return meta.model_copy(update={"calibration": calibration, "thresholds": thresholds, "metrics": metrics}), dev


def recalibrate_facts(
    model: EncoderTasks, tokenizer: Any, data_dir: Path, folder: Path, *, max_tokens: int = 128
) -> dict[str, Any]:
    """Refit calibration and thresholds of saved facts weights on dev (after a decoding change)."""
    from engine.extract.encoder.extractor import EncoderExtractor
    from engine.extract.encoder.weights import load_task

    meta, state = load_task(folder, "facts")
    model.load_task_state("facts", state)
    rows = _dev_rows(data_dir)
    cache = build_cache(model, tokenizer, [r.sentence for r in rows], max_tokens=max_tokens)
    raw = meta.model_copy(update={"thresholds": {"min_confidence": 0.0}, "calibration": Calibration(kind="none")})
    grounding = EncoderExtractor(model, tokenizer, {"facts": raw})
    preds = fact_predictions(grounding, [r.sentence for r in rows], predict(model, "facts", cache),
                             [enc.offsets for enc in cache.encoded])
    meta, dev = calibrate_facts(preds, rows, meta)
    save_task(folder, meta, state)
    return dev


# --- sentiment --------------------------------------------------------------------------------


def macro_f1(gold: Sequence[int], predicted: Sequence[int]) -> float:
    labels = sorted(set(gold))
    f1s = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        prec, rec = tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def score_sentiment(examples: Sequence[SentimentExample], logits: Sequence[np.ndarray]) -> dict[str, Any]:
    by_lang: dict[str, tuple[list[int], list[int]]] = {}
    for ex, z in zip(examples, logits, strict=True):
        gold, pred = by_lang.setdefault(ex.lang, ([], []))
        gold.append(ex.label)
        pred.append(int(np.argmax(z)))
    per = {lang: round(macro_f1(g, p), 4) for lang, (g, p) in sorted(by_lang.items())}
    return {"macro_f1": per, "mean_macro_f1": round(sum(per.values()) / max(len(per), 1), 4)}


def train_sentiment(
    model: EncoderTasks, tokenizer: Any, data_dir: Path, out_dir: Path, config: TrainConfig, *,
    langs: Sequence[str] = ("zh", "en", "es"), per_language: int = 6000, dev_per_language: int = 800,
    progress: Progress | None = None, base_sha256: str | None = None,
) -> TaskReport:
    import torch

    started = time.perf_counter()
    examples = sentiment_examples(data_dir, langs, per_language=per_language, seed=config.seed)
    train_ex = [e for e in examples if e.split == "train"]
    dev_all = [e for e in examples if e.split == "dev"]
    random.Random(config.seed).shuffle(dev_all)  # noqa: S311 - seeded sampling, not crypto
    dev_ex = _capped(dev_all, dev_per_language)
    cache = build_cache(model, tokenizer, [e.text for e in train_ex], max_tokens=config.max_tokens,
                        progress=progress)
    dev_cache = build_cache(model, tokenizer, [e.text for e in dev_ex], max_tokens=config.max_tokens)
    counts = np.bincount([e.label for e in train_ex], minlength=len(SENTIMENT_LABELS)).astype(float)
    weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)

    def evaluate() -> dict[str, Any]:
        return score_sentiment(dev_ex, predict(model, "sentiment", dev_cache))

    result = train(model, "sentiment", cache, [e.label for e in train_ex], evaluate, config,
                   score_key="mean_macro_f1", progress=progress, weights=weights)
    logits = np.stack(predict(model, "sentiment", dev_cache))
    labels = np.array([e.label for e in dev_ex])
    temperature = fit_temperature(logits, labels)
    probs = _softmax(logits / temperature)
    escalate_below = round(float(np.quantile(probs.max(1), ESCALATION_BUDGET)), 4)
    dev = {**score_sentiment(dev_ex, list(logits)),
           "ece": round(ece(probs.max(1), probs.argmax(1) == labels), 4), "temperature": round(temperature, 4),
           "escalate_below": escalate_below}
    meta = TaskMeta(task="sentiment", shape=model.shape.__dict__, labels=list(SENTIMENT_LABELS),
                    calibration=Calibration(kind="temperature", temperature=temperature),
                    thresholds={"escalate_below": escalate_below},
                    base_sha256=base_sha256, metrics={"dev": dev})
    save_task(out_dir, meta, model.task_state("sentiment"))
    sizes = {f"train_{lang}": sum(e.lang == lang for e in train_ex) for lang in langs}
    sizes |= {f"dev_{lang}": sum(e.lang == lang for e in dev_ex) for lang in langs}
    return TaskReport(task="sentiment", sizes=sizes, result=result, dev=dev, meta=meta,
                      seconds=round(time.perf_counter() - started, 1))


def _capped(examples: list[SentimentExample], per_language: int) -> list[SentimentExample]:
    seen: dict[str, int] = {}
    out = []
    for e in examples:
        if seen.get(e.lang, 0) < per_language:
            seen[e.lang] = seen.get(e.lang, 0) + 1
            out.append(e)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def new_model(base: Any, shape: AdapterShape) -> EncoderTasks:
    return EncoderTasks(base, ("facts", "sentiment"), shape)

