"""Behaviour → graph: PURCHASED / VIEWED edges with their events, and the users' RFM aggregates.

- purchase → PURCHASED (+1, +amount); refund → PURCHASED (−1, −amount): counts and amounts are net.
- view → VIEWED (+1); cart → VIEWED (+1) as view-like interest, also counted in `cart_count`.
- Each behaviour edge keeps its events as parallel lists `ev_ids, ev_ts, ev_n, ev_amt, ev_k`, which
  makes ingestion idempotent per event and lets segments count exactly inside a time window.
  Aggregates on the edge: count, amount, refund_count, cart_count, first_ts, last_ts,
  first_purchase_ts, last_purchase_ts, currency, category.
- User aggregates are recomputed from all the user's edges after each batch (so they are idempotent
  and self-healing): purchase_count, purchase_amount, first/last_purchase_ts, view_count,
  last_view_ts, updated_at (wall clock). Recency is not stored: it is computed at query time.

How a batch is written (the bulk path of # 15): one read returns, for the batch's users already in
the graph, their node ids and the aggregates of every behaviour edge (plus the stored events whose
keys the batch repeats). The client then plans the batch (idempotency, refunds), computes every
touched edge's and every user's new aggregates exactly as a recomputation from the event lists
would, and writes each user with its edges in one statement row: users new to the graph by MERGE
on their id, the others by node id. Per batch that is one read and one or two writes, with rows
sent as lists (not maps) because the server parses, and the log keeps, every byte of them.
Concurrent writers of one user are excluded by the caller (one writer thread in-process; the
queue's per-partition lock across workers); a stored event key is still never appended twice.
Amounts are summed as given; there is no currency conversion (the last currency is kept on the edge).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import TargetRef, iso
from engine.fuse.entities import ENTITY_NODES, Job, chunks, context_jobs, entity_rows
from engine.gc_pause import cyclic_gc_paused
from engine.ingest import Event
from engine.store import GraphStore, bulk_rows
from linkers import ContextEdge

RELATION = {"purchase": "PURCHASED", "refund": "PURCHASED", "view": "VIEWED", "cart": "VIEWED"}


class BehaviourReport(BaseModel):
    events_applied: int = 0
    edges_written: int = 0
    users: list[str] = Field(default_factory=list)
    problems: list[tuple[int, str, str]] = Field(default_factory=list)  # (index, field, message)


# The batch's users already in the graph: one row per behaviour edge (one row of nulls for a user
# with none): user id, node id, [relation, item key, count, amount, refund_count, cart_count,
# first_ts, last_ts, first_purchase_ts, last_purchase_ts], and a stored event whose key the batch
# holds as [id, type, ts, amount] (one row per such event; nulls when none). Scalar columns only:
# they are read through the store's bulk stream. Rows: [user_id, event keys].
_STORED_EVENTS = """
UNWIND $rows AS r
MATCH (u:User {id: r[0]})
OPTIONAL MATCH (u)-[p:PURCHASED|VIEWED]->(e:Entity)
WITH r, u, p, e, [i IN range(0, size(coalesce(p.ev_ids, [])) - 1) WHERE p.ev_ids[i] IN r[1]] AS seen
UNWIND CASE WHEN size(seen) = 0 THEN [-1] ELSE seen END AS i
RETURN r[0] AS user_id, id(u) AS node, type(p) AS rel, e.key AS key, p.count AS count, p.amount AS amount,
       p.refund_count AS refunds, p.cart_count AS carts, p.first_ts AS first, p.last_ts AS last,
       p.first_purchase_ts AS first_purchase, p.last_purchase_ts AS last_purchase,
       CASE WHEN i >= 0 THEN p.ev_ids[i] END AS ev_id, CASE WHEN i >= 0 THEN p.ev_k[i] END AS ev_k,
       CASE WHEN i >= 0 THEN p.ev_ts[i] END AS ev_ts, CASE WHEN i >= 0 THEN p.ev_amt[i] END AS ev_amt
