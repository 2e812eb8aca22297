"""Fusion: resolved facts → graph, with batched UNWIND statements.

Idempotent per (document, fact): every fact edge keeps the ids of all documents that support it,
and a document already counted for an edge is skipped, so re-ingesting changes nothing. Each fact
edge is written by one atomic statement, which is what makes a crash mid-batch safe to retry.

A call writes in two streams. The first upserts the users (with their new documents) and the
target nodes and returns their internal node ids; the second writes the fact edges, seeking both
ends by node id instead of by two index lookups per edge. Bulk speed comes from the choices below,
each measured with benchmarks/fusion.py: an edge that cannot exist yet (its user is new, or the
edge lookup found nothing) is created whole with the properties computed here instead of folded
in by Cypher; hot rows travel as positional lists, not maps; and each stream goes through the
store's ordered write stream, so row preparation overlaps with the database executing the
previous statement."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from engine.contracts import DocumentIn, ResolvedFact, iso
from engine.fuse.entities import Job, chunks, target_jobs, target_row
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
# document count and its documents in step even if the process dies between statements. Each
# user's node id comes back for the fact edge statements. A property given as null in CREATE is
# not stored, as with absent keys before.
# ur = [id, first_seen, last_seen, n_docs, langs, updated_at, docs]; a document is
# [id, ts, source, lang, text, sentiment, sentiment_confidence, reason, alerts].
_UPSERT_USERS_AND_DOCUMENTS = """
UNWIND $rows AS ur
MERGE (u:User {id: ur[0]})
ON CREATE SET u.first_seen = ur[1], u.last_seen = ur[2], u.n_docs = ur[3], u.langs = ur[4],
              u.updated_at = ur[5]
ON MATCH SET u.first_seen = CASE WHEN ur[1] < u.first_seen THEN ur[1] ELSE u.first_seen END,
             u.last_seen = CASE WHEN ur[2] > u.last_seen THEN ur[2] ELSE u.last_seen END,
             u.n_docs = coalesce(u.n_docs, 0) + ur[3],
             u.langs = coalesce(u.langs, []) + [l IN ur[4] WHERE NOT l IN coalesce(u.langs, [])],
             u.updated_at = ur[5]
FOREACH (r IN ur[6] |
    CREATE (:Document {id: r[0], user_id: ur[0], ts: r[1], source: r[2], lang: r[3], text: r[4],
                       sentiment: r[5], sentiment_confidence: r[6], reason: r[7], alerts: r[8]})-[:ABOUT]->(u))
RETURN ur[0] AS id, id(u) AS node
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
# graph_schema's whitelist. Both ends are sought by the node ids the upserts returned: the id goes
# through a WITH alias because FalkorDB plans `id(u) = r[0]` as a scan of all nodes, not a seek.
# A new edge is created whole with the properties the client computed from its evidence; an
# existing one folds in the documents it has not counted yet (its `docs` list is what makes
# re-ingesting a document a no-op). Splitting them keeps the common case, a new edge, cheap.
_SEEK_ENDS = """
UNWIND $rows AS r
WITH r, r[0] AS un, r[1] AS tn
MATCH (u:User) WHERE id(u) = un
MATCH (o:{label}) WHERE id(o) = tn"""

# r = [user node, target node, docs, confidence, first, last(, sentiment sum, sentiment count)].
# CREATE with the properties in the pattern takes about 0.7 of the server time of MERGE ... ON
# CREATE SET (the 176k edges of benchmarks/fusion.py's data, both ends sought by id: 1.3 vs 1.95 s
# of server CPU). The NOT guard keeps the old MERGE's effect when the edge exists after all
# (written by another writer since the lookup): it is left alone, never doubled. On FalkorDB the guard and the
# CREATE are atomic (the graph runs one write query at a time); writers of one user are kept
# apart anyway (engine/distributed's partition locks), which the lookup-then-write relies on.
# Edges without sentiment take the statement without the sentiment columns.
_NEW_FACT_EDGES = _SEEK_ENDS + """
WITH u, o, r WHERE NOT (u)-[:{rel}]->(o)
CREATE (u)-[:{rel} {docs: r[2], evidence: r[2][-{recent}..], evidence_count: size(r[2]),
                    confidence: r[3], first_seen: r[4], valid_from: r[4], last_seen: r[5],
                    status: 'active'{sentiment}}]->(o)
"""
_NEW_EDGE_SENTIMENT = ",\n                    sentiment_sum: r[6], sentiment_n: r[7], sentiment: r[6] / r[7]"

# r = [user node, target node, first, last, [[doc, confidence, ts, sentiment], ...]]
_EXISTING_FACT_EDGES = _SEEK_ENDS + """
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

# r = [user node, target node]: the pairs already joined by the edge
_EXISTING_FACT_EDGE_KEYS = _SEEK_ENDS + """
MATCH (u)-[:{rel}]->(o)
RETURN un AS user, tn AS target
"""


# r = [user node, target node, tier]: which extractor tier produced the edge's latest evidence. A
# statement of its own, sent only for extracted facts, so fact lines keep the fast path.
_FACT_EDGE_TIER = _SEEK_ENDS + """
MATCH (u)-[f:{rel}]->(o)
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


