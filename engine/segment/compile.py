"""Segment leaves → parameterised openCypher statements (the same text runs on FalkorDB and Neo4j).

Each leaf of a definition becomes one read-only statement returning the user's node id plus what its reason
needs; `engine.segment.evaluate` combines the leaves with set algebra (all / any / not), which keeps
every statement a plain MATCH (no EXISTS subqueries, which FalkorDB lacks).

Every statement has two shapes: *open* (all users) and *restricted* (`UNWIND $nodes`: the users'
internal node ids, seeked directly), used for incremental refresh and for narrowing the later
conditions of an `all` once the candidate set is small. An open statement can be *paged*: only the
users whose node id is in [$lo, $hi), so a broad audience is read in pieces that each fit the
database's per-query memory cap. Every statement returns `node` (the user's) first and only scalar
columns: lists are packed into one string (`pack` / `unpack`), which the bulk read path streams.
Hierarchy closures (descendant_of / within) are resolved to entity keys first, level by level
(`closure_level_statement`), so the leaf statements start from indexed entity keys and a DAG of
Wikidata classes never enumerates paths.

Relationship types are spliced only through graph_schema's `checked_identifier`; values are always
parameters.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import iso, to_utc
from engine.segment.model import (
    BehaviourCond,
    FactCond,
    Leaf,
    LiteralCond,
    Range,
    RfmCond,
    SentimentCond,
    Window,
)
from graph_schema import PREDICATES, checked_identifier

HIERARCHY = ("INSTANCE_OF", "SUBCLASS_OF")
FACT_HIT = "AS hit"  # the last column of a fact leaf: one row per matching edge
BEHAVIOUR_EDGE_SUMS = "WITH u, e, "  # the first line reading an edge's events
BEHAVIOUR_AGGREGATE = "WITH u, sum(n) AS n, sum(amt) AS amount"
SENTIMENT_AGGREGATE = "WITH u, count(DISTINCT d) AS n"
# What only the reasons need (dropped when counting: a collected list per user for a million users
# would not fit the per-query memory cap).
BEHAVIOUR_REASONS = ", collect(CASE WHEN n > 0 THEN e.key END)[..3] AS keys"
SENTIMENT_REASONS = ", collect(DISTINCT d.id)[..3] AS docs"
LOCATION = ("LOCATED_IN",)


class Statement(BaseModel):
    cypher: str
    params: dict[str, Any] = Field(default_factory=dict)


def rel_union(types: tuple[str, ...] | list[str]) -> str:
    return "|".join(checked_identifier(t) for t in types)


def fact_types() -> tuple[str, ...]:
    """Every text-derived fact predicate (what `sentiment.toward` may go through)."""
    return tuple(p.name for p in PREDICATES.values() if not p.behaviour)


# --- entity closure --------------------------------------------------------------------------


def entities_by_qid_statement() -> str:
    return "UNWIND $qids AS q MATCH (e:Entity {qid: q}) RETURN e.key AS key, e.qid AS qid"


def closure_level_statement(rels: tuple[str, ...]) -> str:
    """One BFS level downwards: the children of the given entity keys through `rels`."""
    return (
        "UNWIND $keys AS k "
        f"MATCH (p:Entity {{key: k}})<-[:{rel_union(rels)}]-(c:Entity) "
        "RETURN DISTINCT p.key AS parent, c.key AS child"
    )


def entity_labels_statement() -> str:
    return (
        "UNWIND $keys AS k MATCH (e:Entity {key: k}) "
        "RETURN e.key AS key, e.qid AS qid, coalesce(e.label_en, e.label_zh, e.label_es, e.key) AS label"
    )


def known_qids_statement() -> str:
    return "UNWIND $qids AS q MATCH (e:Entity {qid: q}) RETURN DISTINCT e.qid AS qid"


# --- helpers ---------------------------------------------------------------------------------


def _range_where(expr: str, name: str, rng: Range, params: dict[str, Any]) -> list[str]:
    out = []
    for i, (op, value) in enumerate(rng.comparisons()):
        p = f"{name}_{i}"
        params[p] = value
        out.append(f"{expr} {op} ${p}")
    return out


def window_params(window: Window, now: datetime, params: dict[str, Any]) -> tuple[bool, bool]:
    since, until = window.bounds(now)
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until
    return since is not None, until is not None


def _start(restricted: bool, keyed: bool, pattern_from_entity: str, pattern_from_user: str) -> list[str]:
    """The MATCH that binds u (and e): from entity keys, from restricted users, or from all users.

    Restricted users are bound in their own MATCH + WITH first: in one pattern FalkorDB's planner
    would start from the indexed entity side and walk every user for each id.
    """
    if restricted:
        return ["UNWIND $nodes AS n", "MATCH (u:User) WHERE id(u) = n", "WITH u", f"MATCH (u){pattern_from_user}"]
    if keyed:
        return ["UNWIND $keys AS k", f"MATCH {pattern_from_entity}"]
    return [f"MATCH (u:User){pattern_from_user}"]


def page_where(paged: bool) -> list[str]:
    """Users of one page: node ids in [$lo, $hi) (FalkorDB scans such a range by label and id)."""
    return ["id(u) >= $lo", "id(u) < $hi"] if paged else []


def pack(expr: str) -> str:
    """Cypher: the length-prefixed concatenation ("3|abc2|de") of a list of strings, one scalar."""
    return f"reduce(s = '', x IN {expr} | s + toString(size(x)) + '|' + x)"


def unpack(packed: str | None) -> list[str]:
    """The strings of a `pack`ed value."""
    parts: list[str] = []
    rest = packed or ""
    while rest:
        size, rest = rest.split("|", 1)
        n = int(size)
        parts.append(rest[:n])
        rest = rest[n:]
    return parts


RETURN_USER = "RETURN id(u) AS node"  # what writes need; user ids never leave the database


# --- leaf statements -------------------------------------------------------------------------


def fact_statement(
    predicate: str, cond: FactCond | LiteralCond, *, label: str, keyed: bool, restricted: bool,
    now: datetime, min_confidence: float, paged: bool = False,
) -> Statement:
    """Active fact edges of one predicate to the given keys (or to anything)."""
    rel = checked_identifier(predicate)
    lab = checked_identifier(label)
    params: dict[str, Any] = {"min_conf": cond.min_confidence if cond.min_confidence is not None else min_confidence}
    lines = _start(
        restricted,
        keyed,
        f"(e:{lab} {{key: k}})<-[f:{rel}]-(u:User)",
        f"-[f:{rel}]->(e:{lab})",
    )
    where = [*page_where(paged), "f.status = 'active'", "f.confidence >= $min_conf"]
    if restricted and keyed:
        where.append("e.key IN $keys")
    has_since, has_until = window_params(cond, now, params)
    if has_since:
        where.append("f.last_seen >= $since")
    if has_until:
        where.append("f.first_seen < $until")
    lines.append("WHERE " + " AND ".join(where))
    # One row per matching edge, its hit packed into one string (key, then its last evidence
    # documents): the client folds a user's edges (max confidence, first three hits), which costs
    # the database no aggregation table and ships no lists.
    lines.append(
        f"{RETURN_USER}, f.confidence AS confidence, toString(size(e.key)) + '|' + e.key + "
        f"{pack('coalesce(f.evidence[-3..], [])')} {FACT_HIT}"
    )
    return Statement(cypher="\n".join(lines), params=params)


def unpack_hit(packed: str) -> tuple[str, tuple[str, ...]]:
    """(entity key, evidence doc ids) of a fact leaf's packed hit."""
    parts = unpack(packed)
    return parts[0], tuple(parts[1:])


