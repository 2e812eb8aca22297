"""Neo4j 5 adapter (Bolt, `neo4j` driver); read-only statements run in READ access-mode sessions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from engine.store.base import (
    GraphEdge,
    GraphNode,
    HeadResult,
    QueryResult,
    ReadOnlyViolation,
    StoreError,
    refuse_outbound,
)
from engine.store.durability import CompactReport
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
        if read_only:
            refuse_outbound(cypher)
        neo4j = self._neo4j
        mode = neo4j.READ_ACCESS if read_only else neo4j.WRITE_ACCESS

        # A transaction function takes its timeout from unit_of_work: tx.run refuses Query objects.
        @neo4j.unit_of_work(timeout=timeout_ms / 1000 if timeout_ms else None)
        def work(tx: Any) -> QueryResult:
            result = tx.run(cypher, params or {})
            keys = list(result.keys())
            rows = [[_convert(rec[k]) for k in keys] for rec in result]
            return QueryResult(columns=keys, rows=rows)

        with self._store_errors():
            with self._driver.session(database=self._database, default_access_mode=mode) as s:
                return s.execute_read(work) if read_only else s.execute_write(work)

    def write_stream(self, jobs: Iterable[tuple[str, dict[str, Any]]]) -> list[QueryResult]:
        return [self.query(cypher, params) for cypher, params in jobs]

    def ro_stream(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        batch_size: int = 100_000,
        timeout_ms: int | None = None,
    ) -> Iterator[list[list[Any]]]:
        """Run one read-only statement in a READ transaction; yield its rows in batches as the
        driver fetches them (records are pulled lazily, so memory stays at about one batch)."""
        refuse_outbound(cypher)
        neo4j = self._neo4j
        timeout = timeout_ms / 1000 if timeout_ms else None
        with self._store_errors():
            with self._driver.session(
                database=self._database, default_access_mode=neo4j.READ_ACCESS, fetch_size=10_000
            ) as s:
                with s.begin_transaction(timeout=timeout) as tx:  # Query objects are for session.run only
                    batch: list[list[Any]] = []
                    for record in tx.run(cypher, params or {}):
                        batch.append([_convert(v) for v in record.values()])
                        if len(batch) >= batch_size:
                            yield batch
                            batch = []
                    if batch:
                        yield batch

    def ro_head(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        max_rows: int,
        timeout_ms: int,
    ) -> HeadResult:
        """The first `max_rows` rows of a read-only statement, from a READ transaction.

        Records are pulled in batches of at most max_rows + 1; after the one that shows the result
        is longer, the transaction is rolled back and the driver discards the rest on the server.
        Bolt does not say how many rows a result has, so `total` is known only when not cut.
        """
        refuse_outbound(cypher)
        neo4j = self._neo4j
        rows: list[list[Any]] = []
        truncated = False
        with self._store_errors():
            with self._driver.session(
                database=self._database, default_access_mode=neo4j.READ_ACCESS, fetch_size=min(max_rows + 1, 1000)
            ) as s:
                with s.begin_transaction(timeout=timeout_ms / 1000) as tx:
                    result = tx.run(cypher, params or {})
                    keys = list(result.keys())
                    for record in result:
                        if len(rows) >= max_rows:
                            truncated = True
                            break
                        rows.append([_convert(v) for v in record.values()])
                    tx.rollback()  # a read: nothing to commit; drops the unread rows
        return HeadResult(columns=keys, rows=rows, truncated=truncated, total=None if truncated else len(rows))

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """Driver errors as the store's own: a write refused by a READ session, or any other."""
        neo4j = self._neo4j
        try:
            yield
        except neo4j.exceptions.ClientError as exc:
            text = f"{exc.code or ''} {exc}".lower()
            if "accessmode" in text or "read access mode" in text or "read-only" in text:
                raise ReadOnlyViolation(f"refused: the read-only path does not run writes ({exc})") from exc
            raise StoreError(str(exc)) from exc
        except neo4j.exceptions.Neo4jError as exc:
            raise StoreError(str(exc)) from exc
        except neo4j.exceptions.DriverError as exc:
            raise StoreError(f"Neo4j is not reachable: {exc}") from exc

    def ensure_schema(self) -> None:
        for statement in neo4j_ddl():
            self.query(statement)

    def compact(self, wait: bool = True) -> CompactReport:
        """Nothing to do from here: Neo4j prunes its transaction logs by its own retention
        policy (db.tx_log.rotation.retention_policy); deleted records are reused by the store."""
        return CompactReport(
            backend=self.backend, method="none", started=False, completed=True,
            detail="Neo4j manages its own files; set db.tx_log.rotation.retention_policy so "
            "transaction logs holding deleted data are pruned",
        )

    def drop_query_log(self) -> int:
        """Neo4j's query log (db.logs.query) is a server file out of reach from here: 0."""
        return 0

    def residue(self, contains: Sequence[str], equals: Sequence[str] = ()) -> list[str]:
        """Nodes and relationships with a property equal to one of the values, or a list property
        holding one (Neo4j keeps no key-value records of its own)."""
        needles = [*contains, *equals]
        hits = []
        for kind, pattern, name in (("graph node", "(e)", "labels(e)[0]"), ("graph edge", "()-[e]->()", "type(e)")):
            rows = self.ro_query(
                f"MATCH {pattern} WITH e, [k IN keys(e) WHERE e[k] IN $needles OR "
                "(valueType(e[k]) STARTS WITH 'LIST' AND any(x IN e[k] WHERE x IN $needles))] AS props "
                f"WHERE size(props) > 0 RETURN {name}, props LIMIT 20",
                {"needles": list(needles)},
            ).rows
            hits += [f"{kind} {label}: {props}" for label, props in rows]
        return hits

    def close(self) -> None:
        self._driver.close()
