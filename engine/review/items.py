"""Reading review batches and items back (the explorer's Review page and the CLI)."""

from __future__ import annotations

import json
from typing import Any

from engine.review.model import (
    Batch,
    BatchDetail,
    ItemFact,
    ItemSummary,
    ItemView,
    JudgementView,
    ReviewGone,
    ReviewNotFound,
)
from engine.review.sample import FACT_TYPES, FORGOTTEN, tombstone_id
from engine.store import GraphStore

_BATCHES = """
MATCH (b:ReviewBatch)
OPTIONAL MATCH (i:ReviewItem {batch_id: b.id})
RETURN b AS b, count(i) AS size, sum(CASE WHEN i.state = 'done' THEN 1 ELSE 0 END) AS judged,
       sum(CASE WHEN i.state = $forgotten THEN 1 ELSE 0 END) AS forgotten
ORDER BY b.created_at, b.id
"""
_BATCH = "MATCH (b:ReviewBatch {id: $id}) RETURN b"
_BATCH_ITEMS = """
MATCH (i:ReviewItem {batch_id: $id})
RETURN i.doc_id AS doc_id, i.position AS position, i.state AS state, i.lang AS lang,
       i.n_facts AS n_facts, i.judged_by AS judged_by, i.judged_at AS judged_at
ORDER BY position
"""
# An item is found by its (batch, document) pair, never by a key built from the two.
ITEM = """
MATCH (i:ReviewItem {batch_id: $batch, doc_id: $doc})
OPTIONAL MATCH (d:Document {id: i.doc_id})
RETURN i AS i, d.text AS text
"""
_TOMBSTONE = "MATCH (i:ReviewItem {id: $id}) RETURN i.batch_id"
_ITEM_COUNT = "MATCH (i:ReviewItem {batch_id: $id}) RETURN count(i) AS n"
_JUDGEMENTS = """
MATCH (j:Judgement {item_id: $id})
WHERE j.batch_id = $batch AND j.doc_id = $doc
RETURN j AS j
ORDER BY j.seq
"""
# The document's fact edges now, whichever documents support them (a ref is PREDICATE:key).
CURRENT_EDGES = """
MATCH (u:User {id: $uid})-[f]->(o)
WHERE type(f) IN $types AND o.key IN $keys
RETURN type(f) AS predicate, o.key AS key, f.status AS status
"""


def _props(node: Any) -> dict[str, Any]:
    return dict(node.properties) if hasattr(node, "properties") else dict(node)


def _batch(props: dict[str, Any], size: int, judged: int, forgotten: int) -> Batch:
    data = {k: v for k, v in props.items() if k in Batch.model_fields}
    return Batch(**data | {"size": size, "judged": judged, "forgotten": forgotten})


def list_batches(store: GraphStore) -> list[Batch]:
    return [_batch(_props(r["b"]), int(r["size"] or 0), int(r["judged"] or 0), int(r["forgotten"] or 0))
            for r in store.ro_query(_BATCHES, {"forgotten": FORGOTTEN}).records()]


def get_batch(store: GraphStore, batch_id: str) -> BatchDetail:
    rows = store.ro_query(_BATCH, {"id": batch_id}).rows
    if not rows:
        raise ReviewNotFound(f"no review batch {batch_id!r}")
    found = store.ro_query(_BATCH_ITEMS, {"id": batch_id}).records()
    # a forgotten document's tombstone counts in the size, but has nothing to show
    items = [ItemSummary(**{k: v for k, v in r.items() if v is not None}) for r in found if r["state"] != FORGOTTEN]
    batch = _batch(_props(rows[0][0]), len(found), sum(1 for i in items if i.state == "done"), len(found) - len(items))
    return BatchDetail(batch=batch, items=items)


def gone(batch_id: str, doc_id: str) -> ReviewGone:
    return ReviewGone(f"document {doc_id!r} was removed after review batch {batch_id!r} was sampled "
                      "(forgotten?): the batch is stale for it")


def load_item(store: GraphStore, batch_id: str, doc_id: str) -> tuple[dict[str, Any], str | None]:
    """The item's stored properties and its document's text now (None: the document is gone)."""
    rows = store.ro_query(ITEM, {"batch": batch_id, "doc": doc_id}).records()
    if not rows:
        if not store.ro_query(_BATCH, {"id": batch_id}).rows:
            raise ReviewNotFound(f"no review batch {batch_id!r}")
        if store.ro_query(_TOMBSTONE, {"id": tombstone_id(batch_id, doc_id)}).rows:
            raise gone(batch_id, doc_id)
        raise ReviewNotFound(f"document {doc_id!r} is not in review batch {batch_id!r}")
    return _props(rows[0]["i"]), rows[0]["text"]


def item_facts(props: dict[str, Any]) -> list[ItemFact]:
    return [ItemFact(**f) for f in json.loads(props.get("facts") or "[]")]


def current_status(store: GraphStore, user_id: str, facts: list[ItemFact]) -> dict[str, str | None]:
    """ref → the fact edge's status now; a ref missing from the answer no longer exists."""
    if not facts:
        return {}
    rows = store.ro_query(CURRENT_EDGES, {"uid": user_id, "types": FACT_TYPES,
                                          "keys": sorted({f.key for f in facts})}).records()
    return {f"{r['predicate']}:{r['key']}": r["status"] for r in rows}


def judgements(store: GraphStore, props: dict[str, Any]) -> list[JudgementView]:
    out = []
    key = {"id": props["id"], "batch": props["batch_id"], "doc": props["doc_id"]}
    for r in store.ro_query(_JUDGEMENTS, key).records():
        p = _props(r["j"])
        span = p.get("span")
        out.append(JudgementView(**{k: v for k, v in p.items() if k in JudgementView.model_fields and k != "span"},
                                 span=tuple(span) if span else None))
    return out


def get_item(store: GraphStore, batch_id: str, doc_id: str, *, text: str | None = None,
             props: dict[str, Any] | None = None) -> ItemView:
    if props is None:
        props, text = load_item(store, batch_id, doc_id)
    if text is None:
        raise gone(batch_id, doc_id)
    facts = item_facts(props)
    status = current_status(store, props["user_id"], facts)
    return ItemView(
        batch_id=batch_id, doc_id=doc_id, user_id=props["user_id"], position=int(props["position"]),
        of=int(store.ro_query(_ITEM_COUNT, {"id": batch_id}).scalar() or 0), state=props["state"],
        rev=int(props["rev"]), lang=props.get("lang"), ts=props.get("ts"), text=text,
        sentiment=props.get("engine_sentiment"), facts=facts,
        current_status={f.ref: status.get(f.ref) for f in facts},
        judgements=judgements(store, props), judged_by=props.get("judged_by"),
        judged_at=props.get("judged_at"),
    )
