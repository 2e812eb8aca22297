"""`forget` removes everything of one user and nothing of anyone else."""

from __future__ import annotations

import pytest

from engine.persona import forget_user
from engine.pipeline import apply_fact_lines
from tests.factlines import fact

pytestmark = pytest.mark.integration


def all_property_values(store) -> list[object]:
    """Every property value on every node and edge of the graph (residual scan)."""
    values: list[object] = []
    for (props,) in store.ro_query("MATCH (n) RETURN properties(n)").rows:
        values.extend(props.values())
    for (props,) in store.ro_query("MATCH ()-[r]->() RETURN properties(r)").rows:
        values.extend(props.values())
    flat: list[object] = []
    for v in values:
        flat.extend(v if isinstance(v, list) else [v])
    return flat


def test_forget_leaves_nothing_of_the_user(store, settings) -> None:
    apply_fact_lines(store, settings, [
        fact(doc_id="gone-d1", user_id="gone", ts="2020-01-01T00:00:00Z", predicate="LIVES_IN",
             object_qid="Q956", object_types=["Q515"], text="I live in Beijing"),
        fact(doc_id="gone-d2", user_id="gone", ts="2021-01-01T00:00:00Z", predicate="LIVES_IN",
             object_qid="Q64", object_types=["Q515"]),
        fact(doc_id="gone-d3", user_id="gone", predicate="LIKES", object="my secret bakery"),
        fact(doc_id="gone-d3", user_id="gone", predicate="LIKES", object="tea"),
        fact(doc_id="kept-d1", user_id="kept", predicate="LIKES", object="tea"),
        fact(doc_id="kept-d1", user_id="kept", predicate="LIVES_IN", object_qid="Q64",
             object_types=["Q515"]),
    ])
    store.query(
        "MATCH (u:User {id: 'gone'}) MERGE (s:Segment {id: 'seg'}) "
        "MERGE (u)-[:MEMBER_OF {since: '2024'}]->(s)"
    )
    assert store.ro_query("MATCH (:User {id:'gone'})-[:HAS_CONFLICT]->(c) RETURN count(c)").scalar() == 1

    report = forget_user(store, "gone")

    assert report.user_removed
    values = all_property_values(store)
    for secret in ("gone", "gone-d1", "gone-d2", "gone-d3", "I live in Beijing", "my secret bakery"):
        assert not any(isinstance(v, str) and secret in v for v in values), secret
    assert store.ro_query("MATCH (n:Conflict) RETURN count(n)").scalar() == 0
    assert store.ro_query("MATCH (d:Document) RETURN collect(d.id)").scalar() == ["kept-d1"]
    # shared entities (tea, Berlin) stay with the other user's facts intact
    kept = store.ro_query(
        "MATCH (:User {id: 'kept'})-[f]->(o) WHERE type(f) <> 'HAS_CONFLICT' RETURN type(f) ORDER BY type(f)"
    ).rows
    assert [r[0] for r in kept] == ["LIKES", "LIVES_IN"]
    assert store.ro_query("MATCH (e:Entity {key: 'Q956'}) RETURN count(e)").scalar() == 1
    assert store.ro_query("MATCH (s:Segment {id: 'seg'}) RETURN count(s)").scalar() == 1
    assert store.ro_query("MATCH ()-[m:MEMBER_OF]->() RETURN count(m)").scalar() == 0


def test_forget_unknown_user_reports_it(store) -> None:
    assert not forget_user(store, "nobody").user_removed
