"""FalkorStore.ro_stream: the bulk-read path that parses GRAPH.RO_QUERY replies as they arrive."""

from __future__ import annotations

import pytest

from engine.store import ReadOnlyViolation, StoreError

pytestmark = pytest.mark.integration

# Strings that look like RESP framing, or that a line-based reader could split wrongly.
ODD = ["", "plain", "a\r\nb", "$5\r\nhello\r\n", "*3\r\n:1\r\n", "-ERR not an error", "名字😀", "tab\tq\"uote\\",
       "x" * 70_000]


def test_rows_match_ro_query_in_batches(store) -> None:
    store.query("UNWIND range(0, size($names) - 1) AS i CREATE (:User {id: 'u' + toString(i), name: $names[i], n: i})",
                {"names": ODD})
    statement = "MATCH (u:User) RETURN u.id AS id, u.name AS name, u.n AS n, u.missing AS missing ORDER BY n"
    batches = list(store.ro_stream(statement, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert [row for b in batches for row in b] == store.ro_query(statement).rows
    assert [row[1] for b in batches for row in b] == ODD


def test_many_rows_across_socket_reads_and_params(store) -> None:
    statement = "UNWIND range(1, $n) AS i RETURN i, $tag + toString(i) AS s"
    rows = [r for b in store.ro_stream(statement, {"n": 120_000, "tag": "bell\x07|"}, batch_size=50_000) for r in b]
    assert len(rows) == 120_000
    assert rows[0] == [1, "bell\x07|1"] and rows[-1] == [120_000, "bell\x07|120000"]


def test_other_types_come_back_as_text(store) -> None:
    [[row]] = list(store.ro_stream("RETURN 0.5 AS f, true AS b, null AS z"))
    assert row == ["0.5", "true", None]


def test_empty_result_yields_nothing(store) -> None:
    assert list(store.ro_stream("MATCH (u:User {id: $id}) RETURN u.id", {"id": "nobody"})) == []


def test_errors_and_writes_are_refused(store) -> None:
    with pytest.raises(StoreError):
        list(store.ro_stream("MATCH (u:User RETURN u"))
    with pytest.raises(ReadOnlyViolation):
        list(store.ro_stream("CREATE (:User {id: 'x'}) RETURN 1"))
    assert store.ro_query("MATCH (u:User) RETURN count(u)").scalar() == 0


def test_a_stream_closed_early_leaves_the_store_usable(store) -> None:
    stream = store.ro_stream("UNWIND range(1, 300000) AS i RETURN i", batch_size=1000)
    assert len(next(stream)) == 1000
    stream.close()
    assert store.ro_query("RETURN 1").scalar() == 1
