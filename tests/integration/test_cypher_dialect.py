"""Every Cypher statement the engine emits passes Neo4j's own linter (no Neo4j server runs here).

Statements are captured from a real workload on FalkorDB (so they also run there) and completed
with the per-predicate variants and the Neo4j DDL, then linted with Neo4j 5 semantics.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.check import derived_statement, revert_conflict, set_statement
from engine.fuse import context_edge_statement, fact_edge_statements
from engine.persona import forget_user, get_conflicts, get_persona
from engine.pipeline import apply_fact_lines
from engine.store import QueryResult
from graph_schema import CONTEXT_RELATIONS, DERIVED_CONFLICT_RULES, PREDICATES, Target
from graph_schema.ddl import neo4j_ddl
from tests.cypherlint import lint_statements
from tests.factlines import fact

pytestmark = pytest.mark.integration


class RecordingStore:
    """Wraps a real store and keeps every statement sent to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.statements: set[str] = set()

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> QueryResult:
        self.statements.add(cypher)
        return self.inner.query(cypher, params)

    def ro_query(self, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None):
        self.statements.add(cypher)
        return self.inner.ro_query(cypher, params, timeout_ms)

    def write_stream(self, jobs):
        return [self.query(cypher, params) for cypher, params in jobs]

    def ensure_schema(self) -> None:
        self.inner.ensure_schema()

    def close(self) -> None:
        self.inner.close()


def workload(store: RecordingStore, settings) -> None:
    allowed = settings.model_copy(update={"allow_sensitive": True})
    apply_fact_lines(store, allowed, [
        fact(doc_id="d1", ts="2020-01-01T00:00:00Z", predicate="LIVES_IN", object_qid="Q956",
             object_types=["Q515"], text="t"),
        fact(doc_id="d2", ts="2021-01-01T00:00:00Z", predicate="LIVES_IN", object_qid="Q64",
             object_types=["Q515"]),
        fact(doc_id="d2", predicate="LIKES", object="tea", sentiment=0.5),
        fact(doc_id="d3", ts="2025-01-01T00:00:00Z", predicate="DISLIKES", object="tea"),
        fact(doc_id="d3", predicate="DIET", value="vegan"),
        fact(doc_id="d3", predicate="LIVES_IN", object_qid="Q76", object_types=["Q5"]),
        fact(doc_id="d3", predicate="RELIGION", object="x"),
    ])
    get_persona(store, "u1")
    for c in get_conflicts(store, "u1"):
        revert_conflict(store, c.id)
    forget_user(store, "u1")


def test_engine_cypher_passes_neo4j_linter(store, settings) -> None:
    recorder = RecordingStore(store)
    workload(recorder, settings)
    statements = set(recorder.statements)
    for name, pred in PREDICATES.items():
        statements.update(fact_edge_statements(name, pred.target))
        statements.add(set_statement(name, pred.target.value))
    statements.update(context_edge_statement(rel) for rel in CONTEXT_RELATIONS)
    statements.update(derived_statement(rule) for rule in DERIVED_CONFLICT_RULES)
    statements.update(neo4j_ddl())
    assert len(recorder.statements) >= 15

    results = lint_statements(sorted(statements))
    problems = [(r.statement, r.errors) for r in results if r.errors]
    assert problems == []


def test_linter_catches_a_broken_statement() -> None:
    (bad,) = lint_statements([fact_edge_statements("LIKES", Target.ENTITY).new.replace("MATCH", "MATC", 1)])
    assert bad.errors
