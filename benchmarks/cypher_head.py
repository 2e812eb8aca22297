"""POST /cypher's bounded read against the old whole-result read: time and peak RSS, each in a
process of its own, on one embedded FalkorDB (baseline measured in the same run).

    python benchmarks/cypher_head.py [--rows 3000000] [--limit 1000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

QUERY = "UNWIND range(1, $n) AS x RETURN x, 'row ' + toString(x) AS s"


def child(port: int, mode: str, password: str, rows: int, limit: int) -> None:
    from engine.store.falkor import FalkorStore

    store = FalkorStore("127.0.0.1", port, "bench_head", password=password)
    started = time.perf_counter()
    if mode == "whole":
        kept = len(store.ro_query(QUERY, {"n": rows}, 600_000).rows[:limit])
    else:
        kept = len(store.ro_head(QUERY, {"n": rows}, max_rows=limit, timeout_ms=600_000).rows)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode}\t{elapsed:.2f}\t{peak_mb:.0f}\t{kept}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.child[2], args.rows, args.limit)
        return
    from engine.store import EmbeddedFalkorDB

    server = EmbeddedFalkorDB(Path(tempfile.mkdtemp(prefix="bench-head-")))
    status = server.start()
    from engine.store.falkor import FalkorStore

    # the graph must exist
    FalkorStore("127.0.0.1", int(status.port or 0), "bench_head", password=status.password).query("MERGE (:Bench)")
    try:
        results = {}
        for mode in ("whole", "head"):
            out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--limit", str(args.limit),
                                  "--child", str(status.port), mode, status.password or ""],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(out.stderr)
            _, secs, mb, kept = out.stdout.split()
            results[mode] = (float(secs), float(mb))
            print(f"{mode:6s} {args.rows:>9,} rows, {kept} kept: {secs} s, peak RSS {mb} MB")
        (ws, wm), (hs, hm) = results["whole"], results["head"]
        print(f"head/whole: time {hs / ws:.3f}x, peak RSS {hm / wm:.3f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
