"""Behaviour ingestion (`persona ingest-events`) against the real embedded FalkorDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Settings
from engine.ingest import Event, read_events
from engine.pipeline import apply_events, ingest_events

pytestmark = pytest.mark.integration
runner = CliRunner()


def ev(**kw: object) -> str:
    base = {"user_id": "ana", "type": "purchase", "item": "basketball", "item_qid": "Q5372", "amount": 30.0,
            "currency": "eur", "ts": "2024-05-01T10:00:00Z"}
    base.update(kw)
    return json.dumps(base)


def edge(store, user: str, rel: str = "PURCHASED") -> dict:
    rows = store.ro_query(
        f"MATCH (:User {{id: $u}})-[p:{rel}]->(e:Entity) RETURN e.key, p", {"u": user}).rows
    return {k: p.properties for k, p in rows}


def user(store, uid: str) -> dict:
    return store.ro_query("MATCH (u:User {id: $u}) RETURN u", {"u": uid}).scalar().properties


def test_events_become_edges_with_net_counts_amounts_and_rfm(store, tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join([
        ev(event_id="e1"),
        ev(event_id="e2", ts="2024-05-03T10:00:00Z", amount=20),
        ev(event_id="e3", type="refund", ts="2024-05-04T10:00:00Z", amount=20),
        ev(event_id="e4", type="view", item="Nike", item_qid="Q483915", amount=None),
        ev(event_id="e5", type="cart", item="Nike", item_qid="Q483915", amount=None, ts="2024-05-02T00:00:00Z"),
    ]) + "\n")
    report = ingest_events(store, Settings(), read_events(f))
    assert (report.applied, report.errors) == (5, [])
    p = edge(store, "ana")["Q5372"]
    assert (p["count"], p["amount"], p["refund_count"]) == (1, 30.0, 1)
    assert (p["first_ts"], p["last_ts"], p["last_purchase_ts"]) == (
        "2024-05-01T10:00:00Z", "2024-05-04T10:00:00Z", "2024-05-03T10:00:00Z")
    assert p["currency"] == "EUR"
    v = edge(store, "ana", "VIEWED")["Q483915"]
    assert (v["count"], v["cart_count"]) == (2, 1)
    u = user(store, "ana")
    assert (u["purchase_count"], u["purchase_amount"], u["last_purchase_ts"], u["view_count"]) == (
        1, 30.0, "2024-05-03T10:00:00Z", 2)
    assert u["updated_at"] and "rfm_recency_days" not in u
    # idempotent: the same file again changes nothing
    again = ingest_events(store, Settings(), read_events(f))
    assert again.applied == 0
    assert edge(store, "ana")["Q5372"] == p


def test_events_without_id_dedupe_by_content(store) -> None:
    e = Event.model_validate_json(ev())
    apply_events(store, [e, e])
    apply_events(store, [e])
    assert edge(store, "ana")["Q5372"]["count"] == 1


def test_items_are_linked_with_context_for_traversal(store) -> None:
    apply_events(store, [Event.model_validate_json(ev(item="basketball", item_qid=None))])
    keys = list(edge(store, "ana"))
    assert keys == ["Q5372"]
    up = store.ro_query(
        "MATCH (:Entity {key: 'Q5372'})-[:INSTANCE_OF|SUBCLASS_OF*1..3]->(c:Entity {qid: 'Q349'}) RETURN count(c)"
    ).scalar()
    assert up >= 1


def test_category_links_unknown_items_into_the_hierarchy(store) -> None:
    apply_events(store, [Event.model_validate_json(ev(item="Zqxv Pro 3000", item_qid=None, category="basketball"))])
    (key,) = edge(store, "ana")
    assert key.startswith("nil:")
    assert store.ro_query(
        "MATCH (:Entity {key: $k})-[:INSTANCE_OF]->(c:Entity {qid: 'Q5372'}) RETURN count(c)", {"k": key}
    ).scalar() == 1


def test_bad_lines_reported_with_line_and_field_rest_goes_in(tmp_path: Path, cli_env) -> None:
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join([
        ev(event_id="ok1"),
        '{"user_id": "ana", broken',
        ev(event_id="b1", type="teleport"),
        ev(event_id="b2", amount=-5),
        ev(event_id="b3", ts="last tuesday"),
        ev(event_id="b4", item_qid="64"),
        ev(event_id="b5", currency="euros"),
        ev(event_id="b6", colour="red"),
        "",
        ev(event_id="ok2", user_id="bob"),
    ]) + "\n")
    result = runner.invoke(app, ["ingest-events", str(f), "--json"], env=cli_env)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["applied"] == 2 and summary["failed"] == 7
    errors = "\n".join(f"line {e['line']}: {e['field']}: {e['message']}" for e in summary["errors"])
    for expected in ("line 2: record:", "line 3: type:", "line 4: amount:", "line 5: ts:", "line 6: item_qid:",
                     "line 7: currency:", "line 8: colour: unknown field"):
        assert expected in errors, errors


def test_csv_events(tmp_path: Path, cli_env, store) -> None:
    f = tmp_path / "events.csv"
    f.write_text(
        "user_id,type,item,item_qid,category,amount,currency,ts,event_id\n"
        "ana,purchase,basketball,Q5372,,12.5,USD,2024-01-01T00:00:00Z,c1\n"
        "bob,view,Nike,Q483915,,,,2024-01-02T00:00:00Z,\n"
        "cy,purchase,basketball,Q5372,,abc,USD,2024-01-01T00:00:00Z,c3\n"
    )
    result = runner.invoke(app, ["ingest-events", str(f)], env=cli_env)
    assert result.exit_code == 1
    assert "line 4: amount:" in result.output
    assert edge(store, "ana")["Q5372"]["amount"] == 12.5
    assert edge(store, "bob", "VIEWED")["Q483915"]["count"] == 1


def test_help_for_every_command(cli_env) -> None:
    for args in (["ingest-events"], ["export"], ["segment"], ["segment", "apply"], ["segment", "list"],
                 ["segment", "run"], ["segment", "members"], ["segment", "discover"], ["segment", "explain"]):
        result = runner.invoke(app, [*args, "--help"], env=cli_env)
        assert result.exit_code == 0, (args, result.output)


def test_a_hostile_line_fails_alone_and_counts_are_distinct(tmp_path: Path, cli_env, store) -> None:
    f = tmp_path / "events.jsonl"
    lines = [ev(event_id=f"e{i}", user_id=("ana", "bob")[i % 2]) for i in range(6)]
    lines.insert(2, ev(event_id="nul", user_id="al\u0000ice"))
    lines.insert(4, ev(event_id="soh", item="ba\u0001ll"))
    f.write_bytes("\n".join(lines).encode() + b"\n" + b'{"user_id": "caf\xe9"}\n')
    result = runner.invoke(app, ["ingest-events", str(f), "--batch-size", "1", "--json"], env=cli_env)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "user_id"), (5, "item"), (9, "record")]
    assert (report["applied"], report["users"], report["lines"]) == (6, 2, 9)
    assert store.ro_query("MATCH (u:User) RETURN count(u)").scalar() == 2


# --- event semantics (# 16 row 11) ------------------------------------------------------------


def ingest_lines(store, tmp_path: Path, name: str, lines: list[str]):
    """Ingest the lines as one file; (report, {(line, field): message})."""
    f = tmp_path / name
    f.write_text("\n".join(lines) + "\n")
    report = ingest_events(store, Settings(), read_events(f))
    return report, {(e.line, e.field): e.message for e in report.errors}


def test_an_event_id_names_one_event(store, tmp_path: Path) -> None:
    report, errors = ingest_lines(store, tmp_path, "a.jsonl", [
        ev(event_id="e1"),
        ev(event_id="e1", item="Nike", item_qid="Q483915"),  # same id, another item: refused
        ev(event_id="e1"),  # the same event re-sent: counted once, no error
    ])
    assert report.applied == 1
    assert list(errors) == [(2, "event_id")]
    assert "e1 is already the event purchase of Q5372" in errors[(2, "event_id")]
    # in a later file too, and for a different amount of the same item
    report, errors = ingest_lines(store, tmp_path, "b.jsonl", [
        ev(event_id="e1", type="view", item="Nike", item_qid="Q483915", amount=None),
        ev(event_id="e1", amount=99),
        ev(event_id="e2", item="Nike", item_qid="Q483915"),
    ])
    assert report.applied == 1 and sorted(errors) == [(1, "event_id"), (2, "event_id")]
    assert edge(store, "ana")["Q5372"]["count"] == 1
    assert "Q483915" not in edge(store, "ana", "VIEWED")
    assert user(store, "ana")["purchase_count"] == 2


def test_counts_and_amounts_never_go_negative(store, tmp_path: Path) -> None:
    report, errors = ingest_lines(store, tmp_path, "a.jsonl", [
        ev(event_id="r0", type="refund", amount=10),  # nothing bought yet
        ev(event_id="p1", amount=30),
        ev(event_id="r1", type="refund", amount=40),  # more than was paid
        ev(event_id="r2", type="refund", amount=30),
        ev(event_id="r3", type="refund", amount=1),  # the one purchase is already refunded
        ev(event_id="r4", user_id="bob", type="refund", item="Nike", item_qid="Q483915", amount=5),
    ])
    assert report.applied == 2
    assert sorted(errors) == [(1, "type"), (3, "amount"), (5, "type"), (6, "type")]
    assert "no purchase" in errors[(1, "type")] and "more than the 30 paid" in errors[(3, "amount")]
    p = edge(store, "ana")["Q5372"]
    assert (p["count"], p["amount"], p["refund_count"]) == (0, 0.0, 1)
    assert user(store, "ana")["purchase_count"] == 0
    assert store.ro_query("MATCH ()-[p:PURCHASED]->() WHERE p.count < 0 OR p.amount < 0 "
                                 "RETURN count(p)").scalar() == 0
    assert store.ro_query("MATCH (u:User {id: 'bob'}) RETURN count(u)").scalar() == 0
    # a refund in a later file is checked against what the graph holds
    report, errors = ingest_lines(store, tmp_path, "b.jsonl", [ev(event_id="p2", amount=20),
                                                         ev(event_id="r5", type="refund", amount=20),
                                                         ev(event_id="r6", type="refund", amount=20)])
    assert report.applied == 2 and list(errors) == [(3, "type")]
    assert user(store, "ana")["purchase_amount"] == 0.0


def test_future_timestamps_and_nan_amounts_are_refused(store, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report, errors = ingest_lines(store, tmp_path, "a.jsonl", [
        ev(event_id="f1", ts="2199-01-01T00:00:00Z"),
        ev(event_id="n1", amount="NaN"),
        '{"user_id": "ana", "type": "purchase", "item": "x", "amount": NaN, "ts": "2024-05-01T10:00:00Z"}',
        ev(event_id="i1", amount="Infinity"),
        ev(event_id="ok", ts=soon),  # clock drift within the tolerance
    ])
    assert report.applied == 1
    assert sorted(errors) == [(1, "ts"), (2, "amount"), (3, "amount"), (4, "amount")]
    assert "in the future" in errors[(1, "ts")]
    assert all("not a number" in errors[(n, "amount")] for n in (2, 3, 4)), errors
    assert user(store, "ana")["last_seen"] == soon


def test_csv_nan_amount_is_not_a_number(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text("user_id,type,item,amount,ts\nana,purchase,ball,NaN,2024-01-01T00:00:00Z\n")
    (line, item), = list(read_events(f))
    assert line == 2 and item.field == "amount" and "not a number" in item.message


# --- streams and segment refresh (# 15) -------------------------------------------------------


def test_a_quiet_stream_writes_its_partial_batch(store) -> None:
    from engine.ingest.events import IDLE

    batches: list[int] = []
    lines = [ev(event_id="a1"), ev(event_id="a2", user_id="bob"), None, ev(event_id="a3")]

    def stream():
        for i, line in enumerate(lines, start=1):
            yield (None, IDLE) if line is None else (i, Event.model_validate_json(line))

    report = ingest_events(store, Settings(), stream(), batch=100,
                           after_batch=lambda r: batches.append(r.events_in))
    assert batches == [2, 1] and report.applied == 3 and report.lines == 3


def test_stdin_stream_keeps_a_within_days_segment_current(store, cli_env) -> None:
    import os
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime, timedelta

    from engine.segment import apply_definition, run_segment, segment_members

    apply_definition(store, {"id": "buyers", "where": {"purchased": {"count": {"gte": 1}, "within_days": 90}}})
    run_segment(store, "buyers")
    recent = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "engine.cli", "ingest-events", "-", "--refresh-segments", "--flush-seconds", "0.2",
         "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **cli_env})
    try:
        assert proc.stdin is not None
        proc.stdin.write((ev(event_id="s1", ts=recent) + "\n").encode())
        proc.stdin.flush()
        # the stream stays open: the quiet stream's batch is written and the segment refreshed
        deadline = time.monotonic() + 60
        while not segment_members(store, "buyers") and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        members = segment_members(store, "buyers")
        assert [m.user_id for m in members] == ["ana"], proc.poll()
        assert "PURCHASED ×1 in last 90d: basketball (Q5372)" in members[0].reason
        rest = b'{"user_id": "bob", broken\n' + (ev(event_id="s2", user_id="bob", ts=recent) + "\n").encode()
        out, err = proc.communicate(rest, timeout=120)  # then standard input closes: the run ends
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    report = json.loads(out)
    assert (report["applied"], report["failed"], report["lines"]) == (2, 1, 3)
    assert report["errors"][0]["line"] == 2
    assert [m.user_id for m in segment_members(store, "buyers")] == ["ana", "bob"]
    info = store.ro_query("MATCH (s:Segment {id: 'buyers'}) RETURN s.size, s.last_run_at").rows[0]
    assert info[0] == 2 and info[1] is not None


# --- users new to the graph vs users already in it (# 15: new users written in one statement) ---


def _shape(store, uid: str) -> tuple[dict, dict, dict]:
    """A user's behaviour edges and aggregates, without what names the user or the wall clock."""
    u = {k: v for k, v in user(store, uid).items() if k not in ("id", "updated_at")}
    return edge(store, uid), edge(store, uid, "VIEWED"), u


