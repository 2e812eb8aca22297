"""Segments at scale: synthetic users over real KB entities → segment runs, incremental refresh, export.

    .venv/bin/python benchmarks/segments.py [--users 1000000] [--facts-per-user 10] [--keep-home DIR]
    .venv/bin/python benchmarks/segments.py --keep-home DIR --reuse [--export-only] [--export-everyone]
                                            [--baseline-rev REV]

The generator draws Zipf-skewed interests (LIKES/DISLIKES/OWNS/USES/WANTS) and places (LIVES_IN)
from real KB entities — sports that reach `sport` (Q349), places inside China (Q148) and a random
slice of the rest — and writes each entity with its KB context closure, so traversal segments are
real graph walks. Users also get GENDER and AGE_BAND, PURCHASED edges (with the event lists the
engine writes) and RFM aggregates; 10 % get a document with a sentiment label. The graph is bulk
loaded with UNWIND/CREATE (it is a generator, not the fusion path).

Prints (never asserts): load time, full run time of three narrow and three broad segments
(evaluation and membership writes; a re-run with no change), incremental refresh after one new
fact through the real pipeline, the creation of a segment of every user, export rows/s. Everything
runs with the database's default settings (per-query memory cap included).
With --keep-home the graph stays in that persona home (graph `persona`) for other benchmarks;
--reuse then skips the load when that home already holds users (--export-only: and measures the
export only). --export-everyone exports the segment of every user instead of the broad 25-44 one, so
1M users give 1M export rows.
--baseline-rev REV also times engine/export.py as of git revision REV, alternating with the current
code against the same graph, so both numbers come from the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis

import linkers
from engine.config import Settings
from engine.contracts import iso
from engine.export import export_segment
from engine.pipeline import apply_fact_lines
from engine.segment import apply_definition, delete_segment, run_segment
from engine.segment.evaluate import evaluate_definition
from engine.segment.model import parse_definition
from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore
from graph_schema import checked_identifier
from linkers.kb import get_kb
from tests.factlines import fact

NOW = datetime(2024, 6, 1, tzinfo=UTC)
INTEREST_PREDICATES = ["LIKES"] * 6 + ["DISLIKES", "OWNS", "USES", "WANTS"]
GENDERS = ["female", "male", "non_binary"]
BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
USER_BATCH = 20_000
EDGE_BATCH = 50_000

SEGMENTS = [
    {"id": "bench-sport-fans", "name": "Likes any sport",
     "where": {"likes": {"descendant_of": "Q349"}}},
    {"id": "bench-cn-women-sport-buyers", "name": "Women in China who bought sport items twice in 90 days",
     "where": {"all": [{"lives_in": {"within": "Q148"}}, {"gender": "female"},
                       {"purchased": {"descendant_of": "Q349", "count": {"gte": 2}, "within_days": 90}}]}},
    {"id": "bench-churn-risk", "name": "High value, negative in the last 30 days",
     "where": {"all": [{"rfm": {"monetary": {"gte": 500}, "frequency": {"gte": 3}}},
                       {"sentiment": {"label": "negative", "within_days": 30}}]}},
    {"id": "bench-women", "name": "Women (a broad audience)", "where": {"gender": "female"}},
    {"id": "bench-recent-buyers", "name": "Bought anything in the last 90 days (a broad audience)",
     "where": {"purchased": {"count": {"gte": 1}, "within_days": 90}}},
    {"id": "bench-broad-25-44", "name": "Aged 25-44 (a broad audience, for export throughput)",
     "where": {"age_band": ["25-34", "35-44"]}},
]
EVERYONE = {"id": "bench-everyone", "name": "Every user (export throughput at full size)",
            "where": {"age_band": BANDS}}


def rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- entity pools -----------------------------------------------------------------------------


def entity_pools(rng: np.random.Generator, n_interests: int, n_places: int) -> tuple[list[str], list[str]]:
    """Real QIDs: sports + a random labelled slice for interests; China + elsewhere for places."""
    kb = get_kb()
    labelled = [i for i in range(len(kb)) if kb.label_en[i]]
    sports = [i for i in labelled if kb.reaches(i, ["Q349"])]
    china = kb.idx("Q148")
    places = [i for i in labelled if kb.places_above(i)]
    in_china = [i for i in places if china in kb.places_above(i)]
    sport_set, china_set = set(sports), set(in_china)
    others = rng.permutation(np.array([i for i in labelled if i not in sport_set]))[: max(0, n_interests - len(sports))]
    interests = list(sports) + [int(i) for i in others]
    rng.shuffle(interests)
    rest = rng.permutation(np.array([i for i in places if i not in china_set]))[: max(0, n_places - len(in_china))]
    place_pool = list(in_china) + [int(i) for i in rest]
    rng.shuffle(place_pool)
    return [kb.qids[i] for i in interests], [kb.qids[i] for i in place_pool]


def zipf_draw(rng: np.random.Generator, n_items: int, size: int, s: float = 1.1) -> np.ndarray:
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    p = ranks ** -s
    return rng.choice(n_items, size=size, p=p / p.sum())


# --- bulk load --------------------------------------------------------------------------------

CREATE_ENTITIES = "UNWIND $rows AS r CREATE (:Entity {key: r.k, qid: r.k, label_en: r.l, description: r.d})"
CREATE_CONTEXT = "UNWIND $rows AS r MATCH (a:Entity {key: r.c}) MATCH (b:Entity {key: r.p}) CREATE (a)-[:{rel}]->(b)"
CREATE_VALUES = "UNWIND $rows AS r CREATE (:Value {key: r.k, kind: r.kind, value: r.v})"
CREATE_USERS = """
UNWIND $rows AS r
CREATE (:User {id: r.id, first_seen: r.first, last_seen: r.last, n_docs: r.nd, langs: ['en'],
               purchase_count: r.pc, purchase_amount: r.pa, first_purchase_ts: r.fp, last_purchase_ts: r.lp,
               view_count: 0})