def behaviour_statement(
    predicate: str, cond: BehaviourCond, *, keyed: bool, restricted: bool, now: datetime, paged: bool = False
) -> Statement:
    """Net event count / amount per user over matching items, optionally within a window.

    Each behaviour edge keeps its events as parallel lists (ev_ts, ev_n, ev_amt), so a window is
    an exact sum over the events inside it, not an approximation from first/last timestamps.
    """
    rel = checked_identifier(predicate)
    params: dict[str, Any] = {}
    lines = _start(restricted, keyed, f"(e:Entity {{key: k}})<-[p:{rel}]-(u:User)", f"-[p:{rel}]->(e:Entity)")
    first = [*page_where(paged), *(["e.key IN $keys"] if restricted and keyed else [])]
    has_since, has_until = window_params(cond, now, params)
    if not cond.count.test(0):
        # An edge with no event in the window adds 0 to every sum; when a count of 0 cannot match,
        # such edges are dropped by their first/last timestamps before any list is read.
        first += [*(["p.last_ts >= $since"] if has_since else []), *(["p.first_ts < $until"] if has_until else [])]
    if first:
        lines.append("WHERE " + " AND ".join(first))
    if has_since or has_until:
        inside = " AND ".join(
            x for x in ("ts[i] >= $since" if has_since else "", "ts[i] < $until" if has_until else "") if x
        )
        # the lists are bound once: indexing a property inside reduce() reads the whole list each time
        lines.append(f"{BEHAVIOUR_EDGE_SUMS}p.ev_ts AS ts, p.ev_n AS ns, p.ev_amt AS amts")
        idx = "range(0, size(ts) - 1)"
        lines.append(
            f"WITH u, e, reduce(s = 0, i IN {idx} | s + CASE WHEN {inside} THEN ns[i] ELSE 0 END) AS n, "
            f"reduce(s = 0.0, i IN {idx} | s + CASE WHEN {inside} THEN amts[i] ELSE 0.0 END) AS amt"
        )
    else:
        lines.append(f"{BEHAVIOUR_EDGE_SUMS}p.count AS n, p.amount AS amt")
    lines.append(BEHAVIOUR_AGGREGATE + BEHAVIOUR_REASONS)
    where = _range_where("n", "count", cond.count, params)
    if cond.amount is not None:
        where += _range_where("amount", "amount", cond.amount, params)
    lines.append("WHERE " + " AND ".join(where))
    lines.append(f"{RETURN_USER}, n, amount, {pack('keys')} AS keys")
    return Statement(cypher="\n".join(lines), params=params)


