"""A forgotten user's part of the review loop: their judgements go, their items become tombstones.

A tombstone keeps the batch's size and positions (and lets a stale request be answered 410) but
nothing of the user: no user or document id, text, facts, language, time or reviewer."""

from __future__ import annotations

from engine.review.sample import FORGOTTEN, tombstone_id
from engine.store import GraphStore

_FORGET_JUDGEMENTS = """
MATCH (n:Judgement {user_id: $id})
DETACH DELETE n
"""
_USER_ITEMS = "MATCH (i:ReviewItem {user_id: $id}) RETURN i.batch_id AS batch_id, i.doc_id AS doc_id"
# `SET i = {…}` replaces every property: only what the tombstone keeps is left.
_TOMBSTONES = """
UNWIND $rows AS r
MATCH (i:ReviewItem {batch_id: r.batch_id, doc_id: r.doc_id})
WHERE i.user_id = $id
SET i = {id: r.id, batch_id: r.batch_id, position: i.position, state: $state}
"""


def forget_review(store: GraphStore, user_id: str) -> int:
    """Delete the user's judgements and turn their review items into tombstones; how many items."""
    store.query(_FORGET_JUDGEMENTS, {"id": user_id})
    rows = [{"batch_id": r["batch_id"], "doc_id": r["doc_id"], "id": tombstone_id(r["batch_id"], r["doc_id"])}
            for r in store.ro_query(_USER_ITEMS, {"id": user_id}).records()]
    if rows:
        store.query(_TOMBSTONES, {"rows": rows, "id": user_id, "state": FORGOTTEN})
    return len(rows)
