"""The only way stages reach the graph: one protocol, two real adapters."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from engine.config import Settings
from engine.store.base import (
    GraphEdge,
    GraphNode,
    GraphStore,
    HeadResult,
    OutboundAccessRefused,
    QueryMemoryExceeded,
    QueryResult,
    ReadOnlyViolation,
    StoreError,
    bulk_rows,
    refuse_outbound,
)
from engine.store.durability import CompactReport, LoadProgress, ProgressCallback
from engine.store.embedded import EmbeddedFalkorDB, ServerConfig, ServerStatus

NEO4J_SCHEMES = {"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"}


def open_store(
    settings: Settings, *, start: bool = True, on_progress: ProgressCallback | None = None
) -> GraphStore:
    """Connect to the configured backend; the embedded server is started (or reused) on demand,
    waited for while it loads its data (`on_progress` sees each load step)."""
    uri = settings.graph_uri
    if uri == "embedded":
        server = EmbeddedFalkorDB(settings.home, settings.db)
        status = server.start(stall_timeout_s=settings.db.start_stall_s, on_progress=on_progress) if start \
            else server.status()
        if not status.running or status.port is None:
            raise StoreError("the embedded FalkorDB is not running; start it with `persona db start`")
        from engine.store.falkor import FalkorStore

        store: GraphStore = FalkorStore("127.0.0.1", status.port, settings.graph_name, password=status.password)
    else:
        parsed = urlparse(uri)
        if parsed.scheme in {"falkordb", "redis"}:
            from engine.store.falkor import FalkorStore

            store = FalkorStore(parsed.hostname or "127.0.0.1", parsed.port or 6379, settings.graph_name,
                                password=unquote(parsed.password) if parsed.password else None)
        elif parsed.scheme in NEO4J_SCHEMES:
            from engine.store.neo4j_store import Neo4jStore

            store = Neo4jStore(
                uri, settings.neo4j_user, settings.neo4j_password, settings.neo4j_database
            )
        else:
            raise StoreError(
                f"unsupported PERSONA_GRAPH_URI {uri!r}: use 'embedded', falkordb://host:port "
                "or neo4j://host:7687"
            )
    store.ensure_schema()
    return store


__all__ = [
    "CompactReport",
    "EmbeddedFalkorDB",
    "LoadProgress",
    "ServerConfig",
    "GraphEdge",
    "GraphNode",
    "GraphStore",
    "HeadResult",
    "OutboundAccessRefused",
    "QueryMemoryExceeded",
    "QueryResult",
    "ReadOnlyViolation",
    "ServerStatus",
    "StoreError",
    "bulk_rows",
    "open_store",
    "refuse_outbound",
]
