"""Database restart time against log size, compacted and not; ingest cost of the compaction policy.

    .venv/bin/python benchmarks/restart.py [--sizes 1,10] [--facts 40000]

For each size S (MB of append-only log): fill a fresh embedded FalkorDB with fusion-shaped writes
(batches of UNWIND/MERGE, like `persona ingest-facts`) until its log holds S MB with automatic
rewrites off, kill -9 it, time the restart (log replay), then compact, kill -9 and time again.
Prints seconds and seconds per MB both ways. Then ingests the same facts with the compaction
policy off and on (ServerConfig defaults) and prints facts/s and the on/off ratio. Last, the cost
of logging every write as its effects (what the engine sets, so a replay gives the graph back id
for id) against FalkorDB's default mix of query text and effects: facts/s, log MB and replay s.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fusion import synthetic  # noqa: E402
from engine.fuse import fuse  # noqa: E402
from engine.store import EmbeddedFalkorDB, ServerConfig  # noqa: E402
from engine.store.falkor import FalkorStore  # noqa: E402

OFF = ServerConfig(aof_rewrite_percentage=0)


def _ingest(store: FalkorStore, n_facts: int, seed: int, batch: int = 2000) -> float:
    """Fuse n_facts synthetic facts in batches; returns seconds."""
    docs, facts = synthetic(n_facts, max(n_facts // 4, 10), seed=seed)
    for d in docs:  # distinct document ids per seed, so later fills add rather than skip
        d.doc_id = f"s{seed}-{d.doc_id}"
    by_doc = {d.doc_id: d for d in docs}
    for f in facts:
        f.doc_id = f"s{seed}-{f.doc_id}"
    started = time.perf_counter()
    for i in range(0, len(facts), batch):
        chunk = facts[i : i + batch]
        chunk_docs = list({f.doc_id: by_doc[f.doc_id] for f in chunk}.values())
        fuse(store, chunk_docs, chunk)
    return time.perf_counter() - started


def _restart_seconds(server: EmbeddedFalkorDB) -> float:
    pid = server.status().pid
    os.kill(int(pid or 0), signal.SIGKILL)
    time.sleep(0.2)
    started = time.perf_counter()
    server.start(stall_timeout_s=600)
    return time.perf_counter() - started


def restart_row(size_mb: float, root: Path) -> dict[str, float]:
    server = EmbeddedFalkorDB(root / f"home-{size_mb}", OFF)
    status = server.start()
    store = FalkorStore("127.0.0.1", int(status.port or 0), "persona", password=status.password)
    store.ensure_schema()
    seed = 0
    while server.log_size_bytes() < size_mb * 1024 * 1024:
        _ingest(store, 4000, seed)
        seed += 1
    store.close()
    log_mb = server.log_size_bytes() / 1024 / 1024
    replay = _restart_seconds(server)
    server.compact()
    compact_mb = server.log_size_bytes() / 1024 / 1024
    loaded = _restart_seconds(server)
    server.stop()
    return {"log_mb": log_mb, "replay_s": replay, "compacted_mb": compact_mb, "compacted_s": loaded}


def throughput(n_facts: int, config: ServerConfig, root: Path, name: str) -> tuple[float, int]:
    server = EmbeddedFalkorDB(root / f"tp-{name}", config)
    status = server.start()
    store = FalkorStore("127.0.0.1", int(status.port or 0), "persona", password=status.password)
    store.ensure_schema()
    seconds = _ingest(store, n_facts, seed=1)
    rewrites = int(store._db.connection.info("persistence")["aof_rewrites"])  # noqa: SLF001
    store.close()
    server.stop()
    return n_facts / seconds, rewrites


def logging_cost(n_facts: int, threshold: int, root: Path) -> dict[str, float]:
    """Ingest with this EFFECTS_THRESHOLD (0: effects only; 300: FalkorDB's default), then replay."""
    server = EmbeddedFalkorDB(root / f"fx-{threshold}", OFF)
    status = server.start()
    store = FalkorStore("127.0.0.1", int(status.port or 0), "persona", password=status.password)
    store.ensure_schema()
    store._db.connection.execute_command("GRAPH.CONFIG", "SET", "EFFECTS_THRESHOLD", threshold)  # noqa: SLF001
    seconds = _ingest(store, n_facts, seed=2)
    store.close()
    log_mb = server.log_size_bytes() / 1024 / 1024
    # the restart re-applies the engine's setting; the log written above is what is replayed
    replay = _restart_seconds(server)
    server.stop()
    return {"rate": n_facts / seconds, "log_mb": log_mb, "replay_s": replay}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,10,50,200", help="MB of log, comma-separated")
    ap.add_argument("--facts", type=int, default=100_000, help="facts for the throughput runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        root = Path(tmp)
        print("restart after kill -9 (log replay) vs after compaction")
        print(f"{'log MB':>8} {'replay s':>9} {'s/MB':>7} {'compacted MB':>13} {'load s':>7} {'s/MB':>7}")
        for size in (float(s) for s in args.sizes.split(",")):
            r = restart_row(size, root)
            print(f"{r['log_mb']:8.1f} {r['replay_s']:9.2f} {r['replay_s'] / r['log_mb']:7.3f} "
                  f"{r['compacted_mb']:13.2f} {r['compacted_s']:7.2f} "
                  f"{r['compacted_s'] / max(r['compacted_mb'], 1e-6):7.3f}", flush=True)
        off, n_off = throughput(args.facts, OFF, root, "off")
        on, n_on = throughput(args.facts, ServerConfig(), root, "on")
        print(f"\ningest {args.facts} facts: policy off {off:,.0f} facts/s ({n_off} rewrites), "
              f"on {on:,.0f} facts/s ({n_on} rewrites), on/off {on / off:.3f}")
        effects, mixed = logging_cost(args.facts, 0, root), logging_cost(args.facts, 300, root)
        print(f"\nlogging {args.facts} facts: effects only {effects['rate']:,.0f} facts/s, {effects['log_mb']:.1f} MB, "
              f"replay {effects['replay_s']:.2f} s; FalkorDB default mix {mixed['rate']:,.0f} facts/s, "
              f"{mixed['log_mb']:.1f} MB, replay {mixed['replay_s']:.2f} s; "
              f"effects/mix speed {effects['rate'] / mixed['rate']:.3f}, "
              f"size {effects['log_mb'] / mixed['log_mb']:.2f}")


if __name__ == "__main__":
    main()
