"""Segment discovery: Louvain communities over the user–entity projection (networkx).

The projection is bipartite: users ↔ entities through active LIKES / OWNS / USES / WANTS facts
(weight = confidence) and PURCHASED edges with a positive net count (weight = 1 + log count).
Each community's users are described by the entities most characteristic of them — by lift,
P(entity | community) / P(entity | everyone), among entities held by enough of the community —
and proposed as a segment `any` of those entities (via the predicate the community uses most).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict

import networkx as nx
from pydantic import BaseModel, Field

from engine.segment.compile import rel_union
from engine.store import GraphStore

INTEREST = ("LIKES", "OWNS", "USES", "WANTS")
MIN_SUPPORT = 0.2  # an entity must be held by ≥20 % of the community to describe it


class DiscoveredEntity(BaseModel):
    key: str
    qid: str | None = None
    label: str
    predicate: str
    lift: float
    share: float


class Proposal(BaseModel):
    id: str
    label: str
    size: int
    entities: list[DiscoveredEntity] = Field(default_factory=list)
    definition: dict = Field(default_factory=dict)


def projection_statements() -> tuple[str, str]:
    interest = (
        "MATCH (u:User) WITH u LIMIT $max_users "
        f"MATCH (u)-[f:{rel_union(INTEREST)}]->(e:Entity) WHERE f.status = 'active' "
        "RETURN u.id AS user_id, type(f) AS predicate, e.key AS key, f.confidence AS weight"
    )
    behaviour = (
        "MATCH (u:User) WITH u LIMIT $max_users "
        "MATCH (u)-[p:PURCHASED]->(e:Entity) WHERE p.count > 0 "
        "RETURN u.id AS user_id, 'PURCHASED' AS predicate, e.key AS key, p.count AS weight"
    )
    return interest, behaviour


def labels_statement() -> str:
    return (
        "UNWIND $keys AS k MATCH (e:Entity {key: k}) "
        "RETURN e.key AS key, e.qid AS qid, coalesce(e.label_en, e.label_zh, e.label_es, e.key) AS label"
    )


def discover(
    store: GraphStore,
    *,
    max_users: int = 50_000,
    min_size: int = 5,
    top: int = 3,
    resolution: float = 1.0,
    seed: int = 42,
) -> list[Proposal]:
    """Communities of users (largest first) with their most characteristic entities."""
    interest, behaviour = projection_statements()
    graph = nx.Graph()
    holders: dict[str, set[str]] = defaultdict(set)  # entity key → users
    preds: dict[str, Counter[str]] = defaultdict(Counter)
    for statement in (interest, behaviour):
        for uid, pred, key, weight in store.ro_query(statement, {"max_users": max_users}).rows:
            w = float(weight or 0)
            w = 1 + math.log(w) if pred == "PURCHASED" and w >= 1 else max(w, 0.01)
            u, e = ("u", uid), ("e", key)
            prev = graph.get_edge_data(u, e, {}).get("weight", 0.0)
            graph.add_edge(u, e, weight=prev + w)
            holders[key].add(uid)
            preds[key][pred] += 1
    users_total = sum(1 for n in graph if n[0] == "u")
    if users_total == 0:
        return []
    communities = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
    proposals: list[Proposal] = []
    for community in communities:
        members = {n[1] for n in community if n[0] == "u"}
        if len(members) < min_size:
            continue
        scored = []
        candidate_keys = {k for uid in members for _, k in graph.edges(("u", uid))}
        for node in candidate_keys:
            key = node[1]
            inside = len(holders[key] & members)
            share = inside / len(members)
            if share < MIN_SUPPORT:
                continue
            lift = share / (len(holders[key]) / users_total)
            scored.append((lift, share, key))
        scored.sort(key=lambda x: (-x[0], -x[1], x[2]))
        if not scored:
            continue
        proposals.append(_proposal(store, members, scored[:top], preds))
    proposals.sort(key=lambda p: (-p.size, p.id))
    return proposals


def _proposal(
    store: GraphStore, members: set[str], scored: list[tuple[float, float, str]],
    preds: dict[str, Counter[str]],
) -> Proposal:
    keys = [k for _, _, k in scored]
    labels = {k: (q, lab) for k, q, lab in store.ro_query(labels_statement(), {"keys": keys}).rows}
    entities = [
        DiscoveredEntity(
            key=k, qid=labels.get(k, (None, k))[0], label=str(labels.get(k, (None, k))[1]),
            predicate=preds[k].most_common(1)[0][0], lift=round(lift, 3), share=round(share, 3),
        )
        for lift, share, k in scored
    ]
    label = "likes " + " + ".join(e.label for e in entities)
    digest = hashlib.sha1("|".join(sorted(keys)).encode(), usedforsecurity=False).hexdigest()[:8]
    by_pred: dict[str, list[str]] = defaultdict(list)
    for e in entities:
        by_pred[e.predicate.lower()].append(e.key)
    conditions = [{pred: {"key": ks}} for pred, ks in sorted(by_pred.items())]
    seg_id = f"discovered-{digest}"
    definition = {
        "id": seg_id,
        "name": label,
        "description": f"Louvain community of {len(members)} users",
        "where": conditions[0] if len(conditions) == 1 else {"any": conditions},
    }
    return Proposal(id=seg_id, label=label, size=len(members), entities=entities, definition=definition)
