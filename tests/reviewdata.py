"""A small judged world for review tests: four documents with the engine's facts and sentiment, and
the judgements whose quality numbers are computed by hand in tests/integration/test_review.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.config import Settings
from engine.contracts import DocumentSentiment, Fact
from engine.ingest import FactLine
from engine.link import link_fact_line
from engine.pipeline import ExtractedDocument, apply_documents

# doc id → (user, lang, ts, text, engine sentiment, engine facts [(predicate, object, tier)])
DOCS: dict[str, tuple[str, str, str, str, str, list[tuple[str, str, str]]]] = {
    "d1": ("ana", "en", "2024-05-02T10:00:00Z", "I love jazz and I live in Berlin.", "positive",
           [("LIKES", "jazz", "encoder"), ("LIVES_IN", "Berlin", "encoder")]),
    "d2": ("ana", "en", "2024-05-03T10:00:00Z", "I hate rain but I like tea.", "positive",
           [("LIKES", "rain", "encoder"), ("LIKES", "tea", "llm")]),
    "d3": ("luis", "es", "2024-05-04T10:00:00Z", "Vivo en Madrid y tengo un gato.", "neutral",
           [("LIVES_IN", "Madrid", "encoder"), ("HAS_PET", "perro", "llm")]),
    "d4": ("luis", "es", "2024-05-05T10:00:00Z", "Soy profesora.", "neutral", []),
}


def load(store: Any, settings: Settings) -> None:
    add_documents(store, settings, DOCS)


def add_documents(store: Any, settings: Settings,
                  documents: dict[str, tuple[str, str, str, str, str, list[tuple[str, str, str]]]]) -> None:
    """Documents in the shape of DOCS, with the engine's facts and sentiment, as extraction stores them."""
    docs = []
    for doc_id, (user, lang, ts, text, sentiment, facts) in documents.items():
        docs.append(ExtractedDocument(
            doc_id=doc_id, user_id=user, ts=datetime.fromisoformat(ts.replace("Z", "+00:00")), source="review-test",
            lang=lang, redacted_text=text, sentiment=DocumentSentiment(label=sentiment, confidence=0.8),
            facts=[Fact(predicate=p, object=o, confidence=0.7, evidence=o, tier=t) for p, o, t in facts],
        ))
    apply_documents(store, settings, docs)
    # The extractor's tier is not (yet) written by fusion: the test graph gets it as the encoder
    # tier will write it.
    for user, _, _, _, _, facts in documents.values():
        for predicate, obj, tier in facts:
            store.query(f"MATCH (u:User {{id: $u}})-[f:{predicate}]->(o {{key: $k}}) SET f.tier = $t",
                        {"u": user, "k": key_of(predicate, obj), "t": tier})


def key_of(predicate: str, obj: str, lang: str | None = None) -> str:
    """The key the linker gives this object in a document of that language (what fusion writes)."""
    line = FactLine(doc_id="x", user_id="x", ts="2024-01-01T00:00:00Z", predicate=predicate, object=obj, lang=lang)
    return link_fact_line(line, allow_sensitive=False).target.key


def ref(item: dict[str, Any], predicate: str, needle: str) -> str:
    """The ref of the item's fact with this predicate whose label or key contains `needle`."""
    same = [f for f in item["facts"] if f["predicate"] == predicate]
    if len(same) == 1:
        return same[0]["ref"]
    for f in same:
        if (needle.lower() in f["label"].lower() or needle.lower() in f["key"].lower()):
            return f["ref"]
    raise AssertionError(f"no {predicate} ~ {needle} in {[f['ref'] for f in item['facts']]}")


def judgements(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The hand-computed batch's judgements (bodies for PUT …/items/{doc}), by document."""
    d1, d2, d3, d4 = (items[d] for d in ("d1", "d2", "d3", "d4"))
    return {
        "d1": {"rev": d1["rev"], "sentiment": {"verdict": "correct"},
               "facts": [{"ref": ref(d1, "LIKES", "jazz"), "verdict": "correct"},
                         {"ref": ref(d1, "LIVES_IN", "berlin"), "verdict": "correct"}]},
        "d2": {"rev": d2["rev"], "sentiment": {"verdict": "wrong", "label": "negative"},
               "facts": [{"ref": ref(d2, "LIKES", "rain"), "verdict": "wrong"},
                         {"ref": ref(d2, "LIKES", "tea"), "verdict": "correct"}],
               "missing": [{"predicate": "DISLIKES", "object": "rain", "evidence": "rain"}]},
        "d3": {"rev": d3["rev"], "sentiment": {"verdict": "correct"},
               "facts": [{"ref": ref(d3, "LIVES_IN", "madrid"), "verdict": "correct"},
                         {"ref": ref(d3, "HAS_PET", "perro"), "verdict": "fix", "object": "gato", "span": [26, 30]}]},
        "d4": {"rev": d4["rev"], "sentiment": {"verdict": "correct"},
               "missing": [{"predicate": "WORKS_AS", "object": "profesora", "span": [4, 13]}]},
    }
