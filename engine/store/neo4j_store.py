"""Neo4j 5 adapter (Bolt, `neo4j` driver); read-only statements run in READ access-mode sessions."""

from __future__ import annotations

from typing import Any

from engine.store.base import GraphEdge, GraphNode, QueryResult, ReadOnlyViolation, StoreError
from graph_schema.ddl import neo4j_ddl


def _convert(value: Any) -> Any:
    from neo4j.graph import Node, Path, Relationship

    if isinstance(value, Node):
        return GraphNode(id=value.element_id, labels=sorted(value.labels), properties=dict(value))
    if isinstance(value, Relationship):
        return GraphEdge(
            id=value.element_id,
            type=value.type,
            source=value.start_node.element_id if value.start_node else "",
            target=value.end_node.element_id if value.end_node else "",
            properties=dict(value),
        )
    if isinstance(value, Path):
        return [_convert(n) for n in value.nodes] + [_convert(r) for r in value.relationships]
    if isinstance(value, list):
        return [_convert(x) for x in value]
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    return value


class Neo4jStore:
    backend = "neo4j"

    def __init__(self, uri: str, user: str, password: str, database: str | None = None) -> None:
        import neo4j

        self._neo4j = neo4j
        self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
        self._database = database
        try:
            # fail fast with a clear message instead of retrying transactions for 30 s
            self._driver.verify_connectivity()
        except (neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError) as exc:
            self._driver.close()
            raise StoreError(f"Neo4j is not reachable at {uri}: {exc}") from exc

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._run(cypher, params, read_only=False, timeout_ms=None)

    def ro_query(
        self, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None
    ) -> QueryResult:
        return self._run(cypher, params, read_only=True, timeout_ms=timeout_ms)

    def _run(
        self, cypher: str, params: dict[str, Any] | None, *, read_only: bool, timeout_ms: int | None
    ) -> QueryResult:
        neo4j = self._neo4j
        mode = neo4j.READ_ACCESS if read_only else neo4j.WRITE_ACCESS
        q = neo4j.Query(cypher, timeout=timeout_ms / 1000 if timeout_ms else None)

        def work(tx: Any) -> QueryResult:
            result = tx.run(q, params or {})
            keys = list(result.keys())
            rows = [[_convert(rec[k]) for k in keys] for rec in result]
            return QueryResult(columns=keys, rows=rows)

        try:
            with self._driver.session(database=self._database, default_access_mode=mode) as s:
                return s.execute_read(work) if read_only else s.execute_write(work)
        except neo4j.exceptions.ClientError as exc:
            if read_only and "read" in (exc.code or "").lower() + str(exc).lower():
                raise ReadOnlyViolation(f"refused: the read-only path does not run writes ({exc})") from exc
            raise StoreError(str(exc)) from exc
        except neo4j.exceptions.Neo4jError as exc:
            raise StoreError(str(exc)) from exc
        except neo4j.exceptions.DriverError as exc:
            raise StoreError(f"Neo4j is not reachable: {exc}") from exc

    def ensure_schema(self) -> None:
        for statement in neo4j_ddl():
            self.query(statement)

    def close(self) -> None:
        self._driver.close()