def sentiment_statement(
    cond: SentimentCond, *, keyed: bool, restricted: bool, now: datetime, paged: bool = False
) -> Statement:
    """Documents about the user with one of the labels; `toward` limits them to the evidence of
    active facts about matching entities."""
    params: dict[str, Any] = {"labels": list(cond.label)}
    if cond.toward is not None:
        rels = rel_union(fact_types())
        lines = _start(restricted, keyed, f"(e:Entity {{key: k}})<-[f:{rels}]-(u:User)", f"-[f:{rels}]->(e:Entity)")
        first = [*page_where(paged), "f.status = 'active'", *(["e.key IN $keys"] if restricted and keyed else [])]
        lines.append("WHERE " + " AND ".join(first))
        lines.append("MATCH (d:Document)-[:ABOUT]->(u)")
        where = ["d.id IN f.docs", "d.sentiment IN $labels"]
    else:
        lines = _start(True, False, "", "<-[:ABOUT]-(d:Document)") if restricted \
            else ["MATCH (d:Document)-[:ABOUT]->(u:User)"]
        where = [*page_where(paged), "d.sentiment IN $labels"]
    has_since, has_until = window_params(cond, now, params)
    if has_since:
        where.append("d.ts >= $since")
    if has_until:
        where.append("d.ts < $until")
    lines.append("WHERE " + " AND ".join(where))
    lines.append(SENTIMENT_AGGREGATE + SENTIMENT_REASONS)
    lines.append("WHERE " + " AND ".join(_range_where("n", "count", cond.count, params)))
    lines.append(f"{RETURN_USER}, n, {pack('docs')} AS docs")
    return Statement(cypher="\n".join(lines), params=params)


def _recency_where(rng: Range, now: datetime, params: dict[str, Any]) -> list[str]:
    """recency_days (days since the last purchase, at query time) → bounds on last_purchase_ts."""
    out = []
    base = to_utc(now)
    for i, (op, days) in enumerate(rng.comparisons()):
        p = f"recency_{i}"
        cutoff = iso(base - timedelta(days=days))
        if op == "=":
            params[p], params[p + "_lo"] = cutoff, iso(base - timedelta(days=days + 1))
            out.append(f"u.last_purchase_ts <= ${p} AND u.last_purchase_ts > ${p}_lo")
            continue
        params[p] = cutoff
        # more days since the purchase = an older timestamp: the comparison flips
        flipped = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}[op]
        out.append(f"u.last_purchase_ts {flipped} ${p}")
    return out


