"""Fusion: resolved facts → graph, with batched UNWIND/MERGE.

Idempotent per (document, fact): every fact edge keeps the ids of all documents that support it,
and a document already counted for an edge is skipped, so re-ingesting changes nothing. Each fact
edge is written by one atomic statement, which is what makes a crash mid-batch safe to retry.

Bulk speed comes from three choices, each measured with benchmarks/fusion.py: an edge that cannot
exist yet (its user is new, or the edge lookup found nothing) gets its final properties computed
here instead of folded in by Cypher; hot rows travel as positional lists, not maps; and all
statements of a call go through the store's ordered write stream, so row preparation overlaps
with the database executing the previous statement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from engine.contracts import DocumentIn, ResolvedFact, iso
from engine.fuse.entities import Job, chunks, target_jobs
from engine.gc_pause import cyclic_gc_paused
from engine.store import GraphStore
from graph_schema import Target, checked_identifier

RECENT_EVIDENCE = 10


class FuseReport(BaseModel):
    documents: int = 0
    fact_edges_written: int = 0
    users: list[str] = Field(default_factory=list)
    rejected: list[tuple[str, str]] = Field(default_factory=list)  # (doc_id, reason)


# One row per user: a new user gets its properties as computed by the client, an existing one
# folds first/last seen, document count and languages in; then the user's new documents (looked
# up first, see existing_documents) are created. One statement per user group keeps a user's
# document count and its documents in step even if the process dies between statements.
_UPSERT_USERS_AND_DOCUMENTS = """
UNWIND $rows AS ur
MERGE (u:User {id: ur.id})
ON CREATE SET u = ur.props
ON MATCH SET u.first_seen = CASE WHEN ur.props.first_seen < u.first_seen THEN ur.props.first_seen
                                 ELSE u.first_seen END,
             u.last_seen = CASE WHEN ur.props.last_seen > u.last_seen THEN ur.props.last_seen
                                ELSE u.last_seen END,
             u.n_docs = coalesce(u.n_docs, 0) + ur.props.n_docs,
             u.langs = coalesce(u.langs, []) + [l IN ur.props.langs WHERE NOT l IN coalesce(u.langs, [])],
             u.updated_at = ur.props.updated_at
WITH u, ur
UNWIND ur.docs AS r
CREATE (d:Document)-[:ABOUT]->(u)
SET d = r
"""

_EXISTING_USERS = """
UNWIND $ids AS id
MATCH (u:User {id: id})
RETURN u.id AS id
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

# Fact edges take one of two statements per (predicate, target label); the identifiers come from
# graph_schema's whitelist. A new edge gets the properties the client computed from its evidence;
# an existing one folds in the documents it has not counted yet (its `docs` list is what makes
# re-ingesting a document a no-op). Splitting them keeps the common case, a new edge, cheap.
# r = [user, key, docs, confidence, first, last(, sentiment sum, sentiment count)]. Edges without
# sentiment take the statement without the sentiment columns: setting a property to null is not
# free, and most facts carry no sentiment.
_NEW_FACT_EDGES = """
UNWIND $rows AS r
MATCH (u:User {id: r[0]})
MATCH (o:{label} {key: r[1]})
MERGE (u)-[f:{rel}]->(o)
ON CREATE SET f.docs = r[2], f.evidence = r[2][-{recent}..], f.evidence_count = size(r[2]),
              f.confidence = r[3], f.first_seen = r[4], f.valid_from = r[4], f.last_seen = r[5],
              f.status = 'active'{sentiment}
"""
_NEW_EDGE_SENTIMENT = ",\n              f.sentiment_sum = r[6], f.sentiment_n = r[7], f.sentiment = r[6] / r[7]"

