"""`persona train facts|sentiment`: reproduce the shipped task weights from ../shared/data.

facts      PersonaExt train split with checked LLM silver labels, XPersona zh (projected) and KvPI zh
           train splits, KB-vocabulary templates and compounds of real sentences; early stopping on
           the mean dev F1 over the three sets, Platt calibration and the threshold chosen on dev
sentiment  zh / en / es train splits (balanced, capped per language), early stopping on the dev
           macro-F1 averaged over languages, temperature calibration on dev
Test splits are never read here: `persona eval` reports on them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from engine.corpora import RELATION_MAP, read_personaext
from engine.eval.extraction import GoldItem
from engine.extract.encoder.tagging import TAGS, decode_spans, encode_tags
from engine.extract.encoder.tasks import SENTIMENT_LABELS, AdapterShape, EncoderTasks
from engine.extract.encoder.weights import Calibration, LanguagePolicy, TaskMeta, save_task
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

Predictions = Sequence[Sequence[tuple[str, str, float]]]  # per item: (predicate, object, confidence)


class DevSet(BaseModel):
    name: str
    items: list[GoldItem]

    @property
    def texts(self) -> list[str]:
        return [i.text for i in self.items]

    @property
    def langs(self) -> list[str]:
        return [i.lang for i in self.items]


def dev_sets(data_dir: Path) -> list[DevSet]:
    """The dev split of every labelled set: PersonaExt (en), XPersona projected (zh), KvPI (zh),
    Spanish silver (es, once built)."""
    from engine.eval.extraction import es_silver_items, kvpi_items, personaext_items, xpersona_items

    rows = [r for r in read_personaext(data_dir) if r.split == "dev" and RELATION_MAP.get(r.relation)]
    sets = [DevSet(name="personaext", items=personaext_items(rows)),
            DevSet(name="xpersona-zh", items=xpersona_items("dev")),
            DevSet(name="kvpi-zh", items=kvpi_items(data_dir, "dev")),
            DevSet(name="es-silver", items=es_silver_items("dev"))]
    return [d for d in sets if d.items]


def _matches(preds: Sequence[tuple[str, str, float]], item: GoldItem) -> list[bool]:
    return [any(g.matched_by(p, o, item.lang) for g in item.gold) for p, o, _ in preds]


def score_facts(predictions: Predictions, items: Sequence[GoldItem], min_confidence: float = 0.0) -> dict[str, float]:
    """The `persona eval extraction` scorer: P over predictions, R over gold facts."""
    n_pred = n_hit = found = n_gold = 0
    for preds, item in zip(predictions, items, strict=True):
        kept = [pc for pc in preds if pc[2] >= min_confidence]
        n_pred += len(kept)
        n_hit += sum(_matches(kept, item))
        n_gold += len(item.gold)
        found += sum(any(g.matched_by(p, o, item.lang) for p, o, _ in kept) for g in item.gold)
    precision = n_hit / n_pred if n_pred else 0.0
    recall = found / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "predictions": n_pred}


def score_sets(predictions: dict[str, Predictions], sets: Sequence[DevSet], min_confidence: float) -> dict[str, Any]:
    """Per set scores and `f1`, their mean: early stopping and the threshold weigh every language."""
    per = {d.name: score_facts(predictions[d.name], d.items, min_confidence) for d in sets if d.items}
    return {**per, "f1": round(float(np.mean([s["f1"] for s in per.values()])), 4)}


def fact_predictions(extractor: Any, texts: Sequence[str], langs: Sequence[str], probs: Sequence[np.ndarray],
                     offsets: Sequence[Sequence[tuple[int, int]]]) -> list[list[tuple[str, str, float]]]:
    """(predicate, object, confidence) per text, through the extractor's own grounding."""
    out = []
    for text, lang, p, off in zip(texts, langs, probs, offsets, strict=True):
        facts, _ = extractor.facts_from_spans(text, lang, decode_spans(text, off, p))
        out.append([(f.predicate, f.object, f.confidence) for f in facts])
    return out


def choose_threshold(predictions: dict[str, Predictions], sets: Sequence[DevSet]) -> float:
    """The confidence threshold with the best mean dev F1 over `sets`, among those keeping
    PersonaExt's dev precision ≥ MIN_PRECISION (when PersonaExt is one of them)."""
    grid = [round(t, 2) for t in np.arange(0.05, 0.96, 0.01)]  # a 0.05 grid cost up to 0.02 F1
    scored = [(t, score_sets(predictions, sets, t)) for t in grid]
    ok = [(t, s) for t, s in scored
          if "personaext" not in s or s["personaext"]["precision"] >= MIN_PRECISION] or scored
    return float(max(ok, key=lambda ts: ts[1]["f1"])[0])