def _new_document(doc: DocumentIn, ts: str) -> list[Any]:
    """A new document for _UPSERT_USERS_AND_DOCUMENTS; nulls are the properties it does not have."""
    s = doc.sentiment
    if s is None:
        return [doc.doc_id, ts, doc.source, doc.lang, doc.text]
    return [doc.doc_id, ts, doc.source, doc.lang, doc.text, s.label, s.confidence, s.reason, list(s.alerts)]


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
    docs: list[DocumentIn], spans: dict[str, list[str]], existing: dict[str, str], batch: int,
    stamps: IsoStamps,
) -> Iterator[Job]:
    """Users with their first/last seen and new documents; sentiment for re-scored documents.

    `spans`: user → [first, last] timestamp of the batch's facts (FactPlan.spans).
    """
    # updated_at (wall clock, not evidence time) lets incremental segment refresh find back-filled data
    at = iso(datetime.now(UTC))
    # [id, first_seen, last_seen, n_docs, langs, updated_at, docs], as _UPSERT_USERS_AND_DOCUMENTS reads it
    users: dict[str, list[Any]] = {uid: [uid, first, last, 0, [], at, []] for uid, (first, last) in spans.items()}
    rescored = []
    for d in docs:
        ts = stamps[d.ts]
        row = users.get(d.user_id)
        if row is None:
            row = users[d.user_id] = [d.user_id, ts, ts, 0, [], at, []]
        elif ts < row[1]:
            row[1] = ts
        elif ts > row[2]:
            row[2] = ts
        if d.doc_id not in existing:
            row[6].append(_new_document(d, ts))
            row[3] += 1
            if d.lang and d.lang not in row[4]:
                row[4].append(d.lang)
        elif d.sentiment:
            rescored.append(_document_row(d, stamps))
    for chunk in _chunks_by_size(list(users.values()), batch):
        yield _UPSERT_USERS_AND_DOCUMENTS, {"rows": chunk}
    for chunk in chunks(rescored, batch):
        yield _UPDATE_DOCUMENT_SENTIMENT, {"rows": chunk}


def _chunks_by_size(rows: list[list[Any]], batch: int) -> list[list[list[Any]]]:
    """Chunks of user rows holding about `batch` documents each."""
    out: list[list[list[Any]]] = [[]]
    size = 0
    for row in rows:
        if size >= batch:
            out.append([])
            size = 0
        out[-1].append(row)
        size += 1 + len(row[6])
    return [c for c in out if c]


class IsoStamps(dict[datetime, str]):
    """One ISO string per distinct timestamp for a whole call: `stamps[ts]` (a plain dict lookup
    once seen) or `stamps(ts)`."""

    def __missing__(self, ts: datetime) -> str:
        out = self[ts] = iso(ts)
        return out

    def __call__(self, ts: datetime) -> str:
        return self[ts]


class _Edge:
    """The evidence one batch holds for one fact edge: (doc, confidence, ts, sentiment) per document,
    and the tier of the last of its facts that names one."""

    __slots__ = ("user", "key", "first", "last", "items", "tier")

    def __init__(self, user: str, key: str, item: tuple[str, float, str, float | None]) -> None:
        self.user, self.key, self.first, self.last = user, key, item[2], item[2]
        self.items = [item]
        self.tier: str | None = None

    def add(self, doc: str, conf: float, ts: str, sent: float | None) -> None:
        if any(i[0] == doc for i in self.items):
            return  # the same document states the same fact twice: one piece of evidence
        if ts < self.first:
            self.first = ts
        elif ts > self.last:
            self.last = ts
        self.items.append((doc, conf, ts, sent))

    def new_row(self, user: int, target: int) -> list[Any]:
        """[user node, target node, docs, confidence, first, last(, sentiment sum, sentiment count)]
        of a new edge.

        Positional, not a map: new edges are most of a bulk load and this halves the payload.
        """
        items = self.items
        if len(items) == 1:  # most edges: the same numbers as the loop below, without it
            doc, conf, ts, sent = items[0]
            if sent is None:
                return [user, target, [doc], 1 - (1 - conf), ts, ts]
            return [user, target, [doc], 1 - (1 - conf), ts, ts, 0 + sent, 1]  # 0 + as sum() does (-0.0)
        miss = 1.0
        for i in items:
            miss *= 1 - i[1]
        row = [user, target, [i[0] for i in items], 1 - miss, self.first, self.last]
        sents = [i[3] for i in items if i[3] is not None]
        if sents:
            row += [sum(sents), len(sents)]
        return row

    def update_row(self, user: int, target: int) -> list[Any]:
        """[user node, target node, first, last, [[doc, confidence, ts, sentiment], ...]] for an existing edge."""
        return [user, target, self.first, self.last, self.items]


