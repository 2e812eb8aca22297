"""Fusion's id-based path: users and targets upserted first return their node ids, fact edges seek
both ends by id, new edges are created whole behind a guard. Against the real embedded FalkorDB."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.contracts import DocumentIn, DocumentSentiment, ResolvedFact, TargetRef
from engine.fuse import fuse
from engine.fuse.facts import FuseReport, NodeIds, fact_edge_jobs, plan_facts
from graph_schema import Target

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def entity(q: str) -> TargetRef:
    return TargetRef(label=Target.ENTITY, key=q, props={"qid": q, "label_en": f"label {q}"})


def band(b: str) -> TargetRef:
    return TargetRef(label=Target.VALUE, key=f"age_band:{b}", props={"kind": "age_band", "value": b})


def doc(doc_id: str, user: str, hours: int, **extra: Any) -> DocumentIn:
    return DocumentIn(doc_id=doc_id, user_id=user, ts=T0 + timedelta(hours=hours), source="s", **extra)


def fact(d: DocumentIn, predicate: str, target: TargetRef, confidence: float, **extra: Any) -> ResolvedFact:
    return ResolvedFact(doc_id=d.doc_id, user_id=d.user_id, ts=d.ts, predicate=predicate, target=target,
                        confidence=confidence, **extra)


def batches() -> tuple[tuple[list[DocumentIn], list[ResolvedFact]], tuple[list[DocumentIn], list[ResolvedFact]]]:
    """Two batches; the second meets users and edges of the first (edges to fold into and edges new
    to a known user), brings a new user, sentiment, tiers, a re-sent document and a Value target."""
    a1, a2, b1 = doc("a1", "ana", 0, lang="en", text="t"), doc("a2", "ana", 5), doc("b1", "bo", 1, lang="zh")
    first = ([a1, a2, b1], [
        fact(a1, "LIKES", entity("Q1"), 0.6, sentiment=0.5, tier="encoder"),
        fact(a1, "LIKES", entity("Q2"), 0.7),
        fact(a2, "LIKES", entity("Q1"), 0.5),
        fact(a2, "AGE_BAND", band("25-34"), 0.9),
        fact(b1, "OWNS", entity("Q3"), 0.8, sentiment=-0.25),
    ])
    a3 = doc("a3", "ana", 9, lang="es",
             sentiment=DocumentSentiment(label="negative", confidence=0.8, reason="r", alerts=["police"]))
    b2, c1 = doc("b2", "bo", 3), doc("c1", "cy", 2, text="hola")
    second = ([a3, b2, c1, a1], [
        fact(a3, "LIKES", entity("Q1"), 0.4, sentiment=-1.0, tier="llm"),  # folds into ana-Q1
        fact(a3, "DISLIKES", entity("Q2"), 0.8),                          # new edge of a known user
        fact(a1, "LIKES", entity("Q2"), 0.7),                             # already counted: no-op
        fact(b2, "OWNS", entity("Q3"), 0.5, tier="encoder"),              # folds, newer evidence
        fact(b2, "AGE_BAND", band("25-34"), 0.6),                         # new edge, known target
        fact(c1, "LIKES", entity("Q9"), 0.3, sentiment=0.0),              # new user, new entity
    ])
    return first, second


def graph(store) -> dict[str, Any]:
    """Every node and edge by its natural key, without wall-clock stamps."""
    nodes = {}
    for labels, props in store.ro_query("MATCH (n) RETURN labels(n), properties(n)").rows:
        props.pop("updated_at", None)
        nodes[(labels[0], props.get("id") or props.get("key"))] = props
    edges = {}
    for rel, a, b, props in store.ro_query(
        "MATCH (a)-[f]->(b) RETURN type(f), coalesce(a.id, a.key), coalesce(b.id, b.key), properties(f)"
    ).rows:
        assert (rel, a, b) not in edges, "an edge was doubled"
        edges[(rel, a, b)] = props
    return {"nodes": nodes, "edges": edges}


def assert_same(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert one["nodes"] == other["nodes"]
    assert one["edges"].keys() == other["edges"].keys()
    for key, props in one["edges"].items():
        theirs = other["edges"][key]
        assert props.keys() == theirs.keys(), key
        for name, value in props.items():
            if isinstance(value, float):  # noisy-OR folded in Cypher vs computed at once in Python
                assert math.isclose(value, theirs[name], rel_tol=1e-12), (key, name)
            else:
                assert value == theirs[name], (key, name)


def test_two_batches_by_node_id_equal_one_batch(store, falkor_server) -> None:
    from engine.store.falkor import FalkorStore

    (d1, f1), (d2, f2) = batches()
    fuse(store, d1, f1, batch=2)  # small chunks: several statements per kind
    second = fuse(store, d2, f2, batch=2)
    assert second.fact_edges_written == 5  # 3 new (ana DISLIKES Q2, bo AGE_BAND, cy LIKES Q9), 2 folded into
    assert second.documents == 4

    whole = FalkorStore("127.0.0.1", int(falkor_server.port or 0), store.graph_name + "_whole",
                        password=falkor_server.password)
    whole.ensure_schema()
    try:
        fuse(whole, d1 + d2, f1 + f2)
        assert_same(graph(store), graph(whole))
    finally:
        whole.query("MATCH (n) DETACH DELETE n")

    g = graph(store)
    q1 = g["edges"][("LIKES", "ana", "Q1")]
    assert q1["docs"] == ["a1", "a2", "a3"] and q1["evidence_count"] == 3
    assert math.isclose(q1["confidence"], 1 - 0.4 * 0.5 * 0.6)
    assert q1["sentiment_n"] == 2 and math.isclose(q1["sentiment"], -0.25)
    assert q1["tier"] == "llm" and q1["first_seen"] == "2024-03-01T00:00:00Z"
    owns = g["edges"][("OWNS", "bo", "Q3")]
    assert (owns["first_seen"], owns["last_seen"]) == ("2024-03-01T01:00:00Z", "2024-03-01T03:00:00Z")
    assert owns["tier"] == "encoder"
    new = g["edges"][("LIKES", "cy", "Q9")]
    assert new == {"docs": ["c1"], "evidence": ["c1"], "evidence_count": 1, "confidence": 0.3,
                   "first_seen": "2024-03-01T02:00:00Z", "valid_from": "2024-03-01T02:00:00Z",
                   "last_seen": "2024-03-01T02:00:00Z", "status": "active",
                   "sentiment_sum": 0.0, "sentiment_n": 1, "sentiment": 0.0}
    ana = g["nodes"][("User", "ana")]
    assert ana == {"id": "ana", "first_seen": "2024-03-01T00:00:00Z", "last_seen": "2024-03-01T09:00:00Z",
                   "n_docs": 3, "langs": ["en", "es"]}
    assert g["nodes"][("Document", "a3")] == {
        "id": "a3", "user_id": "ana", "ts": "2024-03-01T09:00:00Z", "source": "s", "lang": "es",
        "sentiment": "negative", "sentiment_confidence": 0.8, "reason": "r", "alerts": ["police"]}
    # absent values stay absent (no null-valued properties)
    assert g["nodes"][("Document", "a2")] == {"id": "a2", "user_id": "ana", "ts": "2024-03-01T05:00:00Z",
                                              "source": "s"}
    assert {("ABOUT", d, u) for (rel, d, u) in g["edges"] if rel == "ABOUT"} == {
        ("ABOUT", "a1", "ana"), ("ABOUT", "a2", "ana"), ("ABOUT", "a3", "ana"),
        ("ABOUT", "b1", "bo"), ("ABOUT", "b2", "bo"), ("ABOUT", "c1", "cy")}

    again = fuse(store, d1 + d2, f1 + f2)
    assert again.fact_edges_written == 0
    assert_same(graph(store), g)


def test_a_new_edge_that_exists_after_all_is_left_alone(store) -> None:
    """The plan takes every edge for new (as if the users had been new when the batch was read);
    edges another writer made in between are neither doubled nor overwritten."""
    (d1, f1), _ = batches()
    fuse(store, d1, f1)
    before = graph(store)

    later = [f.model_copy(update={"confidence": 0.99, "doc_id": "x"}) for f in f1]
    plan = plan_facts(later)
    nodes = NodeIds()
    nodes.add_users(store.ro_query("MATCH (u:User) RETURN u.id, id(u)").rows)
    for label in Target:
        nodes.add_targets(label, store.ro_query(f"MATCH (o:{label.value}) RETURN o.key, id(o)").rows)
    report = FuseReport()
    store.write_stream(fact_edge_jobs(store, plan, nodes, set(), 1000, report))

    assert report.fact_edges_written == 4
    assert_same(graph(store), before)


def test_upserts_return_the_node_ids_edges_are_written_to(store) -> None:
    (d1, f1), _ = batches()
    fuse(store, d1, f1)
    rows = store.ro_query(
        "MATCH (u:User)-[f:LIKES]->(o:Entity) RETURN u.id, o.key, id(u), id(o) ORDER BY u.id, o.key").rows
    assert [r[:2] for r in rows] == [["ana", "Q1"], ["ana", "Q2"]]
    # a second call seeks the same nodes by the ids its upserts return: no second User/Entity node
    (d2, f2) = batches()[1]
    fuse(store, d2, f2)
    counts = store.ro_query("MATCH (n) RETURN labels(n)[0] AS l, count(n) ORDER BY l").rows
    assert counts == [["Document", 6], ["Entity", 4], ["User", 3], ["Value", 1]]