"""
CREATE_FACTS = """
UNWIND $rows AS r
MATCH (u:User {id: r.u})
MATCH (o:{label} {key: r.k})
CREATE (u)-[:{rel} {confidence: r.c, status: 'active', evidence: [r.d], docs: [r.d], evidence_count: 1,
                    first_seen: r.t, last_seen: r.t, valid_from: r.t}]->(o)
"""
CREATE_PURCHASES = """
UNWIND $rows AS r
MATCH (u:User {id: r.u})
MATCH (e:Entity {key: r.k})
CREATE (u)-[:PURCHASED {ev_ids: r.ids, ev_ts: r.ts, ev_n: r.n, ev_amt: r.a, ev_k: r.kinds, count: size(r.ids),
                        amount: r.amount, refund_count: 0, cart_count: 0, first_ts: r.first, last_ts: r.last,
                        first_purchase_ts: r.first, last_purchase_ts: r.last}]->(e)
"""
CREATE_DOCS = """
UNWIND $rows AS r
MATCH (u:User {id: r.u})
CREATE (:Document {id: r.id, user_id: r.u, ts: r.t, source: 'bench', lang: 'en', sentiment: r.s})-[:ABOUT]->(u)
"""


def chunks(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def load_entities(store: FalkorStore, interests: list[str], places: list[str]) -> int:
    qids = sorted(set(interests) | set(places))
    ctx = linkers.context_edges(qids)
    keys = sorted(set(qids) | {e.parent for e in ctx} | {e.child for e in ctx})
    rows = []
    for k in keys:
        d = linkers.describe(k)
        rows.append({"k": k, "l": d.label_en if d else None, "d": d.description if d else None})
    for c in chunks(rows, EDGE_BATCH):
        store.query(CREATE_ENTITIES, {"rows": c})
    by_rel: dict[str, list[dict[str, str]]] = {}
    for e in {(e.child, e.rel, e.parent) for e in ctx}:
        by_rel.setdefault(e[1], []).append({"c": e[0], "p": e[2]})
    for rel, rel_rows in by_rel.items():
        for c in chunks(rel_rows, EDGE_BATCH):
            store.query(CREATE_CONTEXT.replace("{rel}", checked_identifier(rel)), {"rows": c})
    values = [{"k": f"gender:{g}", "kind": "gender", "v": g} for g in GENDERS]
    values += [{"k": f"age_band:{b}", "kind": "age_band", "v": b} for b in BANDS]
    store.query(CREATE_VALUES, {"rows": values})
    return len(ctx)


DAYS_BACK = [iso(NOW - timedelta(days=d)) for d in range(400)]  # stamps by age in days, precomputed


def generate_chunk(
    rng: np.random.Generator, start: int, n: int, facts_per_user: int, interests: list[str], places: list[str]
) -> dict[str, Any]:
    """Users [start, start+n) with their edges; ~facts_per_user edges each (3 fixed + interests + buys)."""
    n_interest = max(1, facts_per_user - 3 - 2)
    ages = rng.integers(0, 365, size=(n, n_interest + 1))
    pick_i = zipf_draw(rng, len(interests), n * (n_interest + 2))
    pick_p = zipf_draw(rng, len(places), n)
    preds = rng.integers(0, len(INTEREST_PREDICATES), size=n * n_interest)
    conf = np.round(rng.uniform(0.5, 0.98, size=n * n_interest), 3)
    n_events = rng.integers(1, 4, size=(n, 2))
    event_ages = rng.integers(0, 200, size=(n, 2, 3))
    amounts = np.round(rng.gamma(2.0, 60.0, size=(n, 2, 3)), 2)
    doc_ages = rng.integers(0, 60, size=n)
    doc_labels = rng.integers(0, 3, size=n)
    out: dict[str, Any] = {"users": [], "facts": {}, "purchases": [], "docs": []}
    facts: dict[tuple[str, str], list[dict[str, Any]]] = out["facts"]
    for key in [("LIVES_IN", "Entity"), ("GENDER", "Value"), ("AGE_BAND", "Value")]:
        facts[key] = []
    for j in range(n):
        uid = f"u{start + j}"
        ts = [DAYS_BACK[a] for a in ages[j]]
        doc = f"{uid}-d0"
        facts[("LIVES_IN", "Entity")].append({"u": uid, "k": places[pick_p[j]], "c": 0.9, "d": doc, "t": ts[0]})
        gender = GENDERS[(start + j) % 3 if j % 7 else 0]
        facts[("GENDER", "Value")].append({"u": uid, "k": f"gender:{gender}", "c": 0.9, "d": doc, "t": ts[0]})
        band = BANDS[(start + j) % len(BANDS)]
        facts[("AGE_BAND", "Value")].append({"u": uid, "k": f"age_band:{band}", "c": 0.9, "d": doc, "t": ts[0]})
        seen: set[tuple[str, str]] = set()
        for m in range(n_interest):
            idx = j * n_interest + m
            pred, key = INTEREST_PREDICATES[preds[idx]], interests[pick_i[idx]]
            if (pred, key) in seen:
                continue
            seen.add((pred, key))
            facts.setdefault((pred, "Entity"), []).append(
                {"u": uid, "k": key, "c": float(conf[idx]), "d": doc, "t": ts[min(m + 1, n_interest)]})
        total, n_buys, first, last = 0.0, 0, "", ""
        bought: set[str] = set()
        for b in range(2):
            key = interests[pick_i[n * n_interest + j * 2 + b]]
            if key in bought:
                continue
            bought.add(key)
            k = int(n_events[j, b])
            when = sorted(DAYS_BACK[a] for a in event_ages[j, b, :k])
            spent = [float(x) for x in amounts[j, b, :k]]
            out["purchases"].append({
                "u": uid, "k": key, "ids": [f"{uid}-e{b}-{i}" for i in range(k)], "ts": when, "n": [1] * k,
                "a": spent, "kinds": ["purchase"] * k, "amount": sum(spent), "first": when[0], "last": when[-1]})
            total += sum(spent)
            n_buys += k
            first = min(first or when[0], when[0])
            last = max(last, when[-1])
        nd = 0
        if j % 10 == 0:
            nd = 1
            label = ("negative", "neutral", "positive")[doc_labels[j]]
            out["docs"].append({"u": uid, "id": doc, "t": DAYS_BACK[doc_ages[j]], "s": label})
        out["users"].append({"id": uid, "first": min(ts), "last": max(ts), "nd": nd, "pc": n_buys,
                             "pa": round(total, 2), "fp": first, "lp": last})
    return out


def write_chunk(store: FalkorStore, chunk: dict[str, Any]) -> int:
    store.query(CREATE_USERS, {"rows": chunk["users"]})
    edges = 0
    for (rel, label), rows in chunk["facts"].items():
        statement = CREATE_FACTS.replace("{rel}", checked_identifier(rel)).replace("{label}", checked_identifier(label))
        for c in chunks(rows, EDGE_BATCH):
            store.query(statement, {"rows": c})
        edges += len(rows)
    for c in chunks(chunk["purchases"], EDGE_BATCH):
        store.query(CREATE_PURCHASES, {"rows": c})
    edges += len(chunk["purchases"])
    if chunk["docs"]:
        store.query(CREATE_DOCS, {"rows": chunk["docs"]})
    return edges


def load_users(store: FalkorStore, args: argparse.Namespace, interests: list[str], places: list[str]) -> int:
    """Generate the next chunk in a thread while the database writes the current one."""
    rng = np.random.default_rng(7)
    edges = 0
    started = time.perf_counter()
    starts = list(range(0, args.users, USER_BATCH))

    def make(start: int) -> dict[str, Any]:
        return generate_chunk(rng, start, min(USER_BATCH, args.users - start), args.facts_per_user, interests, places)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(make, starts[0])
        for i, start in enumerate(starts):
            chunk = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(make, starts[i + 1])
            edges += write_chunk(store, chunk)
            done = start + len(chunk["users"])
            if done % 100_000 == 0 or done == args.users:
                rate = edges / (time.perf_counter() - started)
                print(f"  loaded {done:,} users, {edges:,} fact/behaviour edges ({rate:,.0f} edges/s)", flush=True)
    return edges


# --- measurements -----------------------------------------------------------------------------


def measure_segments(store: FalkorStore) -> dict[str, float]:
    timings = {}
    for definition in SEGMENTS:
        parsed = parse_definition(definition)
        t0 = time.perf_counter()
        hits = evaluate_definition(store, parsed, now=NOW)
        evaluated = time.perf_counter() - t0
        delete_segment(store, definition["id"])  # a first run is a first run, also on a reused graph
        apply_definition(store, definition)
        report = run_segment(store, definition["id"], now=NOW)
        again = run_segment(store, definition["id"], now=NOW)
        timings[definition["id"]] = report.seconds
        print(f"  {definition['id']:<30} members {report.size:>9,}  evaluate {evaluated:6.2f}s  "
              f"first full run (evaluate + write {report.joined:,} joins) {report.seconds:6.2f}s  "
              f"re-run (no changes) {again.seconds:6.2f}s", flush=True)
        del hits
    return timings


def measure_incremental(store: FalkorStore, settings: Settings) -> None:
    # one new fact through the real pipeline: u1 now likes basketball (so it joins the sport fans)
    t0 = time.perf_counter()
    apply_fact_lines(store, settings, [
        # newer than every generated timestamp: until fusion stamps User.updated_at (see the issue
        # report), incremental refresh finds touched users through last_seen past the watermark
        fact(doc_id="bench-new-1", user_id="u1", ts=iso(NOW + timedelta(hours=1)), predicate="LIKES",
             object_qid="Q5372",
             object="basketball"),
    ])
    ingest = time.perf_counter() - t0
    for seg in SEGMENTS[:1]:
        report = run_segment(store, seg["id"], incremental=True, now=NOW)
        print(f"  incremental {seg['id']}: {report.seconds * 1000:.0f} ms (evaluated {report.evaluated_users} "
              f"user(s), +{report.joined} −{report.left}); the new fact itself took {ingest * 1000:.0f} ms")
    t0 = time.perf_counter()
    report = run_segment(store, SEGMENTS[0]["id"], incremental=True, now=NOW)
    print(f"  incremental with nothing touched: {report.seconds * 1000:.0f} ms")


def baseline_export(rev: str) -> Any:
    """engine/export.py as of git revision `rev`, loaded as a separate module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:engine/export.py"], cwd=root, check=True,  # noqa: S603, S607
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"export_at_{rev}")
    module.__file__ = f"<{rev}:engine/export.py>"
    sys.modules[module.__name__] = module  # dataclass/pydantic look the module up while building models
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file at REV
    return module.export_segment


