"""Real model, end to end: records → redaction → LLM → linker → fusion → graph."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engine.contracts import Record
from engine.extract import ExtractionCache
from engine.persona import get_persona
from engine.pipeline import apply_documents, extract_documents

pytestmark = [pytest.mark.llm, pytest.mark.integration]

PHONE, EMAIL = "13812345678", "ana.lopez@example.com"


def test_texts_become_grounded_facts_in_the_graph(extractor, store, settings, tmp_path) -> None:
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    records = [
        Record(user_id="u-en", doc_id="en1", ts=ts, text=f"I live in Berlin. Call me at {PHONE}."),
        Record(user_id="u-zh", doc_id="zh1", ts=ts, text="我是一名护士。"),
        Record(user_id="u-es", doc_id="es1", ts=ts, text=f"Vivo en Madrid. Escríbeme a {EMAIL}"),
    ]
    cache = ExtractionCache(tmp_path / "cache.sqlite")
    docs = list(extract_documents(records, extractor, cache=cache))
    assert all(d.error is None for d in docs), [d.error for d in docs]
    assert all(d.llm_calls <= 1 for d in docs)
    apply_documents(store, settings, docs)

    facts = {
        user: {(f.predicate, f.qid) for f in get_persona(store, user).facts if f.status == "active"}
        for user in ("u-en", "u-zh", "u-es")
    }
    assert ("LIVES_IN", "Q64") in facts["u-en"]
    assert ("WORKS_AS", "Q186360") in facts["u-zh"]
    assert ("LIVES_IN", "Q2807") in facts["u-es"]

    # nothing planted as PII reaches the graph
    dump = json.dumps(store.ro_query("MATCH (n) RETURN properties(n)").rows, ensure_ascii=False)
    dump += json.dumps(store.ro_query("MATCH ()-[r]->() RETURN properties(r)").rows, ensure_ascii=False)
    assert PHONE not in dump and EMAIL not in dump
    assert "<PHONE" in dump or "PHONE>" in dump  # the redacted text is what is stored

    # the same texts again cost no LLM call (content-hash cache) and change nothing
    again = list(extract_documents(records, extractor, cache=cache))
    assert sum(d.llm_calls for d in again) == 0