# r = [user, key, first, last, [[doc, confidence, ts, sentiment], ...]]
_EXISTING_FACT_EDGES = """
UNWIND $rows AS r
MATCH (u:User {id: r[0]})
MATCH (o:{label} {key: r[1]})
MERGE (u)-[f:{rel}]->(o)
ON CREATE SET f.docs = [], f.confidence = 0.0, f.first_seen = r[2], f.last_seen = r[3],
              f.valid_from = r[2], f.status = 'active'
WITH f, r, [i IN r[4] WHERE NOT i[0] IN f.docs] AS new
WHERE size(new) > 0
WITH f, r, new, f.docs + [i IN new | i[0]] AS docs,
     reduce(p = 1.0, i IN new | p * (1 - i[1])) AS miss,
     reduce(m = '', i IN new | CASE WHEN i[2] > m THEN i[2] ELSE m END) AS newest,
     [i IN new WHERE i[3] IS NOT NULL | i[3]] AS sents
WITH f, r, docs, miss, newest, sents,
     f.status = 'superseded' AND newest > coalesce(f.valid_to, f.last_seen) AS revived,
     coalesce(f.sentiment_sum, 0.0) + reduce(s = 0.0, x IN sents | s + x) AS ssum,
     coalesce(f.sentiment_n, 0) + size(sents) AS sn
SET f.docs = docs,
    f.evidence = docs[-{recent}..],
    f.evidence_count = size(docs),
    f.confidence = 1 - (1 - f.confidence) * miss,
    f.first_seen = CASE WHEN r[2] < f.first_seen THEN r[2] ELSE f.first_seen END,
    f.last_seen = CASE WHEN newest > f.last_seen THEN newest ELSE f.last_seen END,
    f.valid_from = CASE WHEN revived THEN newest ELSE f.valid_from END,
    f.valid_to = CASE WHEN revived THEN null ELSE f.valid_to END,
    f.status = CASE WHEN revived THEN 'active' ELSE f.status END,
    f.sentiment_sum = CASE WHEN sn > 0 THEN ssum ELSE f.sentiment_sum END,
    f.sentiment_n = CASE WHEN sn > 0 THEN sn ELSE f.sentiment_n END,
    f.sentiment = CASE WHEN sn > 0 THEN ssum / sn ELSE f.sentiment END
RETURN count(f) AS written
"""

# r = [user, key]
_EXISTING_FACT_EDGE_KEYS = """
UNWIND $rows AS r
MATCH (u:User {id: r[0]})
MATCH (o:{label} {key: r[1]})
MATCH (u)-[:{rel}]->(o)
RETURN r[0] AS user, r[1] AS key
"""


# r = [user, key, tier]: which extractor tier produced the edge's latest evidence. A statement of
# its own, sent only for extracted facts, so fact lines keep the fast path.
_FACT_EDGE_TIER = """
UNWIND $rows AS r
MATCH (u:User {id: r[0]})-[f:{rel}]->(o:{label} {key: r[1]})
SET f.tier = r[2]
"""


class FactEdgeStatements(NamedTuple):
    new: str
    new_with_sentiment: str
    existing: str
    existing_keys: str
    tier: str


def fact_edge_statements(predicate: str, label: Target) -> FactEdgeStatements:
    def fill(template: str, sentiment: str = "") -> str:
        return (
            template.replace("{label}", checked_identifier(label.value))
            .replace("{rel}", checked_identifier(predicate))
            .replace("{recent}", str(RECENT_EVIDENCE))
            .replace("{sentiment}", sentiment)
        )

    return FactEdgeStatements(
        fill(_NEW_FACT_EDGES), fill(_NEW_FACT_EDGES, _NEW_EDGE_SENTIMENT),
        fill(_EXISTING_FACT_EDGES), fill(_EXISTING_FACT_EDGE_KEYS), fill(_FACT_EDGE_TIER),
    )


def _document_row(doc: DocumentIn, stamp: Any = iso) -> dict[str, Any]:
    """The Document node's properties; absent values are left out (a null property is no property)."""
    row: dict[str, Any] = {"id": doc.doc_id, "user_id": doc.user_id, "ts": stamp(doc.ts), "source": doc.source}
    if doc.lang is not None:
        row["lang"] = doc.lang
    if doc.text is not None:
        row["text"] = doc.text
    s = doc.sentiment
    if s is not None:
        row.update(sentiment=s.label, sentiment_confidence=s.confidence, reason=s.reason, alerts=list(s.alerts))
    return row


