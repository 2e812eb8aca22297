"""Behaviour events at scale: `persona ingest-events` throughput vs a raw UNWIND/MERGE of the same
events, and the refresh of an event-driven segment after 1,000 new events vs its full run.

    PYTHONPATH=. .venv/bin/python benchmarks/events.py [--events 1000000] [--users 1000000] [--batch 5000]

The events (views, purchases, carts of real KB items by QID, timestamps in the last 200 days) are
written to a JSONL file first; the engine reads, validates, links and writes it (`read_events` →
`ingest_events`: idempotency and refund checks, context edges, RFM aggregates). The baseline parses
the same file with json.loads and MERGEs users, items and one counted edge per (user, item) with no
checks, in the same batches. Both write to fresh graphs on the same embedded FalkorDB (default
settings). Then a `within_days: 90` purchase segment is run in full (the baseline), 1,000 new events
go in, and the segment is refreshed for their users (`refresh_users`, what `--refresh-segments`
does after each batch) and by an incremental run. Prints numbers and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import Settings
from engine.ingest import read_events
from engine.pipeline import ingest_events
from engine.segment import apply_definition, refresh_users, run_segment
from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore
from linkers.kb import get_kb

TYPES = ["view"] * 14 + ["purchase"] * 5 + ["cart"]
SEGMENT = {"id": "recent-buyers", "where": {"purchased": {"count": {"gte": 1}, "within_days": 90}}}

RAW = """
UNWIND $rows AS r
MERGE (u:User {id: r.user_id})
MERGE (e:Entity {key: r.item_qid})
MERGE (u)-[p:{rel}]->(e)
ON CREATE SET p.count = 0, p.amount = 0.0
SET p.count = p.count + 1, p.amount = p.amount + coalesce(r.amount, 0.0)
"""


def items(n: int) -> list[str]:
    kb = get_kb()
    return [kb.qids[i] for i in range(len(kb)) if kb.label_en[i]][:n]


def write_events(path: Path, n: int, users: int, pool: list[str], now: datetime, prefix: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    who = rng.integers(0, users, size=n)
    what = rng.integers(0, len(pool), size=n)
    kinds = rng.integers(0, len(TYPES), size=n)
    ages = rng.integers(60, 200 * 86400, size=n)
    amounts = np.round(rng.gamma(2.0, 30.0, size=n), 2)
    with path.open("w") as fh:
        for i in range(n):
            kind = TYPES[kinds[i]]
            row: dict[str, Any] = {"user_id": f"u{who[i]}", "type": kind, "item": f"item {what[i]}",
                                   "item_qid": pool[what[i]],
                                   "ts": (now - timedelta(seconds=int(ages[i]))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                   "event_id": f"{prefix}{i}"}
            if kind == "purchase":
                row["amount"], row["currency"] = float(amounts[i]), "EUR"
            fh.write(json.dumps(row) + "\n")


def raw_ingest(store: FalkorStore, path: Path, batch: int) -> int:
    """The baseline: parse, group by relation, UNWIND/MERGE; no validation, linking or checks."""
    n = 0
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def flush() -> None:
        for rel, part in rows.items():
            store.query(RAW.replace("{rel}", rel), {"rows": part})
        rows.clear()

    with path.open() as fh:
        for line in fh:
            r = json.loads(line)
            rows["PURCHASED" if r["type"] == "purchase" else "VIEWED"].append(
                {"user_id": r["user_id"], "item_qid": r["item_qid"], "amount": r.get("amount")})
            n += 1
            if n % batch == 0:
                flush()
    flush()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=2_000, help="distinct KB items")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--new-events", type=int, default=1000, help="events after the segment's full run")
    args = ap.parse_args()

    now = datetime.now(UTC)
    pool = items(args.items)
    with tempfile.TemporaryDirectory(prefix="persona-bench-events-") as tmp:
        home = Path(tmp)
        server = EmbeddedFalkorDB(home)
        status = server.start()
        port = int(status.port or 0)
        settings = Settings(home=home, graph_uri=status.graph_uri(), graph_name="events")
        engine_store, raw_store = (
            FalkorStore("127.0.0.1", port, graph, password=status.password) for graph in ("events", "raw")
        )
        try:
            for s in (engine_store, raw_store):
                s.ensure_schema()
            path = home / "events.jsonl"
            t0 = time.perf_counter()
            write_events(path, args.events, args.users, pool, now, "e", seed=7)
            print(f"events benchmark: {args.events:,} events over {args.users:,} users, {len(pool):,} items "
                  f"(file written in {time.perf_counter() - t0:.1f}s); batch {args.batch:,}; load average "
                  f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

            t0 = time.perf_counter()
            raw_n = raw_ingest(raw_store, path, args.batch)
            raw_s = time.perf_counter() - t0
            print(f"  raw UNWIND/MERGE: {raw_n:,} events in {raw_s:.1f}s = {raw_n / raw_s:,.0f} events/s", flush=True)

            t0 = time.perf_counter()
            report = ingest_events(engine_store, settings, read_events(path), batch=args.batch)
            eng_s = time.perf_counter() - t0
            print(f"  engine ingest-events: {report.accepted:,} events ({report.applied:,} new, {report.users:,} "
                  f"users, {len(report.errors)} errors) in {eng_s:.1f}s = {report.accepted / eng_s:,.0f} events/s; "
                  f"ratio to raw {raw_s / eng_s:.2f}; load average {os.getloadavg()[0]:.2f}", flush=True)

            apply_definition(engine_store, SEGMENT)
            full = run_segment(engine_store, SEGMENT["id"], now=now)
            print(f"  full run of {SEGMENT['id']} (purchased within 90 days): {full.size:,} members in "
                  f"{full.seconds:.2f}s (the baseline)", flush=True)

            new = home / "new.jsonl"
            write_events(new, args.new_events, args.users, pool, datetime.now(UTC), "n", seed=8)
            refreshed: list[float] = []
            t0 = time.perf_counter()
            more = ingest_events(engine_store, settings, read_events(new), batch=args.batch, after_batch=lambda r: (
                refreshed.extend(x.seconds for x in refresh_users(engine_store, r.users))))
            both = time.perf_counter() - t0
            print(f"  {more.accepted:,} new events: ingest + refresh of their {more.users:,} users in {both:.2f}s "
                  f"(refresh {sum(refreshed):.2f}s); ratio to the full run {sum(refreshed) / full.seconds:.2f}",
                  flush=True)
            inc = run_segment(engine_store, SEGMENT["id"], incremental=True, now=datetime.now(UTC))
            print(f"  incremental run after them: {inc.seconds:.2f}s ({inc.evaluated_users:,} users, "
                  f"+{inc.joined} −{inc.left}); full run again: "
                  f"{run_segment(engine_store, SEGMENT['id'], now=datetime.now(UTC)).seconds:.2f}s", flush=True)
        finally:
            engine_store.close()
            raw_store.close()
            server.stop()


if __name__ == "__main__":
    main()
