"""Users: search, persona with evidence documents, the explorer graph, forget."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

import engine.api.edge  # noqa: F401 - registers the {…:pid} path convertor before the routes
from engine.api.deps import get_options, get_settings, get_store
from engine.api.graphview import GraphBuilder, GraphPayload
from engine.api.security import require_token
from engine.config import ApiSettings, Settings
from engine.persona import ConflictView, FactView, UserNotFound, get_persona
from engine.store import GraphStore
from graph_schema import CONTEXT_RELATIONS, PREDICATES

router = APIRouter(tags=["users"])

# {user_id:pid}: an id with a "/" is reached as %2F (engine.api.edge); NUL is refused before routing.
UserId = Annotated[str, Path(min_length=1, max_length=128, description="User id (a `/` in it as %2F)")]


# --- models ---------------------------------------------------------------------------------


class UserHit(BaseModel):
    id: str
    n_docs: int | None = None
    last_seen: str | None = None
    match: str = Field(description="'id' or 'entity' (a fact object's label matched)")
    via: str | None = Field(default=None, description="the matching entity or value, for 'entity'")
    predicate: str | None = None


class UserSearch(BaseModel):
    query: str
    users: list[UserHit]


class EvidenceDocument(BaseModel):
    id: str
    ts: str | None = None
    source: str | None = None
    lang: str | None = None
    text: str | None = Field(default=None, description="redacted text as stored (None if not kept)")
    sentiment: Any = None
    sentiment_confidence: float | None = None
    reason: str | None = None
    alerts: list[str] | None = None


class FactDetail(FactView):
    evidence_documents: list[EvidenceDocument] = Field(default_factory=list)


class Membership(BaseModel):
    segment_id: str
    name: str | None = None
    reason: str | None = None
    confidence: float | None = None
    since: str | None = None


class PersonaDetail(BaseModel):
    user: dict[str, Any]
    facts: list[FactDetail]
    conflicts: list[ConflictView]
    segments: list[Membership]


class ForgetResult(BaseModel):
    user_id: str
    removed: bool
    orphan_entities_checked: int
    files: list[str] = Field(default_factory=list, description="files under the home still holding the user")
    residual: list[str] = Field(
        default_factory=list,
        description="what still holds the user after forget (files not listed above, database keys); should be empty",
    )


# --- queries ----------------------------------------------------------------------------------

SEARCH_ALL = """
MATCH (u:User)
RETURN u.id AS id, u.n_docs AS n_docs, u.last_seen AS last_seen
ORDER BY id
LIMIT $limit
"""
SEARCH_ID = """
MATCH (u:User)
WHERE u.id = $q OR toLower(u.id) CONTAINS $ql
RETURN u.id AS id, u.n_docs AS n_docs, u.last_seen AS last_seen
ORDER BY id
LIMIT $limit
"""
# Entities first (far fewer than users), then who points at them.
SEARCH_ENTITY = """
MATCH (e:Entity)
WHERE e.qid = $q OR toLower(e.label_en) CONTAINS $ql OR e.label_zh CONTAINS $q
   OR toLower(e.label_es) CONTAINS $ql
WITH e
LIMIT $entities
MATCH (u:User)-[f]->(e)
WHERE type(f) IN $types
RETURN u.id AS id, u.n_docs AS n_docs, u.last_seen AS last_seen,
       coalesce(e.label_en, e.label_zh, e.label_es, e.key) AS via, type(f) AS predicate
LIMIT $limit
"""
SEARCH_VALUE = """
MATCH (v:Value)
WHERE toLower(v.value) CONTAINS $ql
WITH v
LIMIT $entities
MATCH (u:User)-[f]->(v)
WHERE type(f) IN $types
RETURN u.id AS id, u.n_docs AS n_docs, u.last_seen AS last_seen, v.kind + ': ' + v.value AS via,
       type(f) AS predicate
LIMIT $limit
"""
EVIDENCE_DOCS = """
UNWIND $ids AS did
MATCH (d:Document {id: did})
WHERE d.user_id = $uid
RETURN d.id AS id, d.ts AS ts, d.source AS source, d.lang AS lang, d.text AS text,
       d.sentiment AS sentiment, d.sentiment_confidence AS sentiment_confidence,
       d.reason AS reason, d.alerts AS alerts
"""
MEMBERSHIPS = """
MATCH (u:User {id: $id})-[m:MEMBER_OF]->(s:Segment)
WHERE m.left_at IS NULL
RETURN s.id AS segment_id, s.name AS name, m.reason AS reason, m.confidence AS confidence,
       m.since AS since
