"""FalkorDB adapter (embedded by default, or any FalkorDB reached by host and port)."""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from falkordb import FalkorDB
from falkordb.edge import Edge
from falkordb.node import Node
from falkordb.path import Path as FPath

from engine.store.base import GraphEdge, GraphNode, QueryResult, ReadOnlyViolation, StoreError
from graph_schema.ddl import falkordb_ddl


def _convert(value: Any) -> Any:
    if isinstance(value, Node):
        return GraphNode(id=str(value.id), labels=list(value.labels or []), properties=dict(value.properties))
    if isinstance(value, Edge):
        return GraphEdge(
            id=str(value.id),
            type=str(value.relation),
            source=str(value.src_node.id if isinstance(value.src_node, Node) else value.src_node),
            target=str(value.dest_node.id if isinstance(value.dest_node, Node) else value.dest_node),
            properties=dict(value.properties),
        )
    if isinstance(value, FPath):
        return [_convert(x) for x in value.nodes()] + [_convert(x) for x in value.edges()]
    if isinstance(value, list):
        return [_convert(x) for x in value]
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    return value


def _column_name(header_item: Any) -> str:
    name = header_item[1] if isinstance(header_item, (list, tuple)) else header_item
    return name.decode() if isinstance(name, bytes) else str(name)


_JSON_KEY = re.compile(r'(?<=[{,])"([A-Za-z_][A-Za-z0-9_]*)":')
# JSON escapes FalkorDB's Cypher lexer does not decode; such values take the client's own path.
_UNSAFE_ESCAPE = re.compile(r"\\u00|\\b|\\f")


def params_header(params: dict[str, Any]) -> str | None:
    """The `CYPHER name=value ...` prefix, built with the C JSON encoder.

    The client's own serialiser is pure Python and was half of bulk-fusion time. JSON map keys
    are unquoted into Cypher identifiers (a quote inside a value is always escaped, so the
    lookbehind only ever sees real keys). Returns None when the fast form cannot be used.
    """
    parts = []
    for name, value in params.items():
        if not name.isidentifier():
            return None
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return None
        if _UNSAFE_ESCAPE.search(text):
            return None
        parts.append(name + "=" + _JSON_KEY.sub(r"\1:", text))
    return "CYPHER " + " ".join(parts) + " "


class FalkorStore:
    backend = "falkordb"

    def __init__(self, host: str, port: int, graph: str = "persona") -> None:
        try:
            self._db = FalkorDB(host=host, port=port)  # asks the server for INFO right away
        except redis.ConnectionError as exc:
            raise StoreError(f"FalkorDB is not reachable at {host}:{port}: {exc}") from exc
        self._graph = self._db.select_graph(graph)
        self.graph_name = graph

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._run(cypher, params, read_only=False, timeout_ms=None)

    def ro_query(
        self, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None
    ) -> QueryResult:
        return self._run(cypher, params, read_only=True, timeout_ms=timeout_ms)

    def _run(
        self, cypher: str, params: dict[str, Any] | None, *, read_only: bool, timeout_ms: int | None
    ) -> QueryResult:
        header = params_header(params) if params else None
        if header is not None:
            cypher, params = header + cypher, None
        try:
            if read_only:
                res = self._graph.ro_query(cypher, params=params, timeout=timeout_ms)
            else:
                res = self._graph.query(cypher, params=params)
        except redis.ResponseError as exc:
            msg = str(exc)
            if read_only and "read-only" in msg.lower():
                raise ReadOnlyViolation(f"refused: the read-only path does not run writes ({msg})") from exc
            raise StoreError(msg) from exc
        except redis.ConnectionError as exc:
            raise StoreError(f"FalkorDB is not reachable: {exc}") from exc
        columns = [_column_name(h) for h in (res.header or [])]
        rows = [[_convert(v) for v in row] for row in (res.result_set or [])]
        return QueryResult(columns=columns, rows=rows)

    def ensure_schema(self) -> None:
        for statement in falkordb_ddl():
            try:
                self.query(statement)
            except StoreError as exc:
                if "already indexed" not in str(exc).lower():
                    raise

    def close(self) -> None:
        try:
            self._db.connection.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection is not an error
            pass
