"""Behaviour → graph: PURCHASED / VIEWED edges with their events, and the users' RFM aggregates.

- purchase → PURCHASED (+1, +amount); refund → PURCHASED (−1, −amount): counts and amounts are net.
- view → VIEWED (+1); cart → VIEWED (+1) as view-like interest, also counted in `cart_count`.
- Each behaviour edge keeps its events as parallel lists `ev_ids, ev_ts, ev_n, ev_amt, ev_k`, which
  makes ingestion idempotent per event and lets segments count exactly inside a time window.
  Aggregates on the edge: count, amount, refund_count, cart_count, first_ts, last_ts,
  first_purchase_ts, last_purchase_ts, currency, category.
- User aggregates are recomputed from the user's edges after each batch (so they are idempotent
  and self-healing): purchase_count, purchase_amount, first/last_purchase_ts, view_count,
  last_view_ts, updated_at (wall clock). Recency is not stored: it is computed at query time.
Amounts are summed as given; there is no currency conversion (the last currency is kept on the edge).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import TargetRef, iso
from engine.fuse.entities import ENTITY_NODES, Job, chunks, context_jobs, entity_rows
from engine.gc_pause import cyclic_gc_paused
from engine.ingest import Event
from engine.store import GraphStore
from graph_schema import checked_identifier, get_predicate
from linkers import ContextEdge

RELATION = {"purchase": "PURCHASED", "refund": "PURCHASED", "view": "VIEWED", "cart": "VIEWED"}


class BehaviourReport(BaseModel):
    events_applied: int = 0
    edges_written: int = 0
    users: list[str] = Field(default_factory=list)
    problems: list[tuple[int, str, str]] = Field(default_factory=list)  # (index, field, message)


# One row per (user, item) edge; new events are those whose id the edge has not seen. All new
# values are computed in WITH clauses before the single SET (FalkorDB applies SET at the end).
# Users and items are sought by the node ids the batch's read and the item upserts returned (no
# index lookups); the ids are projected first (WITH r.u AS un), which is what makes FalkorDB seek instead of scan.
_BEHAVIOUR_EDGES = """
UNWIND $rows AS r
WITH r, r.u AS un, r.e AS en
MATCH (u:User) WHERE id(u) = un
MATCH (e:Entity) WHERE id(e) = en
MERGE (u)-[p:{rel}]->(e)
ON CREATE SET p.ev_ids = [], p.ev_ts = [], p.ev_n = [], p.ev_amt = [], p.ev_k = []
WITH p, r, [i IN r.items WHERE NOT i.id IN p.ev_ids] AS new
WHERE size(new) > 0
WITH p, r, size(new) AS added, p.ev_ids + [i IN new | i.id] AS ids, p.ev_ts + [i IN new | i.ts] AS ts,
     p.ev_n + [i IN new | i.n] AS ns, p.ev_amt + [i IN new | i.amt] AS amts, p.ev_k + [i IN new | i.k] AS ks
WITH p, r, added, ids, ts, ns, amts, ks,
     [i IN range(0, size(ts) - 1) WHERE ks[i] = 'purchase' | ts[i]] AS bought
SET p.ev_ids = ids, p.ev_ts = ts, p.ev_n = ns, p.ev_amt = amts, p.ev_k = ks,
    p.count = reduce(s = 0, x IN ns | s + x),
    p.amount = reduce(s = 0.0, x IN amts | s + x),
    p.refund_count = size([k IN ks WHERE k = 'refund']),
    p.cart_count = size([k IN ks WHERE k = 'cart']),
    p.first_ts = reduce(m = ts[0], t IN ts | CASE WHEN t < m THEN t ELSE m END),
    p.last_ts = reduce(m = ts[0], t IN ts | CASE WHEN t > m THEN t ELSE m END),
    p.first_purchase_ts = CASE WHEN size(bought) = 0 THEN null
        ELSE reduce(m = bought[0], t IN bought | CASE WHEN t < m THEN t ELSE m END) END,
    p.last_purchase_ts = CASE WHEN size(bought) = 0 THEN null
        ELSE reduce(m = bought[0], t IN bought | CASE WHEN t > m THEN t ELSE m END) END,
    p.currency = coalesce(r.currency, p.currency),
    p.category = coalesce(r.category, p.category)
RETURN count(p) AS written, sum(added) AS events
"""

# Recomputed from the edges, so a retried or partial batch converges to the right totals.
_USER_AGGREGATES = """
UNWIND $nodes AS n
MATCH (u:User) WHERE id(u) = n
OPTIONAL MATCH (u)-[p:PURCHASED]->(:Entity)
WITH u, sum(p.count) AS n, sum(p.amount) AS amount, min(p.first_purchase_ts) AS first,
     max(p.last_purchase_ts) AS last