"""


def stored_events_statement() -> str:
    return _STORED_EVENTS


EventIdentity = tuple[str, str, str, str, float]  # (relation, item key, type, ts, signed amount)
EdgeKey = tuple[str, str, str]  # (relation, user, item key)
# [count, amount, refund_count, cart_count, first_ts, last_ts, first_purchase_ts, last_purchase_ts]
Aggregates = list[Any]


class _Stored(BaseModel):
    """What the graph already holds of a batch's users: their node ids, the aggregates of all their
    behaviour edges, their stored events by key, and their net purchases (count, amount) per item."""

    nodes: dict[str, int] = Field(default_factory=dict)
    edges: dict[EdgeKey, Aggregates] = Field(default_factory=dict)
    events: dict[tuple[str, str], EventIdentity] = Field(default_factory=dict)
    purchases: dict[tuple[str, str], tuple[float, float]] = Field(default_factory=dict)


def _stored(
    store: GraphStore, linked: Sequence[tuple[Event, TargetRef]], batch: int, busy: Collection[str] = (),
    settle: Callable[[], object] | None = None,
) -> _Stored:
    per_user: dict[str, set[str]] = {}
    for ev, _ in linked:
        per_user.setdefault(ev.user_id, set()).add(ev.key)
    rows = [[u, sorted(ids)] for u, ids in per_user.items() if u not in busy]
    later = [[u, sorted(ids)] for u, ids in per_user.items() if u in busy]
    out = _Stored()
    _read_into(out, store, rows, batch)
    if later:
        if settle is not None:
            settle()
        _read_into(out, store, later, batch)
    return out


def _read_into(out: _Stored, store: GraphStore, rows: list[list[Any]], batch: int) -> None:
    for chunk in chunks(rows, batch):
        for uid, node, rel, key, *aggregates, ev_id, kind, ts, amt in bulk_rows(store, _STORED_EVENTS, {"rows": chunk}):
            out.nodes[uid] = int(node)
            if rel is None:  # the user has no behaviour edge
                continue
            aggregates[1] = _number(aggregates[1])  # floats may come back as text
            out.edges[(rel, uid, key)] = aggregates
            if ev_id is not None:
                out.events[(uid, ev_id)] = (rel, key, kind, ts, _number(amt))
            if rel == "PURCHASED":
                out.purchases[(uid, key)] = (float(aggregates[0] or 0), aggregates[1])


def _number(value: Any) -> float:
    return float(value) if value is not None else 0.0


_CENT = 1e-6  # amounts are compared with this slack: sums of floats


def _plan(
    linked: Sequence[tuple[Event, TargetRef]], stored: _Stored
) -> tuple[list[tuple[int, Event, TargetRef, EventIdentity]], list[tuple[int, str, str]]]:
    """The events to write, in order, and the refused ones as (index, field, message).

    An event key names one event of its user: the same key again with the same content is a
    re-send (skipped), with other content a conflict (refused). A refund needs a purchase of the
    item left to refund, so counts and amounts never go negative.
    """
    known = dict(stored.events)
    net = dict(stored.purchases)
    accepted: list[tuple[int, Event, TargetRef, EventIdentity]] = []
    problems: list[tuple[int, str, str]] = []
    for i, (ev, target) in enumerate(linked):
        rel = RELATION[ev.type]
        sign = -1 if ev.type == "refund" else 1
        amount = float(ev.amount or 0.0) if rel == "PURCHASED" else 0.0
        ident: EventIdentity = (rel, target.key, ev.type, iso(ev.ts), sign * amount)
        before = known.get((ev.user_id, ev.key))
        if before is not None:
            if before[:4] != ident[:4] or abs(before[4] - ident[4]) > _CENT:
                field = "event_id" if ev.event_id else "item"
                problems.append((i, field, f"{ev.key} is already the event {before[2]} of {before[1]} at "
                                           f"{before[3]}; an event id names one event"))
            continue  # identical: sent before, counted once
        if rel == "PURCHASED":
            count, paid = net.get((ev.user_id, target.key), (0.0, 0.0))
            if ev.type == "refund" and count < 1:
                problems.append((i, "type", f"refund of {target.key} with no purchase of it left to refund"))
                continue
            if ev.type == "refund" and amount > paid + _CENT:
                problems.append((i, "amount", f"refund of {amount:g} is more than the {paid:g} paid for "
                                              f"{target.key}"))
                continue
            net[(ev.user_id, target.key)] = (count + sign, paid + sign * amount)
        known[(ev.user_id, ev.key)] = ident
        accepted.append((i, ev, target, ident))
    return accepted, problems


class _Edges(BaseModel):
    """The accepted events of a batch grouped for writing."""

    users: dict[str, list[str]] = Field(default_factory=dict)  # user → [first ts, last ts]
    targets: dict[str, TargetRef] = Field(default_factory=dict)  # item key → target
    # edge → [currency, category, ids, ts, ns, amts, ks]: the edge's events of the batch as
    # parallel lists, in batch order; currency and category the last given
    edges: dict[EdgeKey, list[Any]] = Field(default_factory=dict)


def _edge_rows(accepted: list[tuple[int, Event, TargetRef, EventIdentity]]) -> _Edges:
    """User rows, item targets and one edge row per (relation, user, item) of the accepted events."""
    out = _Edges()
    users, edges = out.users, out.edges
    for _, ev, target, (rel, key, kind, ts, amt) in accepted:
        span = users.get(ev.user_id)
        if span is None:
            users[ev.user_id] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
        out.targets[key] = target
        edge = edges.get((rel, ev.user_id, key))
        if edge is None:
            edge = edges[(rel, ev.user_id, key)] = [None, None, [], [], [], [], []]
        edge[2].append(ev.key)
        edge[3].append(ts)
        edge[4].append(-1 if kind == "refund" else 1)
        edge[5].append(amt)
        edge[6].append(kind)
        edge[0] = ev.currency or edge[0]
        edge[1] = ev.category or edge[1]
    return out


def _least(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _greatest(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _merged(old: Aggregates | None, row: list[Any]) -> Aggregates:
    """The edge's aggregates after appending the batch's events: what recomputing them from the
    whole event lists gives (the amount is added left to right, as that sum is)."""
    _, _, _, ts, ns, amts, ks = row
    count, amount, refunds, carts, first, last, first_buy, last_buy = old or [0, 0.0, 0, 0, None, None, None, None]
    amount = float(amount or 0.0)
    for a in amts:
        amount += a
    bought = [t for t, k in zip(ts, ks, strict=True) if k == "purchase"]
    return [(count or 0) + sum(ns), amount, (refunds or 0) + ks.count("refund"), (carts or 0) + ks.count("cart"),
            _least([first, *ts]), _greatest([last, *ts]), _least([first_buy, *bought]), _greatest([last_buy, *bought])]


def _user_aggregates(edges: list[tuple[str, Aggregates]]) -> list[Any]:
    """[purchase_count, purchase_amount, first_purchase_ts, last_purchase_ts, view_count, last_view_ts]
    over all the user's edges, as Cypher's sum / min / max give them (sum over none is the integer 0)."""
    bought = [a for rel, a in edges if rel == "PURCHASED"]
    viewed = [a for rel, a in edges if rel == "VIEWED"]
    return [sum(a[0] or 0 for a in bought), sum(a[1] or 0.0 for a in bought) if bought else 0,
            _least([a[6] for a in bought]), _greatest([a[7] for a in bought]),
            sum(a[0] or 0 for a in viewed), _greatest([a[5] for a in viewed])]


# Each user with its touched edges in one row: [user (id when new, node id when known), first_seen,
# last_seen, purchase_count, purchase_amount, first_purchase_ts, last_purchase_ts, view_count,
# last_view_ts, edges]; an edge is [kind (see _EDGE_WRITE), item node, ids, ts, ns, amts, ks,
# count, refund_count, cart_count, first_ts, last_ts, first_purchase_ts, last_purchase_ts,
# currency, category]: the batch's events to append and the edge's new aggregates. The amount is
# added on the server, left to right from the stored one (read back as text it could be off in its
# last digit). Items are sought by node id, projected first (WITH x[1] AS en), which is what makes
# FalkorDB seek instead of scan.
_EDGE_VALUES = """p.count = x[7], p.refund_count = x[8], p.cart_count = x[9], p.first_ts = x[10],
        p.last_ts = x[11], p.first_purchase_ts = x[12], p.last_purchase_ts = x[13]"""

_EDGE_APPEND = f"""SET p.ev_ids = coalesce(p.ev_ids, []) + x[2], p.ev_ts = coalesce(p.ev_ts, []) + x[3],
        p.ev_n = coalesce(p.ev_n, []) + x[4], p.ev_amt = coalesce(p.ev_amt, []) + x[5],
        p.ev_k = coalesce(p.ev_k, []) + x[6], p.amount = reduce(s = coalesce(p.amount, 0.0), a IN x[5] | s + a),
        {_EDGE_VALUES}, p.currency = coalesce(x[14], p.currency), p.category = coalesce(x[15], p.category)"""

_EDGE_CREATE = f"""ON CREATE SET p.ev_ids = x[2], p.ev_ts = x[3], p.ev_n = x[4], p.ev_amt = x[5], p.ev_k = x[6],
        p.amount = reduce(s = 0.0, a IN x[5] | s + a), {_EDGE_VALUES}, p.currency = x[14], p.category = x[15]"""

# A user's edges by kind (x[0]): 0 / 1 a new VIEWED / PURCHASED edge, created whole (an edge found
# instead, written by another writer since the read, is left alone); 2 / 3 an edge the read found,
# appended to unless it already holds one of the keys.
_EDGE_WRITE = """
WITH u, r
UNWIND r[9] AS x
WITH u, x, x[1] AS en
MATCH (e:Entity) WHERE id(e) = en
FOREACH (_ IN CASE WHEN x[0] = 0 THEN [1] ELSE [] END | MERGE (u)-[p:VIEWED]->(e) {create})
FOREACH (_ IN CASE WHEN x[0] = 1 THEN [1] ELSE [] END | MERGE (u)-[p:PURCHASED]->(e) {create})
FOREACH (_ IN CASE WHEN x[0] = 2 THEN [1] ELSE [] END |
    MERGE (u)-[p:VIEWED]->(e)
    FOREACH (_ IN CASE WHEN none(i IN x[2] WHERE i IN coalesce(p.ev_ids, [])) THEN [1] ELSE [] END | {append}))