def existing_documents(store: GraphStore, doc_ids: list[str], batch: int) -> dict[str, str]:
    """Document id → owning user, for the ids already in the graph."""
    owners: dict[str, str] = {}
    for chunk in chunks(doc_ids, batch):
        for doc_id, owner in store.ro_query(_DOCUMENT_OWNERS, {"ids": chunk}).rows:
            owners[doc_id] = owner
    return owners


def existing_users(store: GraphStore, user_ids: list[str], batch: int) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(user_ids, batch):
        found.update(row[0] for row in store.ro_query(_EXISTING_USERS, {"ids": chunk}).rows)
    return found




def user_and_document_jobs(
    docs: list[DocumentIn], facts: list[ResolvedFact], existing: dict[str, str], batch: int,
    stamp: Callable[[datetime], str],
) -> Iterator[Job]:
    """Users with their first/last seen and new documents; sentiment for re-scored documents."""
    # updated_at (wall clock, not evidence time) lets incremental segment refresh find back-filled data
    at = iso(datetime.now(UTC))
    users: dict[str, dict[str, Any]] = {}

    def seen(uid: str, ts: str) -> dict[str, Any]:
        row = users.get(uid)
        if row is None:
            props = {"id": uid, "first_seen": ts, "last_seen": ts, "n_docs": 0, "langs": [], "updated_at": at}
            row = users[uid] = {"id": uid, "props": props, "docs": []}
        else:
            props = row["props"]
            if ts < props["first_seen"]:
                props["first_seen"] = ts
            elif ts > props["last_seen"]:
                props["last_seen"] = ts
        return row

    rescored = []
    for d in docs:
        row = seen(d.user_id, stamp(d.ts))
        if d.doc_id not in existing:
            row["docs"].append(_document_row(d, stamp))
            props = row["props"]
            props["n_docs"] += 1
            if d.lang and d.lang not in props["langs"]:
                props["langs"].append(d.lang)
        elif d.sentiment:
            rescored.append(_document_row(d, stamp))
    for f in facts:
        seen(f.user_id, stamp(f.ts))
    for chunk in _chunks_by_size(list(users.values()), batch):
        yield _UPSERT_USERS_AND_DOCUMENTS, {"rows": chunk}
    for chunk in chunks(rescored, batch):
        yield _UPDATE_DOCUMENT_SENTIMENT, {"rows": chunk}


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


class _Edge:
    """The evidence one batch holds for one fact edge: (doc, confidence, ts, sentiment) per document."""

    __slots__ = ("user", "key", "first", "last", "items")

    def __init__(self, user: str, key: str, ts: str) -> None:
        self.user, self.key, self.first, self.last = user, key, ts, ts
        self.items: list[tuple[str, float, str, float | None]] = []

    def add(self, doc: str, conf: float, ts: str, sent: float | None) -> None:
        if any(i[0] == doc for i in self.items):
            return  # the same document states the same fact twice: one piece of evidence
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        self.items.append((doc, conf, ts, sent))

    def new_row(self) -> list[Any]:
        """[user, key, docs, confidence, first, last(, sentiment sum, sentiment count)] of a new edge.

        Positional, not a map: new edges are most of a bulk load and this halves the payload.
        """
        items = self.items
        miss = 1.0
        for i in items:
            miss *= 1 - i[1]
        row = [self.user, self.key, [i[0] for i in items], 1 - miss, self.first, self.last]
        sents = [i[3] for i in items if i[3] is not None]
        if sents:
            row += [sum(sents), len(sents)]
        return row

    def update_row(self) -> list[Any]:
        """[user, key, first, last, [[doc, confidence, ts, sentiment], ...]] for an existing edge."""
        return [self.user, self.key, self.first, self.last, self.items]