OPTIONAL MATCH (u)-[v:VIEWED]->(:Entity)
WITH u, n, amount, first, last, sum(v.count) AS views, max(v.last_ts) AS last_view
SET u.purchase_count = n, u.purchase_amount = amount, u.first_purchase_ts = first,
    u.last_purchase_ts = last, u.view_count = views, u.last_view_ts = last_view, u.updated_at = $at
"""


def behaviour_edge_statement(rel: str) -> str:
    if not get_predicate(rel).behaviour:
        raise ValueError(f"{rel} is not a behaviour predicate")
    return _BEHAVIOUR_EDGES.replace("{rel}", checked_identifier(rel))


def user_aggregates_statement() -> str:
    return _USER_AGGREGATES


# The batch's users already in the graph (with their node ids, so they are written by id), and of
# their behaviour edges those holding one of the batch's event keys or a purchase a refund of the
# batch points at. A user absent here is new: everything about it is computed client-side.
_STORED_EVENTS = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})
OPTIONAL MATCH (u)-[p:PURCHASED|VIEWED]->(e:Entity)
WITH r, u, p, e, [i IN range(0, size(coalesce(p.ev_ids, [])) - 1) WHERE p.ev_ids[i] IN r.ids] AS seen
WITH r, u, CASE WHEN size(seen) > 0 OR (type(p) = 'PURCHASED' AND e.key IN r.refunded)
     THEN [type(p), e.key, [i IN seen | [p.ev_ids[i], p.ev_k[i], p.ev_ts[i], p.ev_amt[i]]],
           reduce(s = 0, x IN p.ev_n | s + x), reduce(s = 0.0, x IN p.ev_amt | s + x)] END AS edge
RETURN r.user_id AS user_id, id(u) AS node, collect(edge) AS edges
"""


def stored_events_statement() -> str:
    return _STORED_EVENTS


EventIdentity = tuple[str, str, str, str, float]  # (relation, item key, type, ts, signed amount)


class _Stored(BaseModel):
    """What the graph already holds of a batch's users: their node ids, their events by key, and
    the net purchases (count, amount) per item a refund in the batch points at."""

    nodes: dict[str, int] = Field(default_factory=dict)
    events: dict[tuple[str, str], EventIdentity] = Field(default_factory=dict)
    purchases: dict[tuple[str, str], tuple[float, float]] = Field(default_factory=dict)


def _stored(store: GraphStore, linked: Sequence[tuple[Event, TargetRef]], batch: int) -> _Stored:
    per_user: dict[str, tuple[set[str], set[str]]] = {}
    for ev, target in linked:
        ids, refunded = per_user.setdefault(ev.user_id, (set(), set()))
        ids.add(ev.key)
        if ev.type == "refund":
            refunded.add(target.key)
    rows = [{"user_id": u, "ids": sorted(ids), "refunded": sorted(refunded)} for u, (ids, refunded) in per_user.items()]
    out = _Stored()
    for chunk in chunks(rows, batch):
        for uid, node, edges in store.ro_query(_STORED_EVENTS, {"rows": chunk}).rows:
            out.nodes[uid] = int(node)
            for rel, key, events, net_count, net_amount in edges:
                for ev_id, kind, ts, amt in events:
                    out.events[(uid, ev_id)] = (rel, key, kind, ts, float(amt))
                if rel == "PURCHASED":
                    out.purchases[(uid, key)] = (float(net_count), float(net_amount))
    return out


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

    users: dict[str, dict[str, str]] = Field(default_factory=dict)  # user → {id, first, last}
    targets: dict[str, TargetRef] = Field(default_factory=dict)  # item key → target
    # (relation, user, item key) → {user_id, key, currency, category, items: [{id, ts, n, amt, k}]}
    edges: dict[tuple[str, str, str], dict[str, Any]] = Field(default_factory=dict)