def rfm_statement(cond: RfmCond, *, restricted: bool, now: datetime, paged: bool = False) -> Statement:
    params: dict[str, Any] = {}
    where = [*page_where(paged), "u.purchase_count IS NOT NULL"]
    if cond.recency_days is not None:
        where += _recency_where(cond.recency_days, now, params)
    if cond.frequency is not None:
        where += _range_where("u.purchase_count", "frequency", cond.frequency, params)
    if cond.monetary is not None:
        where += _range_where("u.purchase_amount", "monetary", cond.monetary, params)
    lines = ["UNWIND $nodes AS n", "MATCH (u:User) WHERE id(u) = n", "WITH u"] if restricted else ["MATCH (u:User)"]
    lines.append("WHERE " + " AND ".join(where))
    lines.append(
        f"{RETURN_USER}, u.purchase_count AS frequency, u.purchase_amount AS monetary, "
        "u.last_purchase_ts AS last_purchase_ts"
    )
    return Statement(cypher="\n".join(lines), params=params)


def count_statement(statement: Statement) -> Statement:
    """The same leaf, counting its users server-side (used to evaluate the most selective first)."""
    head, _, last = statement.cypher.rpartition("\n")
    if not last.startswith(RETURN_USER):
        raise ValueError("not a compiled leaf statement")
    if last.endswith(FACT_HIT):
        # fact leaves: count users straight from the matching edges
        return Statement(cypher=head + "\nRETURN count(DISTINCT u) AS n", params=statement.params)
    lines = head.split("\n")
    sums = next((i for i, line in enumerate(lines) if line.startswith(BEHAVIOUR_EDGE_SUMS)), None)
    if sums is not None:
        # behaviour: the users with a matching edge (in the window's time span), an upper bound that
        # reads no event list
        return Statement(cypher="\n".join(lines[:sums]) + "\nRETURN count(DISTINCT u) AS n", params=statement.params)
    lines = [line.replace(SENTIMENT_REASONS, "") for line in lines]
    return Statement(cypher="\n".join(lines) + "\nRETURN count(*) AS n", params=statement.params)


def universe_statement(*, restricted: bool, paged: bool = False) -> str:
    if restricted:
        return f"UNWIND $nodes AS n MATCH (u:User) WHERE id(u) = n {RETURN_USER}"
    return f"MATCH (u:User){' WHERE id(u) >= $lo AND id(u) < $hi' if paged else ''} {RETURN_USER}"


def nodes_of_users_statement() -> str:
    """Node ids of user ids (what a raw Cypher leaf returns)."""
    return "UNWIND $uids AS uid MATCH (u:User {id: uid}) RETURN u.id AS user_id, id(u) AS node"


def leaf_statement(
    leaf: Leaf, *, keyed: bool, restricted: bool, now: datetime, min_confidence: float, paged: bool = False
) -> Statement:
    """The statement of one leaf; `keyed` = it carries `$keys` (an entity/value selection);
    `paged` = only the users with node ids in [$lo, $hi) (open statements)."""
    paged = paged and not restricted
    if leaf.kind == "fact" and leaf.fact is not None and leaf.predicate:
        return fact_statement(leaf.predicate, leaf.fact, label="Entity", keyed=keyed, restricted=restricted,
                              now=now, min_confidence=min_confidence, paged=paged)
    if leaf.kind == "literal" and leaf.literal is not None and leaf.predicate:
        return fact_statement(leaf.predicate, leaf.literal, label="Value", keyed=True, restricted=restricted,
                              now=now, min_confidence=min_confidence, paged=paged)
    if leaf.kind == "behaviour" and leaf.behaviour is not None and leaf.predicate:
        return behaviour_statement(leaf.predicate, leaf.behaviour, keyed=keyed, restricted=restricted, now=now,
                                   paged=paged)
    if leaf.kind == "sentiment" and leaf.sentiment is not None:
        return sentiment_statement(leaf.sentiment, keyed=keyed, restricted=restricted, now=now, paged=paged)
    if leaf.kind == "rfm" and leaf.rfm is not None:
        return rfm_statement(leaf.rfm, restricted=restricted, now=now, paged=paged)
    if leaf.kind == "cypher" and leaf.cypher is not None:
        return Statement(cypher=leaf.cypher, params={"now": iso(to_utc(now))})
    raise ValueError(f"{leaf.path}: cannot compile leaf of kind {leaf.kind}")