def test_a_new_user_gets_what_an_existing_user_gets(store, tmp_path: Path) -> None:
    """`new` arrives in one batch (written whole by the client-computed path); `old` gets the same
    events over three batches, each after the user is in the graph (merged and recomputed by the
    server); `fact` is a user from fact ingestion. All three end with the same edges and aggregates."""
    from engine.pipeline import apply_fact_lines
    from tests.factlines import fact

    def events(uid: str) -> list[str]:
        return [
            ev(user_id=uid, event_id="p1", currency="usd", category="Q349"),
            ev(user_id=uid, event_id="p2", ts="2024-05-03T10:00:00Z", amount=20.25),
            ev(user_id=uid, event_id="r1", type="refund", ts="2024-05-04T10:00:00Z", amount=20.25),
            ev(user_id=uid, event_id="v1", type="view", item="Nike", item_qid="Q483915", amount=None),
            ev(user_id=uid, event_id="c1", type="cart", item="Nike", item_qid="Q483915", amount=None,
               ts="2024-04-02T00:00:00Z"),
            ev(user_id=uid, event_id="v2", type="view", item="Adidas", item_qid="Q3895", amount=None),
        ]

    report, errors = ingest_lines(store, tmp_path, "new.jsonl", events("new"))
    assert (report.applied, errors) == (6, {})
    old = events("old")
    for name, part in (("o1", old[:1]), ("o2", old[1:4]), ("o3", old[4:])):
        report, errors = ingest_lines(store, tmp_path, f"{name}.jsonl", part)
        assert (report.applied, errors) == (len(part), {})
    apply_fact_lines(store, Settings(), [fact(doc_id="d1", user_id="fact", predicate="LIKES", object="basketball")])
    report, errors = ingest_lines(store, tmp_path, "fact.jsonl", events("fact"))
    assert (report.applied, errors) == (6, {})

    new_edges, new_views, new_user = _shape(store, "new")
    assert (new_edges["Q5372"]["count"], new_edges["Q5372"]["amount"]) == (1, 30.0)
    assert new_edges["Q5372"]["currency"] == "EUR" and new_views["Q483915"]["cart_count"] == 1
    assert new_user["purchase_count"] == 1 and new_user["view_count"] == 3
    assert _shape(store, "old") == (new_edges, new_views, new_user)
    fact_edges, fact_views, fact_user = _shape(store, "fact")
    assert (fact_edges, fact_views) == (new_edges, new_views)
    assert fact_user["n_docs"] == 1
    assert {k: v for k, v in fact_user.items() if k not in ("n_docs", "langs", "first_seen", "last_seen")} == {
        k: v for k, v in new_user.items() if k not in ("n_docs", "langs", "first_seen", "last_seen")}
    assert store.ro_query("MATCH (u:User) RETURN count(u)").scalar() == 3
    # all of it again: nothing changes, whichever path wrote it
    for uid in ("new", "old", "fact"):
        before = _shape(store, uid)
        report, errors = ingest_lines(store, tmp_path, f"again-{uid}.jsonl", events(uid))
        assert (report.applied, errors) == (0, {}) and _shape(store, uid) == before


