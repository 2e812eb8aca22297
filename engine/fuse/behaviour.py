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


_UPSERT_USERS = """
UNWIND $rows AS r
MERGE (u:User {id: r.id})
ON CREATE SET u.first_seen = r.first, u.last_seen = r.last, u.n_docs = 0, u.langs = []
SET u.first_seen = CASE WHEN r.first < u.first_seen THEN r.first ELSE u.first_seen END,
    u.last_seen = CASE WHEN r.last > u.last_seen THEN r.last ELSE u.last_seen END
RETURN r.id AS id, id(u) AS node
"""

# One row per (user, item) edge; new events are those whose id the edge has not seen. All new
# values are computed in WITH clauses before the single SET (FalkorDB applies SET at the end).
# Users and items are sought by the node ids their upserts returned (no index lookups); the ids
# are projected first (WITH r.u AS un), which is what makes FalkorDB seek instead of scan.
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


def upsert_users_statement() -> str:
    return _UPSERT_USERS


_STORED_EVENTS = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[p:PURCHASED|VIEWED]->(e:Entity)
WITH r, p, e, type(p) AS rel, [i IN range(0, size(p.ev_ids) - 1) WHERE p.ev_ids[i] IN r.ids] AS seen
WHERE size(seen) > 0 OR (rel = 'PURCHASED' AND e.key IN r.refunded)
RETURN r.user_id AS user_id, rel, e.key AS key,
       [i IN seen | [p.ev_ids[i], p.ev_k[i], p.ev_ts[i], p.ev_amt[i]]] AS events,
       reduce(s = 0, x IN p.ev_n | s + x) AS net_count, reduce(s = 0.0, x IN p.ev_amt | s + x) AS net_amount
"""


def stored_events_statement() -> str:
    return _STORED_EVENTS


EventIdentity = tuple[str, str, str, str, float]  # (relation, item key, type, ts, signed amount)


class _Stored(BaseModel):
    """What the graph already holds of a batch's users: their events by key, and the net purchases
    (count, amount) per item a refund in the batch points at."""

    events: dict[tuple[str, str], EventIdentity] = Field(default_factory=dict)
    purchases: dict[tuple[str, str], tuple[float, float]] = Field(default_factory=dict)


def _stored(store: GraphStore, linked: Sequence[tuple[Event, TargetRef]], batch: int) -> _Stored:
    per_user: dict[str, dict[str, set[str]]] = {}
    for ev, target in linked:
        row = per_user.setdefault(ev.user_id, {"ids": set(), "refunded": set()})
        row["ids"].add(ev.key)
        if ev.type == "refund":
            row["refunded"].add(target.key)
    rows = [{"user_id": u, "ids": sorted(r["ids"]), "refunded": sorted(r["refunded"])} for u, r in per_user.items()]
    out = _Stored()
    for chunk in chunks(rows, batch):
        for uid, rel, key, events, net_count, net_amount in store.ro_query(_STORED_EVENTS, {"rows": chunk}).rows:
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


def _edge_rows(
    accepted: list[tuple[int, Event, TargetRef, EventIdentity]],
) -> tuple[dict[str, dict[str, str]], dict[str, TargetRef], dict[str, list[dict[str, Any]]]]:
    """User rows, item targets and behaviour edge rows (per relation) of the accepted events."""
    users: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    targets: dict[str, TargetRef] = {}
    for _, ev, target, (rel, key, kind, ts, amt) in accepted:
        row = users.setdefault(ev.user_id, {"id": ev.user_id, "first": ts, "last": ts})
        if ts < row["first"]:
            row["first"] = ts
        if ts > row["last"]:
            row["last"] = ts
        targets[key] = target
        edge = edges.get((rel, ev.user_id, key))
        if edge is None:
            edge = edges[(rel, ev.user_id, key)] = {
                "user_id": ev.user_id, "key": key, "currency": None, "category": None, "items": []}
        edge["items"].append({"id": ev.key, "ts": ts, "n": -1 if kind == "refund" else 1, "amt": amt, "k": kind})
        edge["currency"] = ev.currency or edge["currency"]
        edge["category"] = ev.category or edge["category"]
    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (rel, _, _), row in edges.items():
        by_rel[rel].append(row)
    return users, targets, by_rel


class EntityNodes(dict[str, int]):
    """Entity key → node id of the items written so far in one ingest run: an item is upserted
    (with its Wikidata context) once per run, later batches seek it by id."""


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

    Refused events are in report.problems as (index into `linked`, field, message). Users and new
    items are upserted first and return their node ids; the edges and aggregates then go through
    the store's write stream by node id, with the cyclic GC paused as fusion does. Items already in
    `entities` are not written again (their context is the caller's to skip too).
    """
    report = BehaviourReport()
    if not linked:
        return report
    entities = EntityNodes() if entities is None else entities
    with cyclic_gc_paused():
        accepted, report.problems = _plan(linked, _stored(store, linked, batch))
        users, targets, by_rel = _edge_rows(accepted)
        user_nodes: dict[str, int] = {}
        for chunk in chunks(list(users.values()), batch):
            user_nodes.update(store.query(_UPSERT_USERS, {"rows": chunk}).rows)
        for chunk in chunks(entity_rows(t for k, t in targets.items() if k not in entities), batch):
            entities.update(store.query(ENTITY_NODES, {"rows": chunk}).rows)
        at = iso(datetime.now(UTC))
        edge_jobs: list[int] = []  # positions of the edge statements in the stream

        def jobs() -> Iterator[Job]:
            sent = 0
            for job in context_jobs(context, parents, batch):
                yield job
                sent += 1
            for rel, rows in by_rel.items():
                for chunk in chunks(rows, batch):
                    edge_jobs.append(sent)
                    yield behaviour_edge_statement(rel), {"rows": [
                        {**r, "u": user_nodes[r["user_id"]], "e": entities[r["key"]]} for r in chunk]}
                    sent += 1
            for chunk in chunks(sorted(user_nodes.values()), batch):
                yield _USER_AGGREGATES, {"nodes": chunk, "at": at}

        results = store.write_stream(jobs())
        for position in edge_jobs:
            rows = results[position].rows
            if rows:
                report.edges_written += int(rows[0][0] or 0)
                report.events_applied += int(rows[0][1] or 0)
    report.users = sorted(users)
    return report