def group_edges(
    facts: list[ResolvedFact], stamp: Callable[[datetime], str] | None = None
) -> dict[tuple[str, Target], dict[tuple[str, str], _Edge]]:
    """Evidence per fact edge, grouped by (predicate, target label) so each edge is written once."""
    grouped: dict[tuple[str, Target], dict[tuple[str, str], _Edge]] = defaultdict(dict)
    stamp = stamp or _iso_cache()
    for f in facts:
        t = f.target
        edges = grouped[(f.predicate, t.label)]
        ts = stamp(f.ts)
        edge = edges.get((f.user_id, t.key))
        if edge is None:
            edge = edges[(f.user_id, t.key)] = _Edge(f.user_id, t.key, ts)
        edge.add(f.doc_id, f.confidence, ts, f.sentiment)
    return grouped


def _iso_cache() -> Callable[[datetime], str]:
    cache: dict[datetime, str] = {}

    def stamp(ts: datetime) -> str:
        out = cache.get(ts)
        if out is None:
            out = cache[ts] = iso(ts)
        return out

    return stamp


def existing_edge_keys(
    store: GraphStore, statement: str, edges: list[_Edge], batch: int
) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for chunk in chunks([[e.user, e.key] for e in edges], batch):
        found.update((u, k) for u, k in store.ro_query(statement, {"rows": chunk}).rows)
    return found


def fact_edge_jobs(
    store: GraphStore, facts: list[ResolvedFact], known_users: set[str], batch: int,
    stamp: Callable[[datetime], str], report: FuseReport,
) -> Iterator[Job]:
    """Fact edges; only edges of users that were in the graph before this batch can exist already.

    New edges are counted into report.fact_edges_written here, updated ones by their statement.
    """
    for (pred, label), edges in group_edges(facts, stamp).items():
        statements = fact_edge_statements(pred, label)
        maybe = [e for e in edges.values() if e.user in known_users]
        present = existing_edge_keys(store, statements.existing_keys, maybe, batch) if maybe else set()
        new = [e.new_row() for k, e in edges.items() if k not in present]
        report.fact_edges_written += len(new)
        for chunk in chunks([r for r in new if len(r) == 6], batch):
            yield statements.new, {"rows": chunk}
        for chunk in chunks([r for r in new if len(r) > 6], batch):
            yield statements.new_with_sentiment, {"rows": chunk}
        for chunk in chunks([edges[k].update_row() for k in present], batch):
            yield statements.existing, {"rows": chunk}
        tiers = {(f.user_id, f.target.key): f.tier for f in facts
                 if f.tier and f.predicate == pred and f.target.label is label}
        for chunk in chunks([[u, k, t] for (u, k), t in tiers.items()], batch):
            yield statements.tier, {"rows": chunk}


def fuse(
    store: GraphStore,
    documents: list[DocumentIn],
    facts: list[ResolvedFact],
    *,
    batch: int = 5000,
) -> FuseReport:
    """Write documents and facts; the caller runs the consistency checks on report.users."""
    with cyclic_gc_paused():
        return _fuse(store, documents, facts, batch)


def _fuse(store: GraphStore, documents: list[DocumentIn], facts: list[ResolvedFact], batch: int) -> FuseReport:
    report = FuseReport()
    docs = list({d.doc_id: d for d in documents}.values())
    existing = existing_documents(store, [d.doc_id for d in docs], batch)
    owner = {d.doc_id: d.user_id for d in docs}
    clash = {doc_id for doc_id, user in existing.items() if owner.get(doc_id) != user}
    report.rejected = [(d, "doc_id already belongs to another user") for d in sorted(clash)]
    docs = [d for d in docs if d.doc_id not in clash]
    facts = [f for f in facts if f.doc_id not in clash]

    report.users = sorted({d.user_id for d in docs} | {f.user_id for f in facts})
    known_users = existing_users(store, report.users, batch)
    stamp = _iso_cache()  # one ISO string per distinct timestamp for the whole call

    def jobs() -> Iterator[Job]:
        # in dependency order: fact edges need their user and target nodes
        yield from user_and_document_jobs(docs, facts, existing, batch, stamp)
        yield from target_jobs(facts, batch)
        yield from fact_edge_jobs(store, facts, known_users, batch, stamp, report)

    results = store.write_stream(jobs())
    report.fact_edges_written += sum(int(r.scalar() or 0) for r in results)
    report.documents = len(docs)
    return report