def test_a_new_users_only_purchase_refunded_in_the_batch(store, tmp_path: Path) -> None:
    report, errors = ingest_lines(store, tmp_path, "a.jsonl", [
        ev(user_id="zoe", event_id="p1", amount=10),
        ev(user_id="zoe", event_id="r1", type="refund", amount=10, ts="2024-05-02T10:00:00Z"),
    ])
    assert (report.applied, errors) == (2, {})
    p = edge(store, "zoe")["Q5372"]
    assert (p["count"], p["amount"], p["refund_count"], p["last_purchase_ts"]) == (0, 0.0, 1, "2024-05-01T10:00:00Z")
    u = user(store, "zoe")
    assert (u["purchase_count"], u["purchase_amount"], u["view_count"]) == (0, 0.0, 0)
    assert "last_view_ts" not in u


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_pipelined_batches_see_the_batches_before_them(store, tmp_path: Path, batch: int) -> None:
    """Batches are planned while the one before is written: a batch of one event per user in
    turn (each batch's user the same as two batches back, or as the batch before) gives the same
    graph and the same refusals as one batch of everything."""

    def lines(a: str, b: str) -> list[str]:
        return [
            ev(user_id=a, event_id="p1", amount=30),
            ev(user_id=b, event_id="p1", amount=10),
            ev(user_id=a, event_id="p1", amount=30),  # re-sent: counted once
            ev(user_id=a, event_id="r1", type="refund", amount=30, ts="2024-05-02T10:00:00Z"),
            ev(user_id=b, event_id="p1", item="Nike", item_qid="Q483915"),  # conflicting reuse
            ev(user_id=a, event_id="r2", type="refund", amount=1, ts="2024-05-03T10:00:00Z"),  # nothing left
            ev(user_id=b, event_id="v1", type="view", item="Nike", item_qid="Q483915", amount=None),
            ev(user_id=b, event_id="r1", type="refund", amount=11),  # more than paid
            ev(user_id=b, event_id="p2", amount=5, ts="2024-05-05T10:00:00Z"),
        ]

    def ingest(name: str, rows: list[str], size: int):
        f = tmp_path / name
        f.write_text("\n".join(rows) + "\n")
        report = ingest_events(store, Settings(), read_events(f), batch=size)
        return report.applied, sorted((e.line, e.field) for e in report.errors)

    whole = ingest("whole.jsonl", lines("a1", "b1"), 1000)
    assert whole == (5, [(5, "event_id"), (6, "type"), (8, "amount")])
    assert ingest("parts.jsonl", lines("a2", "b2"), batch) == whole
    for x in ("a", "b"):
        assert _shape(store, f"{x}2") == _shape(store, f"{x}1")


