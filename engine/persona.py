"""Reading one persona back (facts, evidence, conflicts) and forgetting a user."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from engine.store import GraphStore
from graph_schema import PREDICATES


class FactView(BaseModel):
    predicate: str
    target_label: str
    key: str
    qid: str | None = None
    label: str | None = None
    status: str | None = None
    status_reason: str | None = None
    confidence: float | None = None
    evidence_count: int | None = None
    evidence: list[str] = Field(default_factory=list)
    first_seen: str | None = None
    last_seen: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    sentiment: float | None = None
    tier: str | None = None


class ConflictView(BaseModel):
    id: str
    rule: str
    ts: str | None = None
    resolution: str
    detail: str | None = None
    winner: str | None = None


class PersonaView(BaseModel):
    user: dict[str, Any]
    facts: list[FactView]
    conflicts: list[ConflictView]


class UserNotFound(LookupError):
    pass


_USER = "MATCH (u:User {id: $id}) RETURN u"

_FACTS = """
MATCH (u:User {id: $id})-[f]->(o)
WHERE type(f) IN $types
RETURN type(f) AS predicate, labels(o)[0] AS target_label, o.key AS key, o.qid AS qid,
       coalesce(o.label_en, o.label_zh, o.label_es, o.value, o.key) AS label,
       f.status AS status, f.status_reason AS status_reason, f.confidence AS confidence,
       f.evidence_count AS evidence_count, f.evidence AS evidence, f.first_seen AS first_seen,
       f.last_seen AS last_seen, f.valid_from AS valid_from, f.valid_to AS valid_to,
       f.sentiment AS sentiment, f.tier AS tier
ORDER BY predicate, confidence DESC
"""

_CONFLICTS = """
MATCH (u:User {id: $id})-[:HAS_CONFLICT]->(c:Conflict)
RETURN c.id AS id, c.rule AS rule, c.ts AS ts, c.resolution AS resolution, c.detail AS detail,
       c.winner AS winner
ORDER BY ts DESC
"""


def get_conflicts(store: GraphStore, user_id: str) -> list[ConflictView]:
    return [ConflictView(**r) for r in store.ro_query(_CONFLICTS, {"id": user_id}).records()]


def get_persona(store: GraphStore, user_id: str) -> PersonaView:
    rows = store.ro_query(_USER, {"id": user_id}).rows
    if not rows:
        raise UserNotFound(f"no user with id {user_id!r}")
    facts = store.ro_query(_FACTS, {"id": user_id, "types": list(PREDICATES)}).records()
    return PersonaView(
        user=dict(rows[0][0].properties),
        facts=[FactView(**{k: v for k, v in r.items() if v is not None}) for r in facts],
        conflicts=get_conflicts(store, user_id),
    )


_FORGET_NIL_CANDIDATES = """
MATCH (u:User {id: $id})-[]->(e:Entity)
WHERE e.qid IS NULL
RETURN DISTINCT e.key AS key
"""
_FORGET_DOCUMENTS = """
MATCH (d:Document)-[:ABOUT]->(u:User {id: $id})
DETACH DELETE d
"""
_FORGET_DOCUMENTS_BY_OWNER = """
MATCH (d:Document {user_id: $id})
DETACH DELETE d
"""
_FORGET_CONFLICTS = """
MATCH (c:Conflict {user_id: $id})
DETACH DELETE c
"""
_FORGET_USER = """
MATCH (u:User {id: $id})
DETACH DELETE u
RETURN count(u) AS n
"""
# NIL entities come from this user's own words; once nobody points at them they go too.
_FORGET_ORPHAN_NIL = """
UNWIND $keys AS k
MATCH (e:Entity {key: k})
WHERE NOT ()-->(e)
DETACH DELETE e
"""


class ForgetReport(BaseModel):
    user_removed: bool
    orphan_entities_checked: int


def forget_user(store: GraphStore, user_id: str) -> ForgetReport:
    """Remove the user, its fact edges, documents, conflicts, memberships and review judgements.
    Shared entities (and review batches, minus this user's documents) stay."""
    nil_keys = [r[0] for r in store.ro_query(_FORGET_NIL_CANDIDATES, {"id": user_id}).rows]
    store.query(_FORGET_DOCUMENTS, {"id": user_id})
    store.query(_FORGET_DOCUMENTS_BY_OWNER, {"id": user_id})
    store.query(_FORGET_CONFLICTS, {"id": user_id})
    from engine.review.forget import forget_review  # judgements go, review items become tombstones

    forget_review(store, user_id)
    removed = store.query(_FORGET_USER, {"id": user_id}).scalar() or 0
    if nil_keys:
        store.query(_FORGET_ORPHAN_NIL, {"keys": nil_keys})
    return ForgetReport(user_removed=bool(removed), orphan_entities_checked=len(nil_keys))
