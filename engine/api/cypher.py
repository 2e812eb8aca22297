"""POST /cypher: the read-only console. The database enforces read-only (GRAPH.RO_QUERY / READ
session) and the store refuses LOAD CSV there; the API adds a row cap and a timeout and returns the
result as a table and as a graph.

The cap bounds this process: the store reads the first `limit` rows and abandons the rest of the
reply (store.ro_head), so a 3-million-row result costs what 1,000 rows cost here. The timeout is
one budget for running and reading. The database's own memory per query is capped in its config.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from engine.api.deps import get_options, get_store
from engine.api.graphview import GraphBuilder, GraphPayload, cell
from engine.config import ApiSettings
from engine.store import GraphStore, HeadResult, ReadOnlyViolation, StoreError

router = APIRouter(tags=["cypher"])


class CypherRequest(BaseModel):
    query: str = Field(min_length=1, max_length=20_000, examples=["MATCH (u:User) RETURN u.id LIMIT 10"])
    params: dict[str, Any] = Field(default_factory=dict, description="bound as $name parameters")
    limit: int | None = Field(default=None, ge=1, description="rows returned at most (capped by the server)")
    timeout_ms: int | None = Field(default=None, ge=1, description="database-side timeout (capped by the server)")


class CypherResponse(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    graph: GraphPayload
    row_count: int | None = Field(description="rows the query produced; null when cut and the store cannot "
                                  "count them without reading them (Neo4j)")
    truncated: bool = Field(description="true when rows were cut to the limit")
    limit: int
    elapsed_ms: float


_TIMEOUT_MARKERS = ("timed out", "timeout")


def _store_error_status(message: str) -> int:
    lowered = message.lower()
    if any(m in lowered for m in _TIMEOUT_MARKERS):
        return 408
    if "not reachable" in lowered:
        return 503
    return 400  # syntax errors, unknown functions, type errors: the query's fault


def run_cypher(store: GraphStore, req: CypherRequest, options: ApiSettings) -> CypherResponse:
    limit = min(req.limit or options.cypher_max_rows, options.cypher_max_rows)
    timeout = min(req.timeout_ms or options.cypher_timeout_ms, options.cypher_timeout_ms)
    started = time.perf_counter()
    try:
        result = _head(store, req, limit, timeout)
    except ReadOnlyViolation as exc:
        raise HTTPException(400, f"the Cypher console is read-only: {exc}") from None
    except StoreError as exc:
        raise HTTPException(_store_error_status(str(exc)), f"query failed: {exc}") from None
    elapsed = (time.perf_counter() - started) * 1000
    builder = GraphBuilder()
    builder.add_rows(result.rows)
    return CypherResponse(
        columns=result.columns,
        rows=[[cell(v) for v in row] for row in result.rows],
        graph=builder.payload(),
        row_count=result.total,
        truncated=result.truncated,
        limit=limit,
        elapsed_ms=round(elapsed, 2),
    )


def _head(store: GraphStore, req: CypherRequest, limit: int, timeout: int) -> HeadResult:
    head = getattr(store, "ro_head", None)
    if head is not None:
        return head(req.query, req.params or None, max_rows=limit, timeout_ms=timeout)
    # A store without ro_head (a test double, a foreign adapter): whole result, then cut.
    full = store.ro_query(req.query, req.params or None, timeout)
    return HeadResult(columns=full.columns, rows=full.rows[:limit], truncated=len(full.rows) > limit,
                      total=len(full.rows))


@router.post("/cypher", response_model=CypherResponse,
             summary="Run read-only Cypher (row limit, timeout); table and graph output")
def cypher(
    req: CypherRequest,
    store: Annotated[GraphStore, Depends(get_store)],
    options: Annotated[ApiSettings, Depends(get_options)],
) -> CypherResponse:
    return run_cypher(store, req, options)