def test_an_event_key_on_the_edge_is_never_appended_twice(store, monkeypatch) -> None:
    """A second writer of the same user is excluded by the callers (one writer thread, the queue's
    partition lock); should one slip through, the write statement itself leaves an edge that
    already holds a key alone. Simulated by a batch whose read saw nothing of the user."""
    from engine.fuse import behaviour

    apply_events(store, [Event.model_validate_json(ev(event_id="k1"))])
    before = edge(store, "ana")["Q5372"]
    monkeypatch.setattr(behaviour, "_read_into", lambda *a, **k: None)  # a read made before the first write
    apply_events(store, [Event.model_validate_json(ev(event_id="k1"))])
    assert edge(store, "ana")["Q5372"] == before
    assert store.ro_query("MATCH (u:User {id: 'ana'}) RETURN count(u)").scalar() == 1


def test_a_queued_event_batch_is_the_in_process_ingest(store, settings) -> None:
    """The worker's side of `ingest-events --queue` (engine/distributed/tasks.py process_batch): raw
    rows validated and written as in-process, the same errors by line, the same graph."""
    from engine.distributed.jobs import BatchTask
    from engine.distributed.tasks import PROCESS, process_batch
    from engine.ingest import events_from_items

    rows = [json.loads(ev(event_id="q1", user_id=u)) for u in ("qa", "qb")]
    rows += [json.loads(ev(event_id="q2", user_id="qa", amount=-1)),
             json.loads(ev(event_id="q3", user_id="qa", type="refund", amount=30, ts="2024-05-02T10:00:00Z"))]
    PROCESS.reset()
    try:
        report, users, _ = process_batch(settings, BatchTask(job_id="j", batch=0, kind="events", partition=0,
                                                             rows=list(enumerate(rows, start=1))), None)
    finally:
        if PROCESS.store is not None:
            PROCESS.store.close()
        PROCESS.reset()
    assert (report.applied, [(e.line, e.field) for e in report.errors], users) == (3, [(3, "amount")], {"qa", "qb"})
    queued = _shape(store, "qa")
    in_process = ingest_events(store, Settings(), events_from_items(
        {**r, "user_id": "qc"} for r in rows if r["user_id"] == "qa"))
    assert in_process.applied == 2 and _shape(store, "qc") == queued
