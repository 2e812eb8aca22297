"""Entity and Value nodes, and the Wikidata context edges between entities (INSTANCE_OF,
SUBCLASS_OF, LOCATED_IN, MANUFACTURER), written with the facts and events that point at them so
segments are pure graph traversals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from engine.contracts import TargetRef
from engine.store import GraphStore
from graph_schema import CONTEXT_RELATIONS, Target, checked_identifier
from linkers import ContextEdge

Job = tuple[str, dict[str, Any]]


def chunks(rows: list[Any], size: int) -> list[list[Any]]:
    """Consecutive slices of at most `size` rows: one UNWIND statement each."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]


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


def context_edge_statement(rel: str) -> str:
    if rel not in CONTEXT_RELATIONS:
        raise ValueError(f"{rel!r} is not a context relation")
    return _CONTEXT_EDGES.replace("{rel}", checked_identifier(rel))


def target_jobs(
    entities: dict[str, dict[str, Any]], values: dict[str, dict[str, Any]], batch: int
) -> Iterator[tuple[Target, Job]]:
    """The Entity and Value nodes facts point at (rows from target_row, by key); each statement
    returns (key, node id) per row, for writers that then seek the nodes by id."""
    for chunk in chunks(list(entities.values()), batch):
        yield Target.ENTITY, (ENTITY_NODES, {"rows": chunk})
    for chunk in chunks(list(values.values()), batch):
        yield Target.VALUE, (VALUE_NODES, {"rows": chunk})


def target_row(target: TargetRef) -> dict[str, Any]:
    """The upsert row of a fact's target node."""
    if target.label is Target.ENTITY:
        return _entity_row(target.key, target.props)
    return {"key": target.key, **target.props}


def _entity_row(key: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "qid": props.get("qid"),
        "label_en": props.get("label_en"),
        "label_zh": props.get("label_zh"),
        "label_es": props.get("label_es"),
        "description": props.get("description"),
    }


# The same upserts, returning each node's id (for writers that then seek nodes by id).
ENTITY_NODES = _UPSERT_ENTITIES + "RETURN r.key AS key, id(e) AS node\n"
VALUE_NODES = _UPSERT_VALUES + "RETURN r.key AS key, id(v) AS node\n"


def entity_jobs(rows: list[dict[str, Any]], batch: int) -> Iterator[Job]:
    for chunk in chunks(rows, batch):
        yield _UPSERT_ENTITIES, {"rows": chunk}


def write_entities(store: GraphStore, rows: list[dict[str, Any]], batch: int) -> None:
    for statement, params in entity_jobs(rows, batch):
        store.query(statement, params)


def context_jobs(edges: list[ContextEdge], parents: dict[str, dict[str, Any]], batch: int) -> Iterator[Job]:
    """The parent entities, then the Wikidata context edges; `parents` holds the properties of the
    nodes they point at."""
    yield from entity_jobs([_entity_row(k, p) for k, p in parents.items()], batch)
    by_rel: dict[str, list[dict[str, str]]] = defaultdict(list)
    for e in edges:
        by_rel[e.rel].append({"child": e.child, "parent": e.parent})
    for rel, rows in by_rel.items():
        statement = context_edge_statement(rel)
        for chunk in chunks(rows, batch):
            yield statement, {"rows": chunk}


def write_context(
    store: GraphStore,
    edges: list[ContextEdge],
    parents: dict[str, dict[str, Any]],
    batch: int,
) -> None:
    """Write Wikidata context edges (see context_jobs)."""
    for statement, params in context_jobs(edges, parents, batch):
        store.query(statement, params)


def entity_rows(targets: Iterable[TargetRef]) -> list[dict[str, Any]]:
    """Entity rows for the targets that are entities, once per key."""
    rows = {t.key: _entity_row(t.key, t.props) for t in targets if t.label is Target.ENTITY}
    return list(rows.values())
