"""Fusion throughput: the engine's fuse() vs a raw UNWIND/MERGE of the same rows, same run.

    .venv/bin/python benchmarks/fusion.py [--facts 200000] [--users 50000] [--batch 5000]

Prints facts/s for both paths and their ratio, plus the consistency-check pass over the touched
users. Both runs use a fresh graph on the same embedded FalkorDB with the same indexes. Beside each
wall time: the CPU seconds the database server and this client process spent on it, which a busy
machine disturbs far less than wall time (the ratio's noise is mostly other processes' load).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.check import check_users
from engine.contracts import DocumentIn, ResolvedFact, TargetRef
from engine.fuse import fuse
from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore
from graph_schema import Target

PREDICATES = ["LIKES", "LIKES", "LIKES", "DISLIKES", "OWNS", "USES", "WANTS", "LIVES_IN", "AGE_BAND"]
BANDS = ["18-24", "25-34", "35-44", "45-54"]


def zipf_index(rng: random.Random, n: int, s: float = 1.1) -> int:
    return min(int(rng.paretovariate(s)) - 1, n - 1)


def synthetic(n_facts: int, n_users: int, seed: int = 7) -> tuple[list[DocumentIn], list[ResolvedFact]]:
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    docs: list[DocumentIn] = []
    facts: list[ResolvedFact] = []
    for i in range(n_facts):
        if i % 2 == 0:  # two facts per document
            user = f"user{rng.randrange(n_users)}"
            ts = base + timedelta(minutes=i)
            doc = DocumentIn(doc_id=f"doc{i // 2}", user_id=user, ts=ts, source="bench", lang="en")
            docs.append(doc)
        pred = rng.choice(PREDICATES)
        if pred == "AGE_BAND":
            band = rng.choice(BANDS)
            target = TargetRef(label=Target.VALUE, key=f"age_band:{band}",
                               props={"kind": "age_band", "value": band})
        else:
            q = f"Q{1000 + zipf_index(rng, 20000)}"
            target = TargetRef(label=Target.ENTITY, key=q, props={"qid": q, "label_en": f"entity {q}"})
        facts.append(ResolvedFact(doc_id=doc.doc_id, user_id=doc.user_id, ts=doc.ts, predicate=pred,
                                  target=target, confidence=rng.uniform(0.5, 0.95)))
    return docs, facts


RAW = """
UNWIND $rows AS r
MERGE (u:User {id: r.user_id})
MERGE (o:%s {key: r.key})
MERGE (u)-[f:%s]->(o)
SET f.confidence = r.confidence
"""


def raw_merge(store: FalkorStore, facts: list[ResolvedFact], batch: int) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for f in facts:
        groups[(f.predicate, f.target.label.value)].append(
            {"user_id": f.user_id, "key": f.target.key, "confidence": f.confidence}
        )
    for (pred, label), rows in groups.items():
        statement = RAW % (label, pred)
        for i in range(0, len(rows), batch):
            store.query(statement, {"rows": rows[i : i + batch]})


def server_cpu(pid: int | None) -> float:
    """User + system CPU seconds of the server process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Span:
    """Wall, server CPU and client CPU seconds of one timed phase."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def __enter__(self) -> Span:
        self.wall, self.server, self.client = time.perf_counter(), server_cpu(self.pid), client_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.server = server_cpu(self.pid) - self.server
        self.client = client_cpu() - self.client

    def cpu(self) -> str:
        return f"cpu server {self.server:6.2f} s client {self.client:6.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--facts", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()

    docs, facts = synthetic(args.facts, args.users)
    with tempfile.TemporaryDirectory() as home:
        server = EmbeddedFalkorDB(Path(home))
        status = server.start()
        try:
            raw_store = FalkorStore("127.0.0.1", int(status.port or 0), "bench_raw", password=status.password)
            raw_store.ensure_schema()
            with Span(status.pid) as raw:
                raw_merge(raw_store, facts, args.batch)

            engine_store = FalkorStore("127.0.0.1", int(status.port or 0), "bench_engine", password=status.password)
            engine_store.ensure_schema()
            with Span(status.pid) as engine:
                report = fuse(engine_store, docs, facts, batch=args.batch)
            with Span(status.pid) as re_engine:
                again = fuse(engine_store, docs, facts, batch=args.batch)

            t0 = time.perf_counter()
            checked = check_users(engine_store, report.users)
            check_s = time.perf_counter() - t0
        finally:
            server.stop()

    n = len(facts)
    print(f"facts={n} users={args.users} documents={len(docs)} batch={args.batch}")
    print(f"raw UNWIND/MERGE      : {raw.wall:8.2f} s  {n / raw.wall:10,.0f} facts/s  {raw.cpu()}")
    print(f"engine fuse()         : {engine.wall:8.2f} s  {n / engine.wall:10,.0f} facts/s  {engine.cpu()}  "
          f"(edges written {report.fact_edges_written})")
    print(f"ratio engine/raw      : {raw.wall / engine.wall:8.2f}  (server cpu {raw.server / engine.server:.2f}, "
          f"server+client cpu {(raw.server + raw.client) / (engine.server + engine.client):.2f})")
    print(f"re-ingest (idempotent): {re_engine.wall:8.2f} s  {n / re_engine.wall:10,.0f} facts/s  "
          f"{re_engine.cpu()}  (edges written {again.fact_edges_written})")
    print(f"consistency check     : {check_s:8.2f} s  over {checked.users} users, "
          f"{len(checked.conflicts)} resolutions {checked.counts()}")
    print(f"peak RSS (client)     : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MB")


if __name__ == "__main__":
    main()