ORDER BY segment_id
"""
GRAPH_USER = "MATCH (u:User {id: $id}) RETURN u"
GRAPH_FACTS = """
MATCH (u:User {id: $id})-[f]->(o)
WHERE type(f) IN $types
RETURN f, o
"""
# Wikidata context one hop up from each fact object, capped per entity so hubs stay readable.
GRAPH_CONTEXT = """
MATCH (u:User {id: $id})-[f]->(o:Entity)
WHERE type(f) IN $types
WITH DISTINCT o
MATCH (o)-[c]->(p:Entity)
WHERE type(c) IN $ctx
WITH o, collect(c) AS cs, collect(p) AS ps
RETURN cs[0..$k] AS cs, ps[0..$k] AS ps
"""
GRAPH_SEGMENTS = """
MATCH (u:User {id: $id})-[m:MEMBER_OF]->(s:Segment)
WHERE m.left_at IS NULL
RETURN m, s
"""

STATEMENTS = (SEARCH_ALL, SEARCH_ID, SEARCH_ENTITY, SEARCH_VALUE, EVIDENCE_DOCS, MEMBERSHIPS,
              GRAPH_USER, GRAPH_FACTS, GRAPH_CONTEXT, GRAPH_SEGMENTS)


def _fact_types() -> list[str]:
    return list(PREDICATES)


def search_users(store: GraphStore, q: str, limit: int) -> list[UserHit]:
    q = q.strip()
    if not q:
        return [UserHit(match="id", **r) for r in store.ro_query(SEARCH_ALL, {"limit": limit}).records()]
    params = {"q": q, "ql": q.lower(), "limit": limit, "entities": 50, "types": _fact_types()}
    hits: dict[str, UserHit] = {}
    for r in store.ro_query(SEARCH_ID, params).records():
        hits[r["id"]] = UserHit(match="id", **r)
    for statement in (SEARCH_ENTITY, SEARCH_VALUE):
        if len(hits) >= limit:
            break
        for r in store.ro_query(statement, params).records():
            hits.setdefault(r["id"], UserHit(match="entity", **r))
    return list(hits.values())[:limit]


def _evidence(store: GraphStore, user_id: str, facts: list[FactView]) -> dict[str, EvidenceDocument]:
    ids = sorted({doc for f in facts for doc in f.evidence})
    if not ids:
        return {}
    rows = store.ro_query(EVIDENCE_DOCS, {"ids": ids, "uid": user_id}).records()
    return {r["id"]: EvidenceDocument(**{k: v for k, v in r.items() if v is not None}) for r in rows}


def persona_detail(store: GraphStore, user_id: str) -> PersonaDetail:
    persona = get_persona(store, user_id)
    docs = _evidence(store, user_id, persona.facts)
    facts = [
        FactDetail(**f.model_dump(), evidence_documents=[docs[d] for d in f.evidence if d in docs])
        for f in persona.facts
    ]
    segments = [Membership(**r) for r in store.ro_query(MEMBERSHIPS, {"id": user_id}).records()]
    return PersonaDetail(user=persona.user, facts=facts, conflicts=persona.conflicts, segments=segments)


def persona_graph(store: GraphStore, user_id: str, context_per_entity: int) -> GraphPayload:
    user = store.ro_query(GRAPH_USER, {"id": user_id}).rows
    if not user:
        raise UserNotFound(f"no user with id {user_id!r}")
    builder = GraphBuilder()
    builder.add_rows(user)
    params = {"id": user_id, "types": _fact_types()}
    builder.add_rows(store.ro_query(GRAPH_FACTS, params).rows)
    if context_per_entity > 0:
        ctx = {**params, "ctx": list(CONTEXT_RELATIONS), "k": context_per_entity}
        builder.add_rows(store.ro_query(GRAPH_CONTEXT, ctx).rows)
    builder.add_rows(store.ro_query(GRAPH_SEGMENTS, {"id": user_id}).rows)
    return builder.payload()


# --- routes -----------------------------------------------------------------------------------


def _not_found(exc: UserNotFound) -> HTTPException:
    return HTTPException(404, str(exc))


@router.get("/users", response_model=UserSearch, summary="Search users by id or by a fact object's label")
def users_search(
    store: Annotated[GraphStore, Depends(get_store)],
    q: Annotated[str, Query(max_length=200, description="id fragment, entity label (en/zh/es) or QID")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserSearch:
    return UserSearch(query=q, users=search_users(store, q, limit))


@router.get("/users/{user_id:pid}", response_model=PersonaDetail,
            summary="A persona: facts with confidence, status, validity and evidence documents")
def user_detail(user_id: UserId, store: Annotated[GraphStore, Depends(get_store)]) -> PersonaDetail:
    try:
        return persona_detail(store, user_id)
    except UserNotFound as exc:
        raise _not_found(exc) from None


@router.get("/users/{user_id:pid}/graph", response_model=GraphPayload,
            summary="Nodes and edges of a persona with Wikidata context one hop up")
def user_graph(
    user_id: UserId,
    store: Annotated[GraphStore, Depends(get_store)],
    options: Annotated[ApiSettings, Depends(get_options)],
) -> GraphPayload:
    try:
        return persona_graph(store, user_id, options.graph_context_per_entity)
    except UserNotFound as exc:
        raise _not_found(exc) from None


@router.delete("/users/{user_id:pid}", response_model=ForgetResult, dependencies=[Depends(require_token)],
               summary="Forget a user (needs the bearer token)")
def user_forget(
    user_id: UserId, store: Annotated[GraphStore, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ForgetResult:
    """The same forget as the CLI's: graph, the database's files, the extraction cache; files under
    the home that hold the user are listed (`files`), not deleted."""
    from engine.distributed import job_records
    from engine.export import known_salts
    from engine.forget import forget_everywhere

    salts = known_salts(settings.home, settings.export.salt)
    report = forget_everywhere(store, user_id, home=settings.home, cache_path=settings.extraction_cache_path,
                               salts=salts, jobs=job_records(settings))
    if not report.user_id_found:
        raise HTTPException(404, f"no user with id {user_id!r}")
    return ForgetResult(user_id=user_id, removed=True, orphan_entities_checked=report.graph.orphan_entities_checked,
                        files=[h.path for h in report.files], residual=report.leftovers())

