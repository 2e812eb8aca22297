"""The one protocol every graph backend implements, and the neutral result shape."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from engine.store.durability import CompactReport


class StoreError(RuntimeError):
    """The graph store could not be reached or refused a statement."""


class ReadOnlyViolation(StoreError):
    """A statement sent through the read-only path tried to write."""


class OutboundAccessRefused(ReadOnlyViolation):
    """A statement on the read-only path would make the database read a URL or a file
    (LOAD CSV, APOC loaders): the console must not be a way out of the machine."""


# LOAD, then any whitespace or comments, then CSV; matched on the raw text, ignoring string
# literals on purpose: a superset of what the database parses as the clause, so no quoting trick
# hides it. The price is that the words inside a string literal are refused too: pass such data
# as a $parameter. The APOC procedures read URLs/files or run Cypher built from strings (Neo4j).
_GAP = r"(?:\s|/\*.*?\*/|//[^\n\r]*(?:\r\n|\n|\r|$))*"
_NAME_GAP = r"(?:\s|`|/\*.*?\*/|//[^\n\r]*(?:\r\n|\n|\r|$))*"  # `apoc`.`load` is one name too
_OUTBOUND = re.compile(
    r"\bLOAD" + _GAP + r"CSV\b"
    r"|\bapoc" + _NAME_GAP + r"\." + _NAME_GAP + r"(?:load|import|export|cypher|periodic|systemdb)\b",
    re.IGNORECASE | re.DOTALL,
)


def refuse_outbound(cypher: str) -> None:
    """Raise OutboundAccessRefused when a read-only statement could reach out of the database."""
    match = _OUTBOUND.search(cypher)
    if match is not None:
        clause = " ".join(match.group(0).split())[:40]
        raise OutboundAccessRefused(
            f"refused: {clause!r} is not allowed on the read-only path (it makes the database open "
            "URLs or files); pass data as $parameters instead"
        )


class QueryMemoryExceeded(StoreError):
    """A statement needed more memory than the database's per-query cap allows."""


class GraphNode(BaseModel):
    id: str
    labels: list[str]
    properties: dict[str, Any] = Field(default_factory=dict)


class GraphEdge(BaseModel):
    id: str
    type: str
    source: str
    target: str
    properties: dict[str, Any] = Field(default_factory=dict)


class QueryResult(BaseModel):
    """Rows with nodes and edges turned into GraphNode / GraphEdge, the same on every backend."""

    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows and self.rows[0] else None


class HeadResult(QueryResult):
    """The first rows of a read-only result, read until `max_rows` and then abandoned."""

    truncated: bool = False
    total: int | None = Field(default=None, description="rows the query produced, when the store knows")


@runtime_checkable
class GraphStore(Protocol):
    backend: str

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> QueryResult:
        """Run a (possibly writing) statement."""
        ...

    def ro_query(
        self, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None
    ) -> QueryResult:
        """Run a statement the database itself holds to read-only."""
        ...

    def ro_head(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        max_rows: int,
        timeout_ms: int,
    ) -> HeadResult:
        """Run a read-only statement, keep at most `max_rows` rows and drop the rest unread.

        For the Cypher console: client memory stays at `max_rows` rows whatever the query
        returns, and `timeout_ms` bounds the whole call (running and reading), not only the
        database's execution.
        """
        ...

    def write_stream(self, jobs: Iterable[tuple[str, dict[str, Any]]]) -> list[QueryResult]:
        """Run writing statements in the order given (a bulk load); their results, in order."""
        ...

    def ro_stream(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        batch_size: int = 100_000,
        timeout_ms: int | None = None,
    ) -> Iterator[list[list[Any]]]:
        """Run one read-only statement and yield its rows in batches, for bulk reads (exports).

        No QueryResult: rows are plain lists. Return scalar columns: strings, integers and null
        come back as themselves on every backend, other types may come back as text (FalkorDB
        sends floats as "%.15g"). One statement is one consistent read.
        """
        ...

    def ensure_schema(self) -> None:
        """Create indexes and constraints if missing."""
        ...

    def compact(self, wait: bool = True) -> CompactReport:
        """Rewrite the database's files so deleted data is gone from disk and restarts stay fast.

        Call after bulk ingests and after forget. wait=False starts it and returns; a report
        with method "none" means the backend manages its files itself.
        """
        ...

    def drop_query_log(self) -> int:
        """Delete what the database keeps of recent queries with their parameters (FalkorDB's
        telemetry streams); returns how many logs were dropped (0 where the backend keeps none here)."""
        ...

    def residue(self, contains: Sequence[str], equals: Sequence[str] = ()) -> list[str]:
        """Places in the database still holding a user, described for a person; empty when none.

        Keys, streams and records whose name or value contains one of `contains` (a user id, whole
        document texts) or equals one of `equals` (its document ids); this graph's properties equal to any.
        """
        ...

    def close(self) -> None: ...


def bulk_rows(
    store: GraphStore, cypher: str, params: dict[str, Any] | None = None, *, timeout_ms: int | None = None,
    batch_size: int = 100_000,
) -> list[list[Any]]:
    """All rows of a read-only statement, through the bulk path (`ro_stream`) where the store has one.

    Bulk rows are plain values: numbers other than integers may come back as text (callers convert).
    """
    stream = getattr(store, "ro_stream", None)  # test doubles and foreign stores may lack it
    if stream is None:
        return store.ro_query(cypher, params, timeout_ms).rows
    rows: list[list[Any]] = []
    for batch in stream(cypher, params, batch_size=batch_size, timeout_ms=timeout_ms):
        rows += batch
    return rows
