"""The ordered, pipelined bulk-write path of the FalkorDB store."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from engine.store import StoreError
from engine.store.falkor import FalkorStore


def numbered(n: int) -> Iterator[tuple[str, dict]]:
    for i in range(n):
        yield "MERGE (c:Counter {id: 'c'}) SET c.seen = coalesce(c.seen, []) + [$i] RETURN $i", {"i": i}


def test_statements_run_in_order_and_return_their_results(store: FalkorStore) -> None:
    results = store.write_stream(numbered(40))
    assert [r.scalar() for r in results] == list(range(40))
    assert store.ro_query("MATCH (c:Counter) RETURN c.seen").scalar() == list(range(40))


def test_a_failing_statement_stops_the_stream_and_keeps_what_ran(store: FalkorStore) -> None:
    def jobs() -> Iterator[tuple[str, dict]]:
        yield from numbered(3)
        yield "UNWIND $x AS x RETURN x +", {"x": [1]}  # a syntax error
        yield from numbered(3)

    with pytest.raises(StoreError):
        store.write_stream(jobs())
    assert store.ro_query("MATCH (c:Counter) RETURN c.seen").scalar() == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name == "falkordb-write-stream"]


def test_an_error_while_preparing_rows_reaches_the_caller(store: FalkorStore) -> None:
    def jobs() -> Iterator[tuple[str, dict]]:
        yield from numbered(2)
        raise ValueError("bad row 7: field 'ts'")

    with pytest.raises(ValueError, match="bad row 7"):
        store.write_stream(jobs())
    assert store.ro_query("MATCH (c:Counter) RETURN c.seen").scalar() == [0, 1]