def choose_unsure_from(predictions: Predictions, min_confidence: float) -> float:
    """The lowest floor whose unsure band [floor, min_confidence) touches at most the budget's share
    of dev documents."""
    for floor in sorted({round(t, 2) for t in np.arange(0.05, min_confidence, 0.01)}):
        share = sum(any(floor <= c < min_confidence for _, _, c in row) for row in predictions) / max(
            len(predictions), 1)
        if share <= ESCALATION_BUDGET:
            return float(floor)
    return float(min_confidence)


def calibration_pairs(predictions: Predictions, items: Sequence[GoldItem]) -> tuple[list[float], list[bool]]:
    scores, correct = [], []
    for preds, item in zip(predictions, items, strict=True):
        scores += [c for _, _, c in preds]
        correct += _matches(preds, item)
    return scores, correct


def _pooled(predictions: dict[str, Predictions], sets: Sequence[DevSet]) -> tuple[list[float], list[bool]]:
    scores: list[float] = []
    correct: list[bool] = []
    for d in sets:
        s, c = calibration_pairs(predictions[d.name], d.items)
        scores, correct = scores + s, correct + c
    return scores, correct


def train_data(data_dir: Path, extra: Sequence[FactExample], rng: random.Random, *, compounds: int,
               max_train: int | None = None, zh_repeat: int = 1) -> tuple[list[FactExample], dict[str, int]]:
    """Training examples: PersonaExt (silver-labelled sentences replace their plain copy), XPersona
    zh projected and KvPI zh (train splits, repeated `zh_repeat` times: there are few), Spanish silver
    translations (train split), templates, and compounds of real sentences per language."""
    from engine.train.examples import es_silver_examples, kvpi_examples, xpersona_examples
    from engine.train.silver import silver_examples
    from engine.train.synthetic import compound_examples

    silver = silver_examples()
    relabelled = {e.text for e in silver}
    english = [e for e in personaext_examples(data_dir) if e.split == "train" and e.text not in relabelled]
    if max_train is not None:  # a seeded sample: the file is ordered by relation
        english = rng.sample(english, min(max_train, len(english)))
    chinese = [e for e in [*xpersona_examples(), *kvpi_examples(data_dir)] if e.split == "train"]
    spanish = [e for e in es_silver_examples() if e.split == "train"]
    real_en = [e for e in [*english, *silver] if e.spans]
    composed = compound_examples(real_en, compounds, rng) + compound_examples(
        [e for e in chinese if e.spans], compounds // 3, rng)
    sizes = {"personaext": len(english), "silver_en": len(silver),
             "xpersona_zh": sum(e.source.startswith("xpersona") for e in chinese),
             "kvpi_zh": sum(e.source == "kvpi" for e in chinese), "silver_es": len(spanish),
             "templates": len(extra),
             "compounds": len(composed), "zh_repeat": zh_repeat}
    return [*english, *silver, *chinese * zh_repeat, *spanish, *extra, *composed], sizes


def train_facts(
    model: EncoderTasks, tokenizer: Any, data_dir: Path, out_dir: Path, config: TrainConfig, *,
    extra_examples: Sequence[FactExample] = (), max_train: int | None = None, compounds: int = 1500,
    zh_repeat: int = 1, progress: Progress | None = None, base_sha256: str | None = None,
    checkpoint: Callable[[TaskReport], None] | None = None,
) -> TaskReport:
    """`checkpoint(report)` after every improving epoch, once its weights are saved (the CLI writes
    the model card then)."""
    from engine.extract.encoder.extractor import EncoderExtractor

    started = time.perf_counter()
    rng = random.Random(config.seed)  # noqa: S311 - seeded sampling, not crypto
    train_ex, sizes = train_data(data_dir, extra_examples, rng, compounds=compounds, max_train=max_train,
                                   zh_repeat=zh_repeat)
    sets = dev_sets(data_dir)
    cache = build_cache(model, tokenizer, [e.text for e in train_ex], max_tokens=config.max_tokens,
                        progress=progress)
    targets = [encode_tags(enc.offsets, e.spans) for enc, e in zip(cache.encoded, train_ex, strict=True)]
    dev_caches = {d.name: build_cache(model, tokenizer, d.texts, max_tokens=config.max_tokens) for d in sets}
    raw_meta = TaskMeta(task="facts", shape=model.shape.__dict__, labels=list(TAGS), thresholds={"min_confidence": 0.0})
    grounding = EncoderExtractor(model, tokenizer, {"facts": raw_meta})

    def dev_predictions() -> dict[str, Predictions]:
        return {d.name: fact_predictions(grounding, d.texts, d.langs, predict(model, "facts", dev_caches[d.name]),
                                         [enc.offsets for enc in dev_caches[d.name].encoded]) for d in sets}

    last: dict[str, dict[str, Predictions]] = {}

    def evaluate() -> dict[str, Any]:
        last["dev"] = dev_predictions()
        return score_sets(last["dev"], sets, 0.5)

    sizes = {**{f"train_{k}": v for k, v in sizes.items()}, "train_all": len(train_ex),
             **{f"dev_{d.name}": len(d.items) for d in sets}}

    def save(result: TrainResult) -> TaskReport:
        """Calibrate the model's current (best) state on its dev predictions and write it out."""
        meta, dev = calibrate_facts(last["dev"], sets, raw_meta.model_copy(update={"base_sha256": base_sha256}))
        save_task(out_dir, meta, model.task_state("facts"))
        report = TaskReport(task="facts", sizes=sizes, result=result, dev=dev, meta=meta,
                            seconds=round(time.perf_counter() - started, 1))
        if checkpoint is not None:
            checkpoint(report)
        return report

    result = train(model, "facts", cache, targets, evaluate, config, score_key="f1", progress=progress,
                   on_best=save)
    last["dev"] = dev_predictions()  # the best epoch's state was restored
    return save(result)


def _language_of(d: DevSet) -> str:
    return d.items[0].lang


def _policy(predictions: dict[str, Predictions], sets: Sequence[DevSet]) -> LanguagePolicy:
    """Platt scaling fit on `sets` pooled, then the threshold and the cascade's unsure floor chosen
    on their calibrated predictions."""
    a, b = fit_platt(*_pooled(predictions, sets))
    calibration = Calibration(kind="platt", a=a, b=b)
    calibrated = _calibrated(predictions, sets, calibration)
    threshold = choose_threshold(calibrated, sets)
    unsure_from = choose_unsure_from([row for d in sets for row in calibrated[d.name]], threshold)
    return LanguagePolicy(calibration=calibration,
                          thresholds={"min_confidence": threshold, "unsure_from": unsure_from})


def _calibrated(predictions: dict[str, Predictions], sets: Sequence[DevSet], calibration: Calibration
                ) -> dict[str, Predictions]:
    return {d.name: [[(p, o, calibration.apply(c)) for p, o, c in row] for row in predictions[d.name]]
            for d in sets}


def calibrate_facts(
    predictions: dict[str, Predictions], sets: Sequence[DevSet], meta: TaskMeta
) -> tuple[TaskMeta, dict[str, Any]]:
    """Platt scaling and thresholds per language with a dev set (en: PersonaExt; zh: XPersona and
    KvPI), plus pooled ones for every other language, all on dev; scores and ECE per dev set under
    its language's policy."""
    sets = [d for d in sets if d.items]
    pooled = _policy(predictions, sets)
    by_lang = {lang: _policy(predictions, [d for d in sets if _language_of(d) == lang])
               for lang in sorted({_language_of(d) for d in sets})}
    dev: dict[str, Any] = {}
    for d in sets:
        policy = by_lang[_language_of(d)]
        calibrated = _calibrated(predictions, [d], policy.calibration)[d.name]
        dev[d.name] = {**score_facts(calibrated, d.items, policy.thresholds["min_confidence"]),
                       "ece": round(ece(*calibration_pairs(
                           [[pc for pc in row if pc[2] >= policy.thresholds["min_confidence"]] for row in calibrated],
                           d.items)), 4)}
    dev["f1"] = round(float(np.mean([dev[d.name]["f1"] for d in sets])), 4)
    dev |= {"thresholds": {lang: p.thresholds for lang, p in by_lang.items()}}
    metrics = {**meta.metrics, "dev": dev}
    return meta.model_copy(update={"calibration": pooled.calibration, "thresholds": pooled.thresholds,
                                   "by_lang": by_lang, "metrics": metrics}), dev


def recalibrate_facts(
    model: EncoderTasks, tokenizer: Any, data_dir: Path, folder: Path, *, max_tokens: int = 128
) -> dict[str, Any]:
    """Refit calibration and thresholds of saved facts weights on dev (after a decoding change)."""
    from engine.extract.encoder.extractor import EncoderExtractor
    from engine.extract.encoder.weights import load_task

    meta, state = load_task(folder, "facts")
    model.load_task_state("facts", state)
    sets = dev_sets(data_dir)
    raw = meta.model_copy(update={"thresholds": {"min_confidence": 0.0}, "calibration": Calibration(kind="none")})
    grounding = EncoderExtractor(model, tokenizer, {"facts": raw})
    preds = {}
    for d in sets:
        cache = build_cache(model, tokenizer, d.texts, max_tokens=max_tokens)
        preds[d.name] = fact_predictions(grounding, d.texts, d.langs, predict(model, "facts", cache),
                                         [enc.offsets for enc in cache.encoded])
    meta, dev = calibrate_facts(preds, sets, meta)
    save_task(folder, meta, state)
    return dev


def resume_facts(model: EncoderTasks, state: dict[str, Any]) -> None:
    """Start from saved facts weights; a head with fewer tags (an older tag set, a prefix of TAGS)
    keeps its rows and the new tags start from the fresh head's."""
    head = model.heads["facts"]
    state = dict(state)
    for key in ("head.weight", "head.bias"):
        old, fresh = state[key], getattr(head, key.removeprefix("head.")).detach().clone()
        if old.shape[0] < fresh.shape[0]:
            fresh[: old.shape[0]] = old
            state[key] = fresh
    model.load_task_state("facts", state)


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

