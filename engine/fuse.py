"""Fusion: resolved facts → graph, with batched UNWIND/MERGE.

Idempotent per (document, fact): every fact edge keeps the ids of all documents that support it,
and a document already counted for an edge is skipped, so re-ingesting changes nothing. Each fact
edge is written by one atomic statement, which is what makes a crash mid-batch safe to retry.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import ContextEdge, DocumentSentiment, iso
from engine.store import GraphStore
from graph_schema import CONTEXT_RELATIONS, Target, checked_identifier

RECENT_EVIDENCE = 10
# Concurrent connections for independent chunks of one write phase.
WORKERS = 2


class DocumentIn(BaseModel):
    doc_id: str
    user_id: str
    ts: datetime
    source: str = "unknown"
    lang: str | None = None
    text: str | None = None
    sentiment: DocumentSentiment | None = None


class TargetRef(BaseModel):
    """The node a fact edge points at: an Entity (QID or NIL key) or a literal Value."""

    label: Target
    key: str
    props: dict[str, Any] = Field(default_factory=dict)


class ResolvedFact(BaseModel):
    doc_id: str
    user_id: str
    ts: datetime
    predicate: str
    target: TargetRef
    confidence: float = Field(ge=0, le=1)
    sentiment: float | None = Field(default=None, ge=-1, le=1)


class FuseReport(BaseModel):
    documents: int = 0
    fact_edges_written: int = 0
    users: list[str] = Field(default_factory=list)
    rejected: list[tuple[str, str]] = Field(default_factory=list)  # (doc_id, reason)


# One row per user: upsert the user, CREATE its new documents (looked up first, see
# existing_documents; one process writes a batch at a time), then fold the document count and
# languages into the user. Grouping by user keeps every user updated once per statement.
_UPSERT_USERS_AND_DOCUMENTS = """
UNWIND $rows AS ur
MERGE (u:User {id: ur.id})
ON CREATE SET u.first_seen = ur.first, u.last_seen = ur.last, u.n_docs = 0, u.langs = []
SET u.first_seen = CASE WHEN ur.first < u.first_seen THEN ur.first ELSE u.first_seen END,
    u.last_seen = CASE WHEN ur.last > u.last_seen THEN ur.last ELSE u.last_seen END,
    u.updated_at = $at
WITH u, ur
UNWIND ur.docs AS r
CREATE (d:Document {id: r.id, user_id: ur.id, ts: r.ts, source: r.source})-[:ABOUT]->(u)
SET d.lang = r.lang, d.text = r.text, d.sentiment = r.sentiment,
    d.sentiment_confidence = r.sentiment_confidence, d.reason = r.reason, d.alerts = r.alerts
WITH u, count(d) AS created, [l IN collect(DISTINCT r.lang) WHERE NOT l IN u.langs] AS langs
SET u.n_docs = u.n_docs + created, u.langs = u.langs + langs
"""

_UPDATE_DOCUMENT_SENTIMENT = """
UNWIND $rows AS r
MATCH (d:Document {id: r.id})
SET d.sentiment = r.sentiment, d.sentiment_confidence = r.sentiment_confidence,
    d.reason = r.reason, d.alerts = r.alerts
"""

_DOCUMENT_OWNERS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})
RETURN d.id AS id, d.user_id AS user_id
"""

_UPSERT_ENTITIES = """
UNWIND $rows AS r
MERGE (e:Entity {key: r.key})
ON CREATE SET e.qid = r.qid, e.label_en = r.label_en, e.label_zh = r.label_zh,
              e.label_es = r.label_es, e.description = r.description
WITH e, r
SET e.label_en = coalesce(e.label_en, r.label_en), e.label_zh = coalesce(e.label_zh, r.label_zh),
    e.label_es = coalesce(e.label_es, r.label_es),
    e.description = coalesce(e.description, r.description)
"""

_UPSERT_VALUES = """
UNWIND $rows AS r
MERGE (v:Value {key: r.key})
ON CREATE SET v.kind = r.kind, v.value = r.value
"""

_CONTEXT_EDGES = """
UNWIND $rows AS r
MATCH (a:Entity {key: r.child})
MATCH (b:Entity {key: r.parent})
MERGE (a)-[:{rel}]->(b)
"""

# One statement per (predicate, target label); the identifiers come from graph_schema's whitelist.
_FACT_EDGES = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})
MATCH (o:{label} {key: r.key})
MERGE (u)-[f:{rel}]->(o)
ON CREATE SET f.docs = [], f.confidence = 0.0, f.first_seen = r.first, f.last_seen = r.last,
              f.valid_from = r.first, f.status = 'active', f.sentiment_sum = 0.0,
              f.sentiment_n = 0
