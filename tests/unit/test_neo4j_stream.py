"""Neo4jStore.ro_stream against a stand-in driver (no Neo4j server runs in this suite)."""

from __future__ import annotations

from typing import Any

import neo4j
import pytest

from engine.store import ReadOnlyViolation, StoreError
from engine.store.neo4j_store import Neo4jStore


class FakeRecord:
    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def values(self) -> list[Any]:
        return self._values


class FakeTx:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def __enter__(self) -> FakeTx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.closed.append("tx")

    def run(self, query: Any, parameters: dict[str, Any]) -> Any:
        if not isinstance(query, str):  # the real driver refuses Query objects outside session.run
            raise ValueError("Query object is only supported for session.run")
        self.driver.calls.append((query, parameters))
        if self.driver.error is not None:
            raise self.driver.error
        return iter(FakeRecord(list(r)) for r in self.driver.rows)


class FakeSession:
    def __init__(self, driver: FakeDriver, config: dict[str, Any]) -> None:
        self.driver = driver
        driver.sessions.append(config)

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.closed.append("session")

    def begin_transaction(self, timeout: float | None = None) -> FakeTx:
        self.driver.timeouts.append(timeout)
        return FakeTx(self.driver)


class FakeDriver:
    def __init__(self, rows: list[list[Any]], error: Exception | None = None) -> None:
        self.rows, self.error = rows, error
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sessions: list[dict[str, Any]] = []
        self.timeouts: list[float | None] = []
        self.closed: list[str] = []

    def session(self, **config: Any) -> FakeSession:
        return FakeSession(self, config)


def fake_store(driver: FakeDriver) -> Neo4jStore:
    store = Neo4jStore.__new__(Neo4jStore)  # skip connecting
    store._neo4j = neo4j
    store._driver = driver
    store._database = "db"
    return store


def test_batches_in_a_read_transaction() -> None:
    driver = FakeDriver([["u1", 0.5], ["u2", None], ["u3", 1.0]])
    batches = list(fake_store(driver).ro_stream("MATCH (u) RETURN u.id, u.x", {"a": 1}, batch_size=2, timeout_ms=1500))
    assert batches == [[["u1", 0.5], ["u2", None]], [["u3", 1.0]]]
    assert driver.calls == [("MATCH (u) RETURN u.id, u.x", {"a": 1})]
    assert driver.sessions[0]["default_access_mode"] == neo4j.READ_ACCESS and driver.sessions[0]["database"] == "db"
    assert driver.timeouts == [1.5]
    assert driver.closed == ["tx", "session"]


def test_closing_early_ends_the_transaction() -> None:
    driver = FakeDriver([[i] for i in range(10)])
    stream = fake_store(driver).ro_stream("UNWIND range(0, 9) AS i RETURN i", batch_size=3)
    assert next(stream) == [[0], [1], [2]]
    stream.close()
    assert driver.closed == ["tx", "session"]


def test_errors_map_to_store_errors() -> None:
    refused = neo4j.exceptions.ClientError("Writing in read access mode not allowed")
    with pytest.raises(ReadOnlyViolation):
        list(fake_store(FakeDriver([], refused)).ro_stream("CREATE (n) RETURN n"))
    with pytest.raises(StoreError, match="gone"):
        list(fake_store(FakeDriver([], neo4j.exceptions.ServiceUnavailable("gone"))).ro_stream("RETURN 1"))


class FakeResult:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def keys(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def __iter__(self) -> Any:
        return iter(self.rows)


class TxFunctionSession(FakeSession):
    """Runs transaction functions the way the driver does: the timeout comes from unit_of_work."""

    def _call(self, mode: str, work: Any) -> Any:
        self.driver.timeouts.append(getattr(work, "timeout", None))
        self.driver.sessions[-1]["tx"] = mode
        return work(TxFunctionTx(self.driver))

    def execute_read(self, work: Any) -> Any:
        return self._call("read", work)

    def execute_write(self, work: Any) -> Any:
        return self._call("write", work)


class TxFunctionTx(FakeTx):
    def run(self, query: Any, parameters: dict[str, Any]) -> Any:
        super().run(query, parameters)  # refuses Query objects like the real managed transaction
        return FakeResult([{"n": 1}])


def test_queries_pass_plain_text_and_the_timeout_through_unit_of_work() -> None:
    driver = FakeDriver([])
    driver.session = lambda **config: TxFunctionSession(driver, config)  # type: ignore[method-assign]
    store = fake_store(driver)
    assert store.ro_query("RETURN $n AS n", {"n": 1}, timeout_ms=2500).rows == [[1]]
    assert store.query("CREATE (x) RETURN 1 AS n").rows == [[1]]
    assert driver.calls == [("RETURN $n AS n", {"n": 1}), ("CREATE (x) RETURN 1 AS n", {})]
    assert driver.timeouts == [2.5, None]
    assert [s["tx"] for s in driver.sessions] == ["read", "write"]
    assert driver.sessions[0]["default_access_mode"] == neo4j.READ_ACCESS


class HeadResult:
    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def keys(self) -> list[str]:
        return ["i"]

    def __iter__(self) -> Any:
        for r in self.driver.rows:
            self.driver.pulled += 1
            yield FakeRecord(list(r))


class HeadTx(FakeTx):
    def run(self, query: Any, parameters: dict[str, Any]) -> Any:
        self.driver.calls.append((query, parameters))
        return HeadResult(self.driver)

    def rollback(self) -> None:
        self.driver.closed.append("rollback")


class HeadSession(FakeSession):
    def begin_transaction(self, timeout: float | None = None) -> FakeTx:
        self.driver.timeouts.append(timeout)
        return HeadTx(self.driver)


def test_ro_head_stops_after_the_limit_and_rolls_back() -> None:
    driver = FakeDriver([[i] for i in range(1000)])
    driver.pulled = 0  # type: ignore[attr-defined]
    driver.session = lambda **config: HeadSession(driver, config)  # type: ignore[method-assign]
    head = fake_store(driver).ro_head("UNWIND range(0, 999) AS i RETURN i", max_rows=5, timeout_ms=2000)
    assert head.rows == [[0], [1], [2], [3], [4]] and head.truncated and head.total is None
    assert driver.pulled == 6  # type: ignore[attr-defined]  # one past the limit, never the rest
    assert driver.sessions[0]["fetch_size"] == 6 and driver.timeouts == [2.0]
    assert driver.closed == ["rollback", "tx", "session"]
    small = fake_store(driver).ro_head("RETURN 1", max_rows=5000, timeout_ms=2000)
    assert not small.truncated and small.total == 1000


@pytest.mark.parametrize("query", [
    "LOAD CSV FROM 'https://x' AS r RETURN r", "load/**/csv from 'file:///etc/passwd' as r return r",
    "CALL apoc.load.json('https://x')", "CALL `apoc`.`load`.json('https://x')",
    "CALL apoc.cypher.run('LO' + 'AD CSV FROM ...', {})",
])
def test_neo4j_read_paths_refuse_outbound_statements(query: str) -> None:
    driver = FakeDriver([[1]])
    store = fake_store(driver)
    for call in (lambda: store.ro_query(query), lambda: list(store.ro_stream(query)),
                 lambda: store.ro_head(query, max_rows=1, timeout_ms=100)):
        with pytest.raises(ReadOnlyViolation, match="read-only path"):
            call()
    assert driver.sessions == []  # refused before a session was opened