def _edge_rows(accepted: list[tuple[int, Event, TargetRef, EventIdentity]]) -> _Edges:
    """User rows, item targets and one edge row per (relation, user, item) of the accepted events."""
    out = _Edges()
    users, edges = out.users, out.edges
    for _, ev, target, (rel, key, kind, ts, amt) in accepted:
        row = users.get(ev.user_id)
        if row is None:
            row = users[ev.user_id] = {"id": ev.user_id, "first": ts, "last": ts}
        elif ts < row["first"]:
            row["first"] = ts
        elif ts > row["last"]:
            row["last"] = ts
        out.targets[key] = target
        edge = edges.get((rel, ev.user_id, key))
        if edge is None:
            edge = edges[(rel, ev.user_id, key)] = {
                "user_id": ev.user_id, "key": key, "currency": None, "category": None, "items": []}
        edge["items"].append({"id": ev.key, "ts": ts, "n": -1 if kind == "refund" else 1, "amt": amt, "k": kind})
        edge["currency"] = ev.currency or edge["currency"]
        edge["category"] = ev.category or edge["category"]
    return out


# --- users new to the graph: edges and aggregates computed here, written in one statement ------

# What _BEHAVIOUR_EDGES and _USER_AGGREGATES would compute on an empty graph, computed by the
# client: one statement creates the user with its aggregates and its edges with theirs. MERGE (not
# CREATE) keeps a user single even if another writer created it since the batch's read.
_EDGE_PROPS = """ON CREATE SET p.ev_ids = x.ids, p.ev_ts = x.ts, p.ev_n = x.ns, p.ev_amt = x.amts, p.ev_k = x.ks,
    p.count = x.count, p.amount = x.amount, p.refund_count = x.refunds, p.cart_count = x.carts,
    p.first_ts = x.first, p.last_ts = x.last, p.first_purchase_ts = x.first_purchase,
    p.last_purchase_ts = x.last_purchase, p.currency = x.currency, p.category = x.category"""

_NEW_USERS = f"""
UNWIND $rows AS r
MERGE (u:User {{id: r.id}})
ON CREATE SET u.first_seen = r.first, u.last_seen = r.last, u.n_docs = 0, u.langs = [],
    u.purchase_count = r.purchases, u.purchase_amount = r.amount, u.first_purchase_ts = r.first_purchase,
    u.last_purchase_ts = r.last_purchase, u.view_count = r.views, u.last_view_ts = r.last_view,
    u.updated_at = $at
WITH u, r
UNWIND r.edges AS x
WITH u, x, x.e AS en
MATCH (e:Entity) WHERE id(e) = en
FOREACH (_ IN CASE WHEN x.rel = 'PURCHASED' THEN [1] ELSE [] END |
    MERGE (u)-[p:PURCHASED]->(e)
    {_EDGE_PROPS})
FOREACH (_ IN CASE WHEN x.rel = 'VIEWED' THEN [1] ELSE [] END |
    MERGE (u)-[p:VIEWED]->(e)
    {_EDGE_PROPS})
"""


def new_users_statement() -> str:
    return _NEW_USERS


def _new_edge(rel: str, row: dict[str, Any], entity: int) -> dict[str, Any]:
    """The properties _BEHAVIOUR_EDGES gives a new edge, from its events in batch order."""
    items = row["items"]
    ts = [i["ts"] for i in items]
    ks = [i["k"] for i in items]
    amount = 0.0
    for i in items:  # left to right, as the statement's reduce adds
        amount += i["amt"]
    bought = [t for t, k in zip(ts, ks, strict=True) if k == "purchase"]
    return {"rel": rel, "e": entity, "ids": [i["id"] for i in items], "ts": ts, "ns": [i["n"] for i in items],
            "amts": [i["amt"] for i in items], "ks": ks, "count": sum(i["n"] for i in items), "amount": amount,
            "refunds": ks.count("refund"), "carts": ks.count("cart"), "first": min(ts), "last": max(ts),
            "first_purchase": min(bought) if bought else None, "last_purchase": max(bought) if bought else None,
            "currency": row["currency"], "category": row["category"]}


def _new_user(user: dict[str, str], edges: list[dict[str, Any]]) -> dict[str, Any]:
    """The user row with the aggregates _USER_AGGREGATES gives a user whose edges are `edges`
    (Cypher's sum over no rows is the integer 0, min/max over none are null)."""
    bought = [x for x in edges if x["rel"] == "PURCHASED"]
    viewed = [x for x in edges if x["rel"] == "VIEWED"]
    firsts = [x["first_purchase"] for x in bought if x["first_purchase"] is not None]
    lasts = [x["last_purchase"] for x in bought if x["last_purchase"] is not None]
    return {**user, "edges": edges, "purchases": sum(x["count"] for x in bought),
            "amount": sum(x["amount"] for x in bought) if bought else 0,
            "first_purchase": min(firsts) if firsts else None, "last_purchase": max(lasts) if lasts else None,
            "views": sum(x["count"] for x in viewed), "last_view": max(x["last"] for x in viewed) if viewed else None}