FOREACH (_ IN CASE WHEN x[0] = 3 THEN [1] ELSE [] END |
    MERGE (u)-[p:PURCHASED]->(e)
    FOREACH (_ IN CASE WHEN none(i IN x[2] WHERE i IN coalesce(p.ev_ids, [])) THEN [1] ELSE [] END | {append}))
""".replace("{create}", _EDGE_CREATE).replace("{append}", _EDGE_APPEND)

_USER_SET = """u.purchase_count = r[3], u.purchase_amount = r[4], u.first_purchase_ts = r[5],
    u.last_purchase_ts = r[6], u.view_count = r[7], u.last_view_ts = r[8], u.updated_at = $at"""

# Users new to the graph. MERGE (not CREATE) keeps a user single even if another writer created
# it since the batch's read (that user is then left to the other writer's aggregates).
_NEW_USERS = f"""
UNWIND $rows AS r
MERGE (u:User {{id: r[0]}})
ON CREATE SET u.first_seen = r[1], u.last_seen = r[2], u.n_docs = 0, u.langs = [],
    {_USER_SET}
{_EDGE_WRITE}"""

# Users the read found, by node id: first/last seen may come from facts too.
_KNOWN_USERS = f"""
UNWIND $rows AS r
WITH r, r[0] AS un
MATCH (u:User) WHERE id(u) = un
SET u.first_seen = CASE WHEN r[1] < u.first_seen THEN r[1] ELSE u.first_seen END,
    u.last_seen = CASE WHEN r[2] > u.last_seen THEN r[2] ELSE u.last_seen END,
    {_USER_SET}
{_EDGE_WRITE}"""


def new_users_statement() -> str:
    return _NEW_USERS


def known_users_statement() -> str:
    return _KNOWN_USERS


def _user_rows(grouped: _Edges, stored: _Stored, entities: dict[str, int]) -> tuple[list[Any], list[Any]]:
    """Rows of the users new to the graph and of those already in it (see _EDGE_WRITE)."""
    touched: dict[str, list[list[Any]]] = defaultdict(list)
    final: dict[str, dict[tuple[str, str], Aggregates]] = defaultdict(dict)
    for (rel, uid, key), old in stored.edges.items():
        if uid in grouped.users:
            final[uid][(rel, key)] = old
    for (rel, uid, key), row in grouped.edges.items():
        agg = _merged(stored.edges.get((rel, uid, key)), row)
        final[uid][(rel, key)] = agg
        kind = (1 if rel == "PURCHASED" else 0) + (2 if (rel, uid, key) in stored.edges else 0)
        touched[uid].append([kind, entities[key], *row[2:], agg[0], *agg[2:], row[0], row[1]])
    new: list[Any] = []
    known: list[Any] = []
    for uid, span in grouped.users.items():
        totals = _user_aggregates([(rel, agg) for (rel, _), agg in final[uid].items()])
        node = stored.nodes.get(uid)
        if node is None:
            new.append([uid, *span, *totals, touched[uid]])
        else:
            known.append([node, *span, *totals, touched[uid]])
    return new, known


class EntityNodes(dict[str, int]):
    """Entity key → node id of the items written so far in one ingest run: an item is upserted
    (with its Wikidata context) once per run, later batches seek it by id."""


class PreparedEvents:
    """One batch planned against the graph: its report and the statements that write it."""

    def __init__(self, report: BehaviourReport, jobs: list[Job]) -> None:
        self.report = report
        self.jobs = jobs

    def write(self, store: GraphStore) -> BehaviourReport:
        with cyclic_gc_paused():
            store.write_stream(iter(self.jobs))
        return self.report


def prepare_events(
    store: GraphStore,
    linked: Sequence[tuple[Event, TargetRef]],
    context: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    *,
    batch: int = 5000,
    entities: EntityNodes | None = None,
    busy: Collection[str] = (),
    settle: Callable[[], object] | None = None,
) -> PreparedEvents:
    """Read what the graph holds of the batch's users, plan the batch, upsert its new items.

    `busy`: users whose writes are still on their way (the previous batch, while it is written):
    the others are read at once, these only after `settle()` returns, so a batch is planned while
    the one before it is written and still sees it.
    """
    report = BehaviourReport()
    if not linked:
        return PreparedEvents(report, [])
    entities = EntityNodes() if entities is None else entities
    with cyclic_gc_paused():
        stored = _stored(store, linked, batch, busy, settle)
        accepted, report.problems = _plan(linked, stored)
        grouped = _edge_rows(accepted)
        for chunk in chunks(entity_rows(t for k, t in grouped.targets.items() if k not in entities), batch):
            entities.update(store.query(ENTITY_NODES, {"rows": chunk}).rows)
        new, known = _user_rows(grouped, stored, entities)
    at = iso(datetime.now(UTC))
    jobs = list(context_jobs(context, parents, batch))
    jobs += [(statement, {"rows": chunk, "at": at})
             for statement, rows in ((_NEW_USERS, new), (_KNOWN_USERS, known)) for chunk in chunks(rows, batch)]
    report.edges_written = len(grouped.edges)
    report.events_applied = len(accepted)
    report.users = sorted(grouped.users)
    return PreparedEvents(report, jobs)


def write_events(
    store: GraphStore,
    linked: Sequence[tuple[Event, TargetRef]],
    context: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    *,
    batch: int = 5000,
    entities: EntityNodes | None = None,
) -> BehaviourReport:
    """Users, item entities with their Wikidata context, behaviour edges and user aggregates.

    Refused events are in report.problems as (index into `linked`, field, message). New items are
    upserted first and return their node ids; then the context and the users (each with its
    edges) go through the store's write stream, with the cyclic GC paused as fusion does. Items
    already in `entities` are not written again (their context is the caller's to skip too).
    """
    return prepare_events(store, linked, context, parents, batch=batch, entities=entities).write(store)
