"""`persona eval sentiment`: macro-F1 of the document sentiment per language, on the test split.

Data (eval only, ../shared/data/sentiment/, read by `engine.corpora.sentiment`): zh = waimai takeaway
+ online-shopping reviews (1 = positive, 0 = negative), en = UCI sentences (1/0), es = TASS 2020
tweets (P / N / NEU). Rows are split by the hash rule of `engine/corpora/splits.py`; the encoder
trained on train and was calibrated on dev, so only the test split is read here. A seeded sample,
balanced over the gold labels, of ``size`` rows per language, goes through the same path as ingest:
redaction, then the extractor (facts and sentiment come from the same call).

Macro-F1 averages over the *gold* label set: zh and en are binary, so a "neutral" answer
there costs recall of its true class but is not a class of its own; es has three classes.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.corpora import SentimentRow, read_sentiment


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


def test_rows(data_dir: Path, lang: str) -> list[SentimentRow]:
    return [r for r in read_sentiment(data_dir, lang) if r.split == "test"]


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
    from engine.eval.extraction import extract_all

    started = time.perf_counter()
    texts = [redactor.redact(row.text, row.lang).text for row in rows]
    results = extract_all(texts, [row.lang for row in rows], extractor, progress)
    per_row = (time.perf_counter() - started) / max(len(rows), 1)
    return [
        SentimentResult(
            lang=row.lang, text=row.text, gold=row.gold, predicted=res.sentiment.label,
            confidence=res.sentiment.confidence, reason=res.sentiment.reason, seconds=per_row,
            llm_calls=res.llm_calls, prompt_tokens=res.prompt_tokens, completion_tokens=res.completion_tokens,
            error=res.error,
        )
        for row, res in zip(rows, results, strict=True)
    ]


def score_rows_file(path: Path) -> dict[str, Any]:
    """Per-language scores from a (possibly partial) rows file written by `sentiment`."""
    results = [SentimentResult.model_validate_json(line) for line in path.read_text().splitlines() if line]
    return {lang: macro_f1([r for r in results if r.lang == lang]) for lang in sorted({r.lang for r in results})}