WITH f, r, [i IN r.items WHERE NOT i.doc IN f.docs] AS new
WHERE size(new) > 0
WITH f, r, new, f.docs + [i IN new | i.doc] AS docs,
     reduce(p = 1.0, i IN new | p * (1 - i.conf)) AS miss,
     reduce(m = '', i IN new | CASE WHEN i.ts > m THEN i.ts ELSE m END) AS newest,
     [i IN new WHERE i.sent IS NOT NULL | i.sent] AS sents
WITH f, r, docs, miss, newest, sents,
     f.status = 'superseded' AND newest > coalesce(f.valid_to, f.last_seen) AS revived,
     f.sentiment_sum + reduce(s = 0.0, x IN sents | s + x) AS ssum,
     f.sentiment_n + size(sents) AS sn
SET f.docs = docs,
    f.evidence = docs[-{recent}..],
    f.evidence_count = size(docs),
    f.confidence = 1 - (1 - f.confidence) * miss,
    f.first_seen = CASE WHEN r.first < f.first_seen THEN r.first ELSE f.first_seen END,
    f.last_seen = CASE WHEN newest > f.last_seen THEN newest ELSE f.last_seen END,
    f.valid_from = CASE WHEN revived THEN newest ELSE f.valid_from END,
    f.valid_to = CASE WHEN revived THEN null ELSE f.valid_to END,
    f.status = CASE WHEN revived THEN 'active' ELSE f.status END,
    f.sentiment_sum = ssum,
    f.sentiment_n = sn,
    f.sentiment = CASE WHEN sn > 0 THEN ssum / sn ELSE null END
