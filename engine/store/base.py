"""The one protocol every graph backend implements, and the neutral result shape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from engine.store.durability import CompactReport


class StoreError(RuntimeError):
    """The graph store could not be reached or refused a statement."""


class ReadOnlyViolation(StoreError):
    """A statement sent through the read-only path tried to write."""


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

    def close(self) -> None: ...
