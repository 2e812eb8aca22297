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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import TargetRef, iso
from engine.fuse.entities import chunks, entity_rows, write_context, write_entities
from engine.ingest import Event
from engine.store import GraphStore
from graph_schema import checked_identifier, get_predicate
from linkers import ContextEdge

RELATION = {"purchase": "PURCHASED", "refund": "PURCHASED", "view": "VIEWED", "cart": "VIEWED"}


class BehaviourReport(BaseModel):
    events_applied: int = 0
    edges_written: int = 0
    users: list[str] = Field(default_factory=list)


_UPSERT_USERS = """
UNWIND $rows AS r
MERGE (u:User {id: r.id})
ON CREATE SET u.first_seen = r.first, u.last_seen = r.last, u.n_docs = 0, u.langs = []
SET u.first_seen = CASE WHEN r.first < u.first_seen THEN r.first ELSE u.first_seen END,
    u.last_seen = CASE WHEN r.last > u.last_seen THEN r.last ELSE u.last_seen END
"""

# One row per (user, item) edge; new events are those whose id the edge has not seen. All new
# values are computed in WITH clauses before the single SET (FalkorDB applies SET at the end).
_BEHAVIOUR_EDGES = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})
MATCH (e:Entity {key: r.key})
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
UNWIND $ids AS id
MATCH (u:User {id: id})
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


def write_events(
    store: GraphStore,
    linked: Sequence[tuple[Event, TargetRef]],
    context: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    *,
    batch: int = 5000,
) -> BehaviourReport:
    """Users, item entities with their Wikidata context, behaviour edges, then user aggregates."""
    report = BehaviourReport()
    if not linked:
        return report
    users: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    seen: set[tuple[str, str, str, str]] = set()
    targets: dict[str, TargetRef] = {}
    for ev, target in linked:
        ts = iso(ev.ts)
        row = users.setdefault(ev.user_id, {"id": ev.user_id, "first": ts, "last": ts})
        row["first"], row["last"] = min(row["first"], ts), max(row["last"], ts)
        rel = RELATION[ev.type]
        ident = (rel, ev.user_id, target.key, ev.key)
        if ident in seen:
            continue  # the same event twice in one file: once
        seen.add(ident)
        targets[target.key] = target
        edge = edges.setdefault(
            (rel, ev.user_id, target.key),
            {"user_id": ev.user_id, "key": target.key, "currency": None, "category": None, "items": []},
        )
        sign = -1 if ev.type == "refund" else 1
        amount = float(ev.amount or 0.0) if rel == "PURCHASED" else 0.0
        edge["items"].append({"id": ev.key, "ts": ts, "n": sign, "amt": sign * amount, "k": ev.type})
        edge["currency"] = ev.currency or edge["currency"]
        edge["category"] = ev.category or edge["category"]

    for chunk in chunks(list(users.values()), batch):
        store.query(_UPSERT_USERS, {"rows": chunk})
    write_entities(store, entity_rows(targets.values()), batch)
    write_context(store, context, parents, batch)
    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (rel, _, _), row in edges.items():
        by_rel[rel].append(row)
    for rel, rows in by_rel.items():
        statement = behaviour_edge_statement(rel)
        for chunk in chunks(rows, batch):
            res = store.query(statement, {"rows": chunk})
            if res.rows:
                report.edges_written += int(res.rows[0][0] or 0)
                report.events_applied += int(res.rows[0][1] or 0)
    at = iso(datetime.now(UTC))
    for chunk in chunks(sorted(users), batch):
        store.query(_USER_AGGREGATES, {"ids": chunk, "at": at})
    report.users = sorted(users)
    return report