class FactPlan:
    """What one pass over a batch's facts yields: the evidence per fact edge, grouped by (predicate,
    target label) so each edge is written once; the target nodes' rows by label and key; and each
    user's first and last fact timestamp."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, Target], dict[tuple[str, str], _Edge]] = defaultdict(dict)
        self.targets: dict[Target, dict[str, dict[str, Any]]] = {label: {} for label in Target}
        self.spans: dict[str, list[str]] = {}


def plan_facts(facts: list[ResolvedFact], stamps: IsoStamps | None = None) -> FactPlan:
    plan = FactPlan()
    stamps = IsoStamps() if stamps is None else stamps
    grouped, spans, targets = plan.edges, plan.spans, plan.targets
    for f in facts:
        t = f.target
        ts = stamps[f.ts]
        user = f.user_id
        span = spans.get(user)
        if span is None:
            spans[user] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
        key = t.key
        edges = grouped[(f.predicate, t.label)]
        edge = edges.get((user, key))
        if edge is None:
            edge = edges[(user, key)] = _Edge(user, key, (f.doc_id, f.confidence, ts, f.sentiment))
            rows = targets[t.label]
            if key not in rows:
                rows[key] = target_row(t)
        else:
            edge.add(f.doc_id, f.confidence, ts, f.sentiment)
        if f.tier:
            edge.tier = f.tier
    return plan


def existing_edge_keys(
    store: GraphStore, statement: str, pairs: list[list[int]], batch: int
) -> set[tuple[int, int]]:
    """The (user node, target node) pairs already joined by the statement's edge."""
    found: set[tuple[int, int]] = set()
    for chunk in chunks(pairs, batch):
        found.update((u, t) for u, t in store.ro_query(statement, {"rows": chunk}).rows)
    return found


class NodeIds:
    """Node ids the upserts of one call returned: users by id, targets by label and key."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.targets: dict[Target, dict[str, int]] = {label: {} for label in Target}

    def add_users(self, rows: list[list[Any]]) -> None:
        self.users.update((uid, int(node)) for uid, node in rows)

    def add_targets(self, label: Target, rows: list[list[Any]]) -> None:
        self.targets[label].update((key, int(node)) for key, node in rows)


def fact_edge_jobs(
    store: GraphStore, plan: FactPlan, nodes: NodeIds, known_users: set[str], batch: int, report: FuseReport,
) -> Iterator[Job]:
    """Fact edges; only edges of users that were in the graph before this batch can exist already.

    New edges are counted into report.fact_edges_written here, updated ones by their statement.
    """
    users = nodes.users
    for (pred, label), edges in plan.edges.items():
        statements = fact_edge_statements(pred, label)
        targets = nodes.targets[label]
        maybe = [[users[e.user], targets[e.key]] for e in edges.values() if e.user in known_users]
        present = existing_edge_keys(store, statements.existing_keys, maybe, batch) if maybe else set()
        new: list[list[Any]] = []
        new_with_sentiment: list[list[Any]] = []
        updates: list[list[Any]] = []
        tiers: list[list[Any]] = []
        for e in edges.values():
            u, t = users[e.user], targets[e.key]
            if present and (u, t) in present:
                updates.append(e.update_row(u, t))
            else:
                row = e.new_row(u, t)
                (new if len(row) == 6 else new_with_sentiment).append(row)
            if e.tier:
                tiers.append([u, t, e.tier])
        report.fact_edges_written += len(new) + len(new_with_sentiment)
        for statement, rows in ((statements.new, new), (statements.new_with_sentiment, new_with_sentiment),
                                (statements.existing, updates), (statements.tier, tiers)):
            for chunk in chunks(rows, batch):
                yield statement, {"rows": chunk}


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
    if clash:
        docs = [d for d in docs if d.doc_id not in clash]
        facts = [f for f in facts if f.doc_id not in clash]

    stamps = IsoStamps()
    plan = plan_facts(facts, stamps)
    report.users = sorted({d.user_id for d in docs}.union(plan.spans))  # spans: every user with a fact
    known_users = existing_users(store, report.users, batch)
    nodes = NodeIds()
    take: list[Callable[[list[list[Any]]], None] | None] = []  # per node job: what reads its rows

    def node_jobs() -> Iterator[Job]:
        # the edges need the node ids of both their ends: users and targets go first, in a stream of their own
        for label, job in target_jobs(plan.targets[Target.ENTITY], plan.targets[Target.VALUE], batch):
            take.append(partial(nodes.add_targets, label))
            yield job
        for job in user_and_document_jobs(docs, plan.spans, existing, batch, stamps):
            take.append(nodes.add_users if job[0] is _UPSERT_USERS_AND_DOCUMENTS else None)
            yield job

    for read, result in zip(take, store.write_stream(node_jobs()), strict=True):
        if read is not None:
            read(result.rows)
    edge_results = store.write_stream(fact_edge_jobs(store, plan, nodes, known_users, batch, report))
    report.fact_edges_written += sum(int(r.scalar() or 0) for r in edge_results)
    report.documents = len(docs)
    return report
