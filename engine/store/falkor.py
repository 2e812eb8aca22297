"""FalkorDB adapter (embedded by default, or any FalkorDB reached by host and port)."""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis
from falkordb import FalkorDB
from falkordb.edge import Edge
from falkordb.helpers import stringify_param_value
from falkordb.node import Node
from falkordb.path import Path as FPath

from engine.store.base import (
    GraphEdge,
    GraphNode,
    HeadResult,
    QueryMemoryExceeded,
    QueryResult,
    ReadOnlyViolation,
    StoreError,
    refuse_outbound,
)
from engine.store.durability import CompactReport, compact_redis
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


# JSON escapes FalkorDB's Cypher lexer does not decode; such values take the client's own path.
_UNSAFE_ESCAPE = re.compile(r"\\u00|\\b|\\f")


def _map_keys(value: Any, keys: set[str]) -> None:
    """Collect the keys of every map nested in `value`."""
    if isinstance(value, dict):
        keys.update(value)
        for v in value.values():
            if isinstance(v, (dict, list, tuple)):
                _map_keys(v, keys)
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, (dict, list, tuple)):
                _map_keys(v, keys)


def _cypher_literal(value: Any) -> str | None:
    """A JSON value rewritten as a Cypher literal: map keys unquoted into identifiers.

    Inside a JSON string every quote is escaped, and a closing quote is never followed by an
    identifier character, so with identifier-only keys `"k":` occurs only where the key k is
    written; one str.replace per key is several times faster than a regex scan.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    if _UNSAFE_ESCAPE.search(text):
        return None
    keys: set[str] = set()
    if "{" in text:  # no map anywhere otherwise (a brace inside a string only costs the walk)
        _map_keys(value, keys)
    for key in keys:
        if not (isinstance(key, str) and key.isidentifier() and key.isascii()):
            return None
        text = text.replace('"' + key + '":', key + ":")
    return text


def params_header(params: dict[str, Any]) -> str | None:
    """The `CYPHER name=value ...` prefix, built with the C JSON encoder.

    The client's own serialiser is pure Python and was half of bulk-fusion time. Returns None
    when the fast form cannot be used (the client's serialiser then takes over).
    """
    parts = []
    for name, value in params.items():
        if not name.isidentifier():
            return None
        literal = _cypher_literal(value)
        if literal is None:
            return None
        parts.append(name + "=" + literal)
    return "CYPHER " + " ".join(parts) + " "


_END_OF_STREAM = object()


def _with_params(cypher: str, params: dict[str, Any] | None) -> str:
    """The statement text with its `CYPHER name=value` header (for commands sent by hand)."""
    if not params:
        return cypher
    header = params_header(params) or (
        "CYPHER " + " ".join(f"{k}={stringify_param_value(v)}" for k, v in params.items()) + " "
    )
    return header + cypher


def _auth(conn: dict[str, Any]) -> list[str] | None:
    return [conn.get("username") or "default", conn["password"]] if conn.get("password") else None


def _refused_or_failed(message: str, read_only: bool) -> StoreError:
    """The server's error reply as a store error; a write on the read-only path is a refusal."""
    if read_only and "read-only" in message.lower():
        return ReadOnlyViolation(f"refused: the read-only path does not run writes ({message})")
    if "mem consumption exceeded capacity" in message.lower():
        return QueryMemoryExceeded(
            "refused: the query needed more memory than the per-query cap (FalkorDB "
            f"QUERY_MEM_CAPACITY; the embedded server's query_mem_capacity_mb) ({message})"
        )
    return StoreError(message)


class FalkorStore:
    backend = "falkordb"

    def __init__(self, host: str, port: int, graph: str = "persona", password: str | None = None) -> None:
        try:
            self._db = FalkorDB(host=host, port=port, password=password)  # asks the server for INFO right away
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
        if read_only:
            refuse_outbound(cypher)
        return self._execute(*self._prepare(cypher, params), read_only=read_only, timeout_ms=timeout_ms)

    def write_stream(self, jobs: Iterable[tuple[str, dict[str, Any]]]) -> list[QueryResult]:
        """Run writing statements in order; each one's text is built while the server runs the previous.

        The jobs iterable itself runs on the helper thread, so lazy row preparation overlaps with
        the database too. The database executes writes one at a time, so one in flight is enough.
        """
        ready: queue.Queue[Any] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def hand_over(item: Any) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for cypher, params in jobs:
                    if not hand_over(self._prepare(cypher, params)):
                        return
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                hand_over(exc)
                return
            hand_over(_END_OF_STREAM)

        producer = threading.Thread(target=produce, name="falkordb-write-stream", daemon=True)
        producer.start()
        results: list[QueryResult] = []
        try:
            while (item := ready.get()) is not _END_OF_STREAM:
                if isinstance(item, BaseException):
                    raise item
                results.append(self._execute(*item, read_only=False, timeout_ms=None))
        finally:
            stop.set()
            producer.join()
        return results

    @staticmethod
    def _prepare(cypher: str, params: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
        header = params_header(params) if params else None
        return (header + cypher, None) if header is not None else (cypher, params)

    def _execute(
        self, cypher: str, params: dict[str, Any] | None, *, read_only: bool, timeout_ms: int | None
    ) -> QueryResult:
        try:
            if read_only:
                res = self._graph.ro_query(cypher, params=params, timeout=timeout_ms)
            else:
                res = self._graph.query(cypher, params=params)
        except redis.ResponseError as exc:
            raise _refused_or_failed(str(exc), read_only) from exc
        except redis.ConnectionError as exc:
            raise StoreError(f"FalkorDB is not reachable: {exc}") from exc
        columns = [_column_name(h) for h in (res.header or [])]
        rows = [[_convert(v) for v in row] for row in (res.result_set or [])]
        return QueryResult(columns=columns, rows=rows)

    def ro_stream(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        batch_size: int = 100_000,
        timeout_ms: int | None = None,
    ) -> Iterator[list[list[Any]]]:
        """Run one read-only statement and yield its rows in batches, reading the reply as it arrives.

        For bulk reads (segment export): the verbose result set on a connection of its own, no
        QueryResult. Strings, integers and null come back as str, int and None, anything else as
        FalkorDB's text for it (floats as "%.15g"), so return scalars. One statement is one
        consistent read; nothing is sent until the first batch is asked for.
        """
        from engine.store.falkor_stream import ServerReplyError, stream_rows

        refuse_outbound(cypher)
        command = ["GRAPH.RO_QUERY", self.graph_name, _with_params(cypher, params)]
        if timeout_ms:
            command += ["timeout", str(int(timeout_ms))]
        conn = self._connection_kwargs()
        rows = stream_rows(
            conn.get("host", "127.0.0.1"),
            int(conn.get("port", 6379)),
            command,
            batch_size=batch_size,
            auth=_auth(conn),
            connect_timeout=conn.get("socket_connect_timeout"),
            timeout=conn.get("socket_timeout"),
        )
        try:
            yield from rows
        except ServerReplyError as exc:
            raise _refused_or_failed(str(exc), read_only=True) from exc
        finally:
            rows.close()

    def ro_head(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        max_rows: int,
        timeout_ms: int,
    ) -> HeadResult:
        """The first `max_rows` rows of a read-only statement (nodes, edges, maps as in ro_query).

        FalkorDB knows the row count before sending a row (the reply's array length), so `total`
        is exact; the rows past `max_rows` are never read: the connection is closed mid-reply.
        The database timeout and the read share one budget of `timeout_ms`.
        """
        from falkordb.query_result import QueryResult as FalkorReply

        from engine.store.falkor_stream import Deadline, ServerReplyError, head_rows

        refuse_outbound(cypher)
        deadline = Deadline(timeout_ms)
        text = _with_params(cypher, params)
        command = ["GRAPH.RO_QUERY", self.graph_name, text, "--compact", "timeout", str(max(1, int(timeout_ms)))]
        conn = self._connection_kwargs()
        try:
            header, raw_rows, total = head_rows(
                conn.get("host", "127.0.0.1"), int(conn.get("port", 6379)), command,
                max_rows=max_rows, deadline=deadline, auth=_auth(conn),
            )
        except ServerReplyError as exc:
            raise _refused_or_failed(str(exc), read_only=True) from exc
        if not header:
            return HeadResult(total=0)
        try:
            # The client's own parser turns the compact rows into nodes/edges (label and property
            # names looked up by id); the statistics are not needed.
            reply = FalkorReply(self._graph, [header, raw_rows, []])
        except redis.ResponseError as exc:
            raise _refused_or_failed(str(exc), read_only=True) from exc
        columns = [_column_name(h) for h in (reply.header or [])]
        rows = [[_convert(v) for v in row] for row in (reply.result_set or [])]
        return HeadResult(columns=columns, rows=rows, truncated=total > max_rows, total=total)

    def _connection_kwargs(self) -> dict[str, Any]:
        return dict(self._db.connection.connection_pool.connection_kwargs)

    def ensure_schema(self) -> None:
        for statement in falkordb_ddl():
            try:
                self.query(statement)
            except StoreError as exc:
                if "already indexed" not in str(exc).lower():
                    raise

    def compact(self, wait: bool = True) -> CompactReport:
        """Rewrite the server's append-only log as one snapshot (RDB save when the log is off)."""
        return compact_redis(self._db.connection, wait=wait)

    def drop_query_log(self) -> int:
        from engine.store.embedded import drop_telemetry

        return drop_telemetry(self._db.connection)

    def residue(self, contains: Sequence[str], equals: Sequence[str] = ()) -> list[str]:
        """Every database of the server: key names and values by type, queued messages decoded,
        and this graph's node and relationship properties (engine.store.falkor_residue)."""
        from engine.store.falkor_residue import server_residue

        return [hit.describe() for hit in server_residue(self._db.connection, self.graph_name, contains, equals)]

    def close(self) -> None:
        try:
            self._db.connection.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection is not an error
            pass
