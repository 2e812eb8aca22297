"""Every statement the segment compiler, events, export and discovery emit passes Neo4j's linter.

Statements are captured from a real workload on FalkorDB (so they also run there) and completed
with every shape the compiler can produce (open / restricted, keyed / any entity, with and without
windows and ranges, per predicate), then linted with Neo4j 5 semantics.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from engine.export import export_segment, export_statement
from engine.fuse import known_users_statement, new_users_statement, stored_events_statement
from engine.ingest import Event
from engine.pipeline import apply_events, apply_fact_lines
from engine.segment import apply_definition, parse_definition, run_segment, segment_members, service
from engine.segment.compile import (
    HIERARCHY,
    LOCATION,
    closure_level_statement,
    count_statement,
    entities_by_qid_statement,
    entity_labels_statement,
    known_qids_statement,
    leaf_statement,
    universe_statement,
)
from engine.segment.discover import discover, labels_statement, projection_statements
from tests.cypherlint import lint_statements
from tests.factlines import fact
from tests.integration.test_cypher_dialect import RecordingStore

pytestmark = pytest.mark.integration
NOW = datetime(2024, 6, 1, tzinfo=UTC)

REPRESENTATIVE = [
    {"likes": {"descendant_of": "Q349"}},
    {"likes": {}},
    {"lives_in": {"within": "Q148", "min_confidence": 0.5, "within_days": 30}},
    {"works_at": {"qid": ["Q483915"], "since": "2024-01-01", "until": "2024-05-01"}},
    {"owns": {"key": "nil:product:x", "until": "2024-05-01"}},
    {"gender": ["female", "male"]},
    {"age_band": {"value": "25-34", "within_days": 365}},
    {"sentiment": {"label": "negative"}},
    {"sentiment": {"label": ["negative", "neutral"], "within_days": 30, "count": {"gte": 2, "lt": 10}}},
    {"sentiment": {"label": "negative", "toward": {"descendant_of": "Q349"}, "since": "2024-01-01"}},
    {"sentiment": {"label": "positive", "toward": {}}},
    {"purchased": {}},
    {"purchased": {"descendant_of": "Q349", "count": {"gte": 2}, "within_days": 90}},
    {"purchased": {"qid": "Q5372", "amount": {"gte": 100}, "since": "2024-01-01", "until": "2024-03-01"}},
    {"viewed": {"within": "Q148", "count": {"eq": 3}, "until": "2024-03-01"}},
    {"rfm": {"monetary": {"gte": 500}}},
    {"rfm": {"recency_days": {"lte": 30}, "frequency": {"gt": 2, "lte": 10}}},
    {"rfm": {"recency_days": {"eq": 7}}},
    {"rfm": {"recency_days": {"gt": 90, "lt": 365}}},
]


def compiled_variants() -> set[str]:
    out: set[str] = set()
    for cond in REPRESENTATIVE:
        leaf = parse_definition({"id": "x", "where": cond}).root.leaves()[0]
        for keyed, restricted in itertools.product((True, False), repeat=2):
            stmt = leaf_statement(leaf, keyed=keyed, restricted=restricted, now=NOW, min_confidence=0.5)
            out.add(stmt.cypher)
            if not restricted:
                out.add(count_statement(stmt).cypher)
    # Other predicates only change the (whitelisted) relationship type, which the linter cannot judge.
    out |= {closure_level_statement(HIERARCHY), closure_level_statement(LOCATION), entities_by_qid_statement(),
            entity_labels_statement(), known_qids_statement(), universe_statement(restricted=True),
            universe_statement(restricted=False), known_users_statement(), new_users_statement(),
            stored_events_statement(),
            labels_statement(),
            *projection_statements()}
    out |= {export_statement(delta=d, public_reason=p, paged=g)
            for d, p, g in itertools.product((True, False), repeat=3)}
    constants = [getattr(service, n) for n in dir(service) if n.startswith("_") and n.strip("_").isupper()]
    out |= {c for c in constants if isinstance(c, str) and "MATCH" in c}
    return out


def workload(store, settings, tmp_path) -> None:
    apply_fact_lines(store, settings, [
        fact(doc_id="d1", user_id="ana", predicate="LIKES", object="basketball"),
        fact(doc_id="d2", user_id="ana", predicate="LIVES_IN", object_qid="Q8686", object_types=["Q515"]),
        fact(doc_id="d3", user_id="bob", predicate="GENDER", value="female"),
    ])
    apply_events(store, [
        Event(user_id="ana", type="purchase", item="basketball", item_qid="Q5372", amount=600, ts=NOW),
        Event(user_id="bob", type="cart", item="Nike", item_qid="Q483915", ts=NOW),
    ])
    for i, cond in enumerate(REPRESENTATIVE):
        apply_definition(store, {"id": f"s{i}", "where": {"all": [cond, {"not": {"gender": "male"}}]}})
        run_segment(store, f"s{i}", now=NOW)
        run_segment(store, f"s{i}", incremental=True, now=NOW)
    apply_definition(store, {"id": "raw", "cypher": "MATCH (u:User) RETURN u.id AS user_id"})
    run_segment(store, "raw", now=NOW)
    segment_members(store, "s0")
    export_segment(store, "s0", fmt="csv", out=tmp_path / "x.csv")
    export_segment(store, "s0", fmt="csv", out=tmp_path / "y.csv", since="2020-01-01T00:00:00Z", hash_ids=True,
                   salt="x")
    discover(store, min_size=1)
    service.delete_segment(store, "raw")


def test_segment_cypher_passes_neo4j_linter(store, settings, tmp_path) -> None:
    recorder = RecordingStore(store)
    workload(recorder, settings, tmp_path)
    ours = {s for s in recorder.statements if "MEMBER_OF" in s or "Segment" in s or "ev_" in s or "$uids" in s}
    assert len(ours) >= 10
    statements = sorted(recorder.statements | compiled_variants())
    results = lint_statements(statements)
    problems = [(r.statement, r.errors) for r in results if r.errors]
    assert problems == []
