"""Judged documents as training data for `persona train` (engine/train/examples.py reads them with
`review_examples`): one JSONL row per example, in exactly the shapes of FactExample
{text, lang, split, spans: [{start, end, predicate}], source} and SentimentExample
{text, lang, split, label, source} (label: index into ("negative", "neutral", "positive")).

A document becomes a fact example only when every fact it holds (correct, fixed, added) has a span
in the text; otherwise its unmarked words would teach the tagger that a real fact is not one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.review.items import item_facts
from engine.review.model import ReviewNotFound
from engine.review.sample import BATCH_EXISTS, locate
from engine.store import GraphStore

TRAIN_SENTIMENT_LABELS = ("negative", "neutral", "positive")  # the encoder's order (engine.extract.encoder.tasks)

_DONE_ITEMS = """
MATCH (i:ReviewItem)
WHERE i.state = 'done' AND ($batch IS NULL OR i.batch_id = $batch)
MATCH (d:Document {id: i.doc_id})
RETURN i AS i, d.text AS text
ORDER BY i.batch_id, i.position
"""
_ITEM_JUDGEMENTS = """
UNWIND $ids AS id
MATCH (j:Judgement {item_id: id})
RETURN j AS j
"""


class ExportReport(BaseModel):
    path: str
    documents: int = 0
    fact_examples: int = 0
    sentiment_examples: int = 0
    skipped_no_span: int = 0  # documents left out of fact examples: a fact without a span


def _props(node: Any) -> dict[str, Any]:
    return dict(node.properties) if hasattr(node, "properties") else dict(node)


def training_rows(item: dict[str, Any], text: str, judgements: list[dict[str, Any]],
                  tagged: tuple[str, ...] | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(fact example or None, sentiment example or None) for one judged document."""
    facts = {f.ref: f for f in item_facts(item)}
    source = f"review:{item['batch_id']}"
    lang = item.get("lang") or "unknown"
    spans: list[dict[str, Any]] = []
    complete = True
    sentiment = None
    for j in judgements:
        span = None
        predicate = j.get("predicate")
        if j["kind"] == "fact" and j["verdict"] == "correct":
            fact = facts.get(j.get("ref", ""))
            span = fact.span if fact else None
        elif j["kind"] == "fact" and j["verdict"] == "fix":
            predicate = j.get("fix_predicate")
            span = j.get("span") or locate(text, [j.get("fix_object")])
        elif j["kind"] == "missing":
            span = j.get("span")
        elif j["kind"] == "sentiment" and j.get("label") in TRAIN_SENTIMENT_LABELS:
            sentiment = {"text": text, "lang": lang, "split": "train",
                         "label": TRAIN_SENTIMENT_LABELS.index(j["label"]), "source": source}
            continue
        else:
            continue  # a wrong fact: no span, the words stay O
        if span is None:
            complete = False
        elif tagged is None or predicate in tagged:
            spans.append({"start": int(span[0]), "end": int(span[1]), "predicate": predicate})
    spans.sort(key=lambda s: (s["start"], s["end"]))
    fact_row = {"text": text, "lang": lang, "split": "train", "spans": spans, "source": source} if complete else None
    return fact_row, sentiment


def export_training(store: GraphStore, out: Path, *, batch_id: str | None = None,
                    tagged: tuple[str, ...] | None = None) -> ExportReport:
    """Write every judged document (of one batch, or all) to `out` (temp file, then rename; the
    directory must exist)."""
    if batch_id is not None and not store.ro_query(BATCH_EXISTS, {"id": batch_id}).rows:
        raise ReviewNotFound(f"no review batch {batch_id!r}")
    items = store.ro_query(_DONE_ITEMS, {"batch": batch_id}).records()
    ids = sorted({_props(r["i"])["id"] for r in items})
    # judgements belong to the (batch, document) pair: item keys stored in an older form could repeat
    by_item: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in store.ro_query(_ITEM_JUDGEMENTS, {"ids": ids}).records():
        j = _props(r["j"])
        by_item.setdefault((j["batch_id"], j["doc_id"]), []).append(j)
    report = ExportReport(path=str(out))
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in items:
            item = _props(r["i"])
            judged = sorted(by_item.get((item["batch_id"], item["doc_id"]), []), key=lambda j: j.get("seq", 0))
            fact_row, sentiment_row = training_rows(item, r["text"] or "", judged, tagged)
            report.documents += 1
            if fact_row is None:
                report.skipped_no_span += 1
            else:
                fh.write(json.dumps(fact_row, ensure_ascii=False) + "\n")
                report.fact_examples += 1
            if sentiment_row is not None:
                fh.write(json.dumps(sentiment_row, ensure_ascii=False) + "\n")
                report.sentiment_examples += 1
    os.replace(tmp, out)
    return report