def _new_user_rows(grouped: _Edges, new: set[str], entities: dict[str, int]) -> list[dict[str, Any]]:
    per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (rel, uid, key), row in grouped.edges.items():
        if uid in new:
            per_user[uid].append(_new_edge(rel, row, entities[key]))
    return [_new_user(grouped.users[uid], per_user[uid]) for uid in grouped.users if uid in new]


# --- users already in the graph: touched by node id, edges merged, aggregates recomputed -------

_TOUCH_USERS = """
UNWIND $rows AS r
WITH r, r.node AS un
MATCH (u:User) WHERE id(u) = un
SET u.first_seen = CASE WHEN r.first < u.first_seen THEN r.first ELSE u.first_seen END,
    u.last_seen = CASE WHEN r.last > u.last_seen THEN r.last ELSE u.last_seen END
"""


def touch_users_statement() -> str:
    return _TOUCH_USERS


class EntityNodes(dict[str, int]):
    """Entity key → node id of the items written so far in one ingest run: an item is upserted
    (with its Wikidata context) once per run, later batches seek it by id."""


def _jobs(
    grouped: _Edges, stored: _Stored, entities: dict[str, int], context: Iterator[Job], batch: int,
    edge_jobs: list[int],
) -> Iterator[Job]:
    """The write statements of one batch, in order; `edge_jobs` gets the positions of those whose
    result counts written edges and events."""
    at = iso(datetime.now(UTC))
    sent = 0
    for job in context:
        yield job
        sent += 1
    new = {uid for uid in grouped.users if uid not in stored.nodes}
    for chunk in chunks(_new_user_rows(grouped, new, entities), batch):
        yield _NEW_USERS, {"rows": chunk, "at": at}
        sent += 1
    old = [{**row, "node": stored.nodes[uid]} for uid, row in grouped.users.items() if uid not in new]
    for chunk in chunks(old, batch):
        yield _TOUCH_USERS, {"rows": chunk}
        sent += 1
    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (rel, uid, key), row in grouped.edges.items():
        if uid not in new:
            by_rel[rel].append({**row, "u": stored.nodes[uid], "e": entities[key]})
    for rel, rows in by_rel.items():
        for chunk in chunks(rows, batch):
            edge_jobs.append(sent)
            yield behaviour_edge_statement(rel), {"rows": chunk}
            sent += 1
    for chunk in chunks(sorted(stored.nodes[uid] for uid in grouped.users if uid not in new), batch):
        yield _USER_AGGREGATES, {"nodes": chunk, "at": at}


def write_events(
    store: GraphStore,
    linked: Sequence[tuple[Event, TargetRef]],
    context: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    *,
    batch: int = 5000,
    entities: EntityNodes | None = None,
) -> BehaviourReport:
    """Users, item entities with their Wikidata context, behaviour edges, then user aggregates.

    Refused events are in report.problems as (index into `linked`, field, message). One read finds
    the batch's users already in the graph and what they hold of its events; new items are upserted
    and return their node ids. Users new to the graph are then created with their edges and
    aggregates in one statement each chunk; the others are updated by node id (edges merged,
    aggregates recomputed from the edges). All writes go through the store's write stream, with
    the cyclic GC paused as fusion does. Items already in `entities` are not written again (their
    context is the caller's to skip too).
    """
    report = BehaviourReport()
    if not linked:
        return report
    entities = EntityNodes() if entities is None else entities
    with cyclic_gc_paused():
        stored = _stored(store, linked, batch)
        accepted, report.problems = _plan(linked, stored)
        grouped = _edge_rows(accepted)
        for chunk in chunks(entity_rows(t for k, t in grouped.targets.items() if k not in entities), batch):
            entities.update(store.query(ENTITY_NODES, {"rows": chunk}).rows)
        edge_jobs: list[int] = []  # positions of the merging edge statements in the stream
        results = store.write_stream(_jobs(grouped, stored, entities, context_jobs(context, parents, batch), batch,
                                           edge_jobs))
        for position in edge_jobs:
            rows = results[position].rows
            if rows:
                report.edges_written += int(rows[0][0] or 0)
                report.events_applied += int(rows[0][1] or 0)
    new_edges = [row for (_, uid, _), row in grouped.edges.items() if uid not in stored.nodes]
    report.edges_written += len(new_edges)
    report.events_applied += sum(len(row["items"]) for row in new_edges)
    report.users = sorted(grouped.users)
    return report
