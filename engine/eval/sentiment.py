"""`persona eval sentiment`: macro-F1 of the document sentiment per language.

Data (eval only, ../shared/data/sentiment/): zh_waimai_10k.jsonl (1 = positive, 0 = negative),
en_uci_amazon_yelp.jsonl (label 1/0), es_tass2020_train.jsonl (P / N / NEU). A seeded sample,
balanced over the gold labels, of ``size`` rows per language, through the same path as ingest:
redaction, then one extractor call per text (facts and sentiment come from the same call).

Macro-F1 averages over the *gold* label set: zh and en are binary, so a "neutral" answer
there costs recall of its true class but is not a class of its own; es has three classes.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DEFAULT_DIR = Path("../shared/data/sentiment")
FILES: dict[str, str] = {
    "zh": "zh_waimai_10k.jsonl",
    "en": "en_uci_amazon_yelp.jsonl",
    "es": "es_tass2020_train.jsonl",
}
_LABELS = {1: "positive", 0: "negative", "1": "positive", "0": "negative",
           "P": "positive", "N": "negative", "NEU": "neutral"}


class SentimentRow(BaseModel):
    lang: str
    text: str
    gold: str


class SentimentResult(BaseModel):
    lang: str
    text: str
    gold: str
    predicted: str
    confidence: float
    reason: str
    seconds: float
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


def load_language(data_dir: Path, lang: str) -> list[SentimentRow]:
    rows = []
    with (data_dir / FILES[lang]).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            data = json.loads(line)
            label = _LABELS.get(data["label"])
            if label and data.get("text"):
                rows.append(SentimentRow(lang=lang, text=data["text"], gold=label))
    return rows


def balanced_sample(rows: list[SentimentRow], size: int, seed: int) -> list[SentimentRow]:
    by_label: dict[str, list[SentimentRow]] = defaultdict(list)
    for row in rows:
        by_label[row.gold].append(row)
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    per = size // len(by_label)
    sample: list[SentimentRow] = []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        sample.extend(items[:per])
    rng.shuffle(sample)
    return sample


def macro_f1(results: list[SentimentResult]) -> dict[str, Any]:
    labels = sorted({r.gold for r in results})
    per: dict[str, float] = {}
    for label in labels:
        tp = sum(r.gold == label and r.predicted == label for r in results)
        fp = sum(r.gold != label and r.predicted == label for r in results)
        fn = sum(r.gold == label and r.predicted != label for r in results)
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        per[label] = round(2 * p * rc / (p + rc), 4) if p + rc else 0.0
    n = max(len(results), 1)
    return {
        "n": len(results),
        "macro_f1": round(sum(per.values()) / max(len(per), 1), 4),
        "accuracy": round(sum(r.gold == r.predicted for r in results) / n, 4),
        "f1_per_label": per,
        "predicted": dict(Counter(r.predicted for r in results)),
        "seconds_per_doc": round(sum(r.seconds for r in results) / n, 3),
        "llm_calls_per_doc": round(sum(r.llm_calls for r in results) / n, 3),
        "prompt_tokens_per_doc": round(sum(r.prompt_tokens for r in results) / n, 1),
        "completion_tokens_per_doc": round(sum(r.completion_tokens for r in results) / n, 1),
        "errors": sum(r.error is not None for r in results),
    }


def run_sentiment(
    rows: list[SentimentRow], extractor: Any, redactor: Any, progress: Any = None
) -> list[SentimentResult]:
    out = []
    for row in rows:
        started = time.perf_counter()
        redacted = redactor.redact(row.text, row.lang).text
        res = extractor.extract(redacted, row.lang)
        out.append(
            SentimentResult(
                lang=row.lang, text=row.text, gold=row.gold, predicted=res.sentiment.label,
                confidence=res.sentiment.confidence, reason=res.sentiment.reason,
                seconds=time.perf_counter() - started, llm_calls=res.llm_calls,
                prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
                error=res.error,
            )
        )
        if progress is not None:
            progress()
    return out


def score_rows_file(path: Path) -> dict[str, Any]:
    """Per-language scores from a (possibly partial) rows file written by `sentiment`."""
    results = [SentimentResult.model_validate_json(line) for line in path.read_text().splitlines() if line]
    return {lang: macro_f1([r for r in results if r.lang == lang]) for lang in sorted({r.lang for r in results})}