def create_segment(store: FalkorStore, definition: dict[str, Any]) -> None:
    """Create the segment afresh (deleting an earlier one) and time its first run."""
    delete_segment(store, definition["id"])
    apply_definition(store, definition)
    report = run_segment(store, definition["id"], now=NOW)
    again = run_segment(store, definition["id"], now=NOW)
    print(f"  created {definition['id']}: {report.size:,} members in {report.seconds:.1f}s "
          f"(re-run with no change {again.seconds:.1f}s)", flush=True)


def ensure_segment(store: FalkorStore, definition: dict[str, Any]) -> bool:
    """Create and run the segment unless the graph has it already; True when it wrote."""
    count = store.ro_query("MATCH (s:Segment {id: $id}) RETURN count(s)", {"id": definition["id"]}).scalar()
    if count:
        return False
    create_segment(store, definition)
    return True


def measure_export(store: FalkorStore, out_dir: Path, seg: str, repeat: int = 1, baseline: str | None = None) -> None:
    variants: list[tuple[str, Any]] = [("current", export_segment)]
    if baseline:
        variants.insert(0, (f"at {baseline}", baseline_export(baseline)))
    for _ in range(repeat):
        for fmt, hashed in (("csv", False), ("parquet", True), ("jsonl", False)):
            for label, export in variants:
                out = out_dir / f"{seg}.{fmt}"
                t0 = time.perf_counter()
                manifest = export(store, seg, fmt=fmt, out=out, hash_ids=hashed, salt="bench")
                secs = time.perf_counter() - t0
                print(f"  export {fmt:<8} hashed={hashed!s:<5} {label:<14} {manifest.rows:>9,} rows in {secs:6.2f}s = "
                      f"{manifest.rows / secs:,.0f} rows/s ({out.stat().st_size / 1e6:.0f} MB)", flush=True)
                out.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--facts-per-user", type=int, default=10)
    ap.add_argument("--interests", type=int, default=10_000, help="interest entities drawn from the KB")
    ap.add_argument("--places", type=int, default=4_000, help="place entities drawn from the KB")
    ap.add_argument("--keep-home", type=Path, default=None, help="persona home to keep the generated graph in")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep-home: if that home already holds users, skip the load")
    ap.add_argument("--export-only", action="store_true", help="with --reuse: measure the export only")
    ap.add_argument("--export-everyone", action="store_true", help="export a segment of every user")
    ap.add_argument("--export-repeat", type=int, default=1, help="export every format this many times")
    ap.add_argument("--baseline-rev", default=None,
                    help="also time engine/export.py at this git revision (e.g. HEAD), alternating with the current")
    args = ap.parse_args()
    if args.reuse and not args.keep_home:
        ap.error("--reuse needs --keep-home")

    home = args.keep_home.resolve() if args.keep_home else Path(tempfile.mkdtemp(prefix="persona-bench-seg-"))
    server = EmbeddedFalkorDB(home)
    status = server.start()
    settings = Settings(home=home, graph_uri=status.graph_uri(), graph_name="persona")
    store = FalkorStore("127.0.0.1", int(status.port or 0), settings.graph_name, password=status.password)
    reuse = bool(args.reuse and store.ro_query("MATCH (u:User) RETURN count(u)").scalar())
    wrote = not reuse
    if not reuse:
        store.query("MATCH (n) DETACH DELETE n")
    store.ensure_schema()
    try:
        if reuse:
            users = store.ro_query("MATCH (u:User) RETURN count(u)").scalar()
            print(f"segments benchmark: reusing {users:,} users in {home} (no load)", flush=True)
        else:
            print(f"segments benchmark: {args.users:,} users × ~{args.facts_per_user} facts, home {home}", flush=True)
            t0 = time.perf_counter()
            interests, places = entity_pools(np.random.default_rng(11), args.interests, args.places)
            n_ctx = load_entities(store, interests, places)
            t_ent = time.perf_counter() - t0
            print(f"entities: {len(interests):,} interests, {len(places):,} places, {n_ctx:,} KB context edges "
                  f"in {t_ent:.1f}s", flush=True)
            t1 = time.perf_counter()
            edges = load_users(store, args, interests, places)
            t_load = time.perf_counter() - t1
            print(f"load: {args.users:,} users, {edges:,} edges in {t_load:.1f}s ({edges / t_load:,.0f} edges/s); "
                  f"FalkorDB RSS {rss_mb(status.pid):,.0f} MB", flush=True)
        if not (reuse and args.export_only):
            wrote = True
            print("full runs (default settings: per-query memory cap "
                  f"{settings.db.query_mem_capacity_mb:,} MB):", flush=True)
            measure_segments(store)
            print("incremental refresh after one new fact:")
            measure_incremental(store, settings)
            print("a segment of every user:")
            create_segment(store, EVERYONE)
        print("export:")
        seg = SEGMENTS[-1]["id"]
        if args.export_everyone:
            wrote = ensure_segment(store, EVERYONE) or wrote
            seg = EVERYONE["id"]
        with tempfile.TemporaryDirectory(dir=home) as out_dir:
            measure_export(store, Path(out_dir), seg, args.export_repeat, args.baseline_rev)
        print(f"memory: FalkorDB RSS {rss_mb(status.pid):,.0f} MB, this process max RSS {rss_mb():,.0f} MB")
    finally:
        store.close()
        if args.keep_home and wrote:
            r = redis.Redis(host="127.0.0.1", port=int(status.port or 0), password=status.password)
            r.bgrewriteaof()  # compact the AOF (RDB preamble) so the next start loads fast
            while r.info("persistence").get("aof_rewrite_in_progress"):
                time.sleep(0.5)
        if args.keep_home:
            server.stop()
            print(f"kept the graph in {home} (graph 'persona'). Reuse it with:\n"
                  f"  PERSONA_HOME={home} .venv/bin/persona db start\n"
                  f"  PERSONA_HOME={home} .venv/bin/persona segment list")
        else:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
