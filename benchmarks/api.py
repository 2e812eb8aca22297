"""HTTP latency of the explorer's two heavy reads: `/users/{id}/graph` and `/segments/{id}/members`.

    # on the issue-4 benchmark graph (benchmarks/segments.py --keep-home DIR):
    .venv/bin/python benchmarks/api.py --home DIR [--graph persona] [--segment ID]
    # or on a synthetic graph this script builds in a temporary home:
    .venv/bin/python benchmarks/api.py --users 100000 [--facts-per-user 4]

The real app runs under uvicorn on a free loopback port; requests are sequential over one
keep-alive connection (what one analyst's browser does). Prints p50/p95/max per endpoint;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

from engine.api import create_app
from engine.config import Settings
from engine.contracts import DocumentIn, ResolvedFact, TargetRef
from engine.fuse import fuse, write_context
from engine.store import EmbeddedFalkorDB, GraphStore
from engine.store.falkor import FalkorStore
from graph_schema import Target
from linkers import ContextEdge

PREDICATES = ["LIKES", "LIKES", "LIKES", "DISLIKES", "OWNS", "USES", "WANTS", "LIVES_IN", "AGE_BAND"]
BANDS = ["18-24", "25-34", "35-44", "45-54"]
N_ENTITIES = 20_000
N_CLASSES = 200
SEGMENT_ID = "bench-q1000"


# --- synthetic graph (when no --home is given) -------------------------------------------------


def _zipf(rng: random.Random, n: int, s: float = 1.1) -> int:
    return min(int(rng.paretovariate(s)) - 1, n - 1)


def _target(rng: random.Random, pred: str) -> TargetRef:
    if pred == "AGE_BAND":
        band = rng.choice(BANDS)
        return TargetRef(label=Target.VALUE, key=f"age_band:{band}", props={"kind": "age_band", "value": band})
    q = f"Q{1000 + _zipf(rng, N_ENTITIES)}"
    return TargetRef(label=Target.ENTITY, key=q, props={"qid": q, "label_en": f"entity {q}"})


def build_graph(store: GraphStore, n_users: int, per_user: int, seed: int = 11, chunk: int = 20_000) -> None:
    """Users with `per_user` facts each (Zipf-popular entities), two Wikidata classes per entity,
    and one large segment (everyone who likes the most popular entity)."""
    rng = random.Random(seed)
    started = time.perf_counter()
    for first in range(0, n_users, chunk):
        docs: list[DocumentIn] = []
        facts: list[ResolvedFact] = []
        for u in range(first, min(first + chunk, n_users)):
            user = f"user{u:07d}"
            for k in range(per_user):
                doc = DocumentIn(doc_id=f"{user}-d{k}", user_id=user, source="bench", lang="en",
                                 ts=f"2024-{1 + k % 12:02d}-{1 + u % 28:02d}T10:00:00Z", text=f"synthetic text {k}")
                docs.append(doc)
                pred = rng.choice(PREDICATES)
                facts.append(ResolvedFact(doc_id=doc.doc_id, user_id=user, ts=doc.ts, predicate=pred,
                                          target=_target(rng, pred), confidence=rng.uniform(0.5, 0.95)))
        fuse(store, docs, facts, batch=5000)
        print(f"  built {min(first + chunk, n_users):,} users ({time.perf_counter() - started:.0f} s)", flush=True)
    classes = {f"Q{900_000 + c}": {"qid": f"Q{900_000 + c}", "label_en": f"class {c}"} for c in range(N_CLASSES)}
    edges = [ContextEdge(child=f"Q{1000 + e}", rel="INSTANCE_OF", parent=f"Q{900_000 + (e * k) % N_CLASSES}")
             for e in range(N_ENTITIES) for k in (1, 7)]
    write_context(store, edges, classes, 5000)
    from engine.segment import apply_definition, run_segment

    apply_definition(store, {"id": SEGMENT_ID, "name": "Likes Q1000", "where": {"likes": {"qid": "Q1000"}}})
    report = run_segment(store, SEGMENT_ID)
    print(f"  segment {SEGMENT_ID}: {report.size:,} members in {report.seconds:.1f} s")
    print(f"graph built in {time.perf_counter() - started:.0f} s")


# --- measuring ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(settings: Settings, store: GraphStore) -> tuple[uvicorn.Server, str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def measure(client: httpx.Client, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        t0 = time.perf_counter()
        resp = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    return times


def report(name: str, times: list[float], extra: str = "") -> None:
    q = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
    print(f"{name:<34} n={len(times):<4} p50={q[49]:8.1f} ms  p95={q[94]:8.1f} ms  "
          f"max={max(times):8.1f} ms  {extra}")


def sample_users(store: GraphStore, n: int, rng: random.Random) -> list[str]:
    # A bounded scan: the first 200k ids are a fair enough pool without reading a million.
    ids = [r[0] for r in store.ro_query("MATCH (u:User) RETURN u.id LIMIT 200000").rows]
    return rng.sample(ids, min(n, len(ids)))


def pick_segment(store: GraphStore, wanted: str | None) -> tuple[str, int] | None:
    from engine.segment import list_segments

    segments = list_segments(store)
    if wanted:
        segments = [s for s in segments if s.id == wanted]
    if not segments:
        return None
    best = max(segments, key=lambda s: s.size)
    return best.id, best.size


def run(store: GraphStore, settings: Settings, args: argparse.Namespace) -> None:
    rng = random.Random(3)
    n_users = store.ro_query("MATCH (u:User) RETURN count(u)").scalar()
    n_edges = store.ro_query("MATCH ()-[r]->() RETURN count(r)").scalar()
    print(f"graph: {n_users:,} users, {n_edges:,} relationships")
    server, base = start_server(settings, store)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            users = sample_users(store, args.requests, rng)
            measure(client, [f"/users/{u}/graph" for u in users[:5]])  # warm-up
            times = measure(client, [f"/users/{u}/graph" for u in users])
            sizes = [len(client.get(f"/users/{u}/graph").json()["nodes"]) for u in users[:20]]
            report("GET /users/{id}/graph", times, f"(~{statistics.mean(sizes):.0f} nodes per persona)")
            report("GET /users/{id}", measure(client, [f"/users/{u}" for u in users]))
            few = min(args.requests, 20)
            report("GET /users?q=<id fragment>", measure(client, [f"/users?q={u[:-2]}" for u in users[:few]]),
                   "(scans user ids)")
            labels = [r[0] for r in store.ro_query(
                "MATCH (e:Entity) WHERE e.label_en IS NOT NULL RETURN e.label_en LIMIT 1000").rows]
            report("GET /users?q=<entity label>", measure(client, [f"/users?q={rng.choice(labels)}"
                                                                   for _ in range(few)]))
            report("GET /users (no query)", measure(client, ["/users"] * few), "(the UI's start page)")

            segment = pick_segment(store, args.segment)
            if segment is None:
                print("no segment in this graph: /segments/{id}/members not measured")
                return
            seg_id, size = segment
            pages = max(size // args.page, 1)
            first = [f"/segments/{seg_id}/members?offset=0&limit={args.page}"] * min(args.requests, 50)
            deep = [f"/segments/{seg_id}/members?offset={rng.randrange(pages) * args.page}&limit={args.page}"
                    for _ in range(min(args.requests, 50))]
            report("GET /segments/{id}/members first", measure(client, first),
                   f"(segment {seg_id}, {size:,} members, limit {args.page})")
            report("GET /segments/{id}/members random", measure(client, deep), "(random page offsets)")
    finally:
        server.should_exit = True


def with_home(home: Path, graph: str, body: Callable[[GraphStore, Settings], None], *, stop: bool) -> None:
    server = EmbeddedFalkorDB(home)
    status = server.start()
    store = FalkorStore("127.0.0.1", int(status.port or 0), graph, password=status.password)
    settings = Settings(home=home, graph_uri=status.graph_uri(), graph_name=graph)
    try:
        body(store, settings)
    finally:
        store.close()
        if stop:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="a persona home with a graph (e.g. benchmarks/segments.py --keep-home)")
    ap.add_argument("--graph", default="persona", help="graph name inside --home")
    ap.add_argument("--segment", help="segment id to page through (default: the largest)")
    ap.add_argument("--users", type=int, default=100_000, help="synthetic graph size when no --home is given")
    ap.add_argument("--facts-per-user", type=int, default=4)
    ap.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    ap.add_argument("--page", type=int, default=100, help="members page size")
    args = ap.parse_args()

    if args.home:
        with_home(args.home, args.graph, lambda s, st: run(s, st, args), stop=False)
        return
    with tempfile.TemporaryDirectory(prefix="persona-api-bench-") as tmp:
        def build_and_run(store: GraphStore, settings: Settings) -> None:
            store.ensure_schema()
            print(f"building a synthetic graph: {args.users:,} users x {args.facts_per_user} facts")
            build_graph(store, args.users, args.facts_per_user)
            run(store, settings, args)

        with_home(Path(tmp), "bench_api", build_and_run, stop=True)


if __name__ == "__main__":
    main()