RETURN count(f) AS written
"""

def fact_edge_statement(predicate: str, label: Target) -> str:
    return (
        _FACT_EDGES.replace("{label}", checked_identifier(label.value))
        .replace("{rel}", checked_identifier(predicate))
        .replace("{recent}", str(RECENT_EVIDENCE))
    )


def context_edge_statement(rel: str) -> str:
    if rel not in CONTEXT_RELATIONS:
        raise ValueError(f"{rel!r} is not a context relation")
    return _CONTEXT_EDGES.replace("{rel}", checked_identifier(rel))


def _chunks(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _document_row(doc: DocumentIn, stamp: Any = iso) -> dict[str, Any]:
    s = doc.sentiment
    return {
        "id": doc.doc_id,
        "ts": stamp(doc.ts),
        "source": doc.source,
        "lang": doc.lang,
        "text": doc.text,
        "sentiment": s.label if s else None,
        "sentiment_confidence": s.confidence if s else None,
        "reason": s.reason if s else None,
        "alerts": list(s.alerts) if s else None,
    }


def existing_documents(store: GraphStore, doc_ids: list[str], batch: int) -> dict[str, str]:
    """Document id → owning user, for the ids already in the graph."""
    owners: dict[str, str] = {}
    for chunk in _chunks(doc_ids, batch):
        for doc_id, owner in store.ro_query(_DOCUMENT_OWNERS, {"ids": chunk}).rows:
            owners[doc_id] = owner
    return owners


def upsert_users_and_documents(
    store: GraphStore, docs: list[DocumentIn], facts: list[ResolvedFact],
    existing: dict[str, str], batch: int,
) -> list[str]:
    """Users with their first/last seen, new documents, and sentiment for re-scored ones."""
    users: dict[str, dict[str, Any]] = {}
    stamp = _iso_cache()

    def seen(uid: str, ts: str) -> dict[str, Any]:
        row = users.get(uid)
        if row is None:
            row = users[uid] = {"id": uid, "first": ts, "last": ts, "docs": []}
        elif ts < row["first"]:
            row["first"] = ts
        elif ts > row["last"]:
            row["last"] = ts
        return row

    rescored = []
    for d in docs:
        row = seen(d.user_id, stamp(d.ts))
        if d.doc_id not in existing:
            row["docs"].append(_document_row(d, stamp))
        elif d.sentiment:
            rescored.append(_document_row(d, stamp))
    for f in facts:
        seen(f.user_id, stamp(f.ts))
    rows = list(users.values())
    # updated_at (wall clock, not evidence time) lets incremental segment refresh find back-filled data
    at = iso(datetime.now(UTC))
    run_chunks(
        store,
        [(_UPSERT_USERS_AND_DOCUMENTS, c) for c in _chunks_by_size(rows, batch)],
        extra={"at": at},
    )
    for chunk in _chunks(rescored, batch):
        store.query(_UPDATE_DOCUMENT_SENTIMENT, {"rows": chunk})
    return sorted(users)


def _chunks_by_size(rows: list[dict[str, Any]], batch: int) -> list[list[dict[str, Any]]]:
    """Chunks of user rows holding about `batch` documents each."""
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        if size >= batch:
            out.append([])
            size = 0
        out[-1].append(row)
        size += 1 + len(row["docs"])
    return [c for c in out if c]


def upsert_targets(store: GraphStore, facts: list[ResolvedFact], batch: int) -> None:
    entities: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[str, Any]] = {}
    for f in facts:
        if f.target.label is Target.ENTITY:
            entities.setdefault(f.target.key, _entity_row(f.target.key, f.target.props))
        else:
            values.setdefault(f.target.key, {"key": f.target.key, **f.target.props})
    write_entities(store, list(entities.values()), batch)
    for chunk in _chunks(list(values.values()), batch):
        store.query(_UPSERT_VALUES, {"rows": chunk})


def _entity_row(key: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "qid": props.get("qid"),
        "label_en": props.get("label_en"),
        "label_zh": props.get("label_zh"),
        "label_es": props.get("label_es"),
        "description": props.get("description"),
    }


def write_entities(store: GraphStore, rows: list[dict[str, Any]], batch: int) -> None:
    for chunk in _chunks(rows, batch):
        store.query(_UPSERT_ENTITIES, {"rows": chunk})


def write_context(
    store: GraphStore,
    edges: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    batch: int,
) -> None:
    """Write Wikidata context edges; `parents` holds the properties of the nodes they point at."""
    write_entities(store, [_entity_row(k, p) for k, p in parents.items()], batch)
    by_rel: dict[str, list[dict[str, str]]] = defaultdict(list)
    for e in edges:
        by_rel[e.rel].append({"child": e.child, "parent": e.parent})
    for rel, rows in by_rel.items():
        statement = context_edge_statement(rel)
        for chunk in _chunks(rows, batch):
            store.query(statement, {"rows": chunk})


def _edge_rows(facts: list[ResolvedFact]) -> dict[tuple[str, Target], list[dict[str, Any]]]:
    """Group evidence per fact edge so each edge appears once per statement."""
    per_edge: dict[tuple[str, Target, str, str], dict[str, Any]] = {}
    docs_of: dict[tuple[str, Target, str, str], set[str]] = defaultdict(set)
    stamp = _iso_cache()
    for f in facts:
        k = (f.predicate, f.target.label, f.user_id, f.target.key)
        if f.doc_id in docs_of[k]:
            continue  # the same document states the same fact twice: one piece of evidence
        docs_of[k].add(f.doc_id)
        ts = stamp(f.ts)
        row = per_edge.get(k)
        if row is None:
            row = per_edge[k] = {"user_id": f.user_id, "key": f.target.key, "first": ts, "last": ts, "items": []}
        elif ts < row["first"]:
            row["first"] = ts
        elif ts > row["last"]:
            row["last"] = ts
        row["items"].append({"doc": f.doc_id, "conf": f.confidence, "ts": ts, "sent": f.sentiment})
    grouped: dict[tuple[str, Target], list[dict[str, Any]]] = defaultdict(list)
    for (pred, label, _, _), row in per_edge.items():
        grouped[(pred, label)].append(row)
    return grouped


def _iso_cache() -> Any:
    cache: dict[datetime, str] = {}

    def stamp(ts: datetime) -> str:
        out = cache.get(ts)
        if out is None:
            out = cache[ts] = iso(ts)
        return out

    return stamp


def run_chunks(
    store: GraphStore,
    jobs: list[tuple[str, list[Any]]],
    *,
    extra: dict[str, Any] | None = None,
    workers: int = WORKERS,
) -> list[Any]:
    """Send independent statements on `workers` connections and return their first cells.

    Only for chunks that touch disjoint edges/nodes: while the database executes one chunk, the
    next one is serialised (the client releases the GIL while it waits on the socket).
    """

    def send(job: tuple[str, list[Any]]) -> Any:
        return store.query(job[0], {"rows": job[1], **(extra or {})}).scalar()

    if workers <= 1 or len(jobs) <= 1:
        return [send(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, jobs))


def write_fact_edges(store: GraphStore, facts: list[ResolvedFact], batch: int) -> int:
    jobs = [
        (fact_edge_statement(pred, label), chunk)
        for (pred, label), rows in _edge_rows(facts).items()
        for chunk in _chunks(rows, batch)
    ]
    return sum(int(n or 0) for n in run_chunks(store, jobs))


def fuse(
    store: GraphStore,
    documents: list[DocumentIn],
    facts: list[ResolvedFact],
    *,
    batch: int = 5000,
) -> FuseReport:
    """Write documents and facts; the caller runs the consistency checks on report.users."""
    report = FuseReport()
    docs = list({d.doc_id: d for d in documents}.values())
    existing = existing_documents(store, [d.doc_id for d in docs], batch)
    owner = {d.doc_id: d.user_id for d in docs}
    clash = {doc_id for doc_id, user in existing.items() if owner.get(doc_id) != user}
    report.rejected = [(d, "doc_id already belongs to another user") for d in sorted(clash)]
    docs = [d for d in docs if d.doc_id not in clash]
    facts = [f for f in facts if f.doc_id not in clash]

    report.users = upsert_users_and_documents(store, docs, facts, existing, batch)
    upsert_targets(store, facts, batch)
    report.fact_edges_written = write_fact_edges(store, facts, batch)
    report.documents = len(docs)
    return report
