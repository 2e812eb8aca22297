"""Scale-out ingest: facts/s in-process vs through the queue with 1 / 2 / 4 worker processes, in
the same run on the same machine, and the queue's overhead per batch.

    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py [--facts 20000] [--workers 1,2]
        [--batch-sizes 1000,5000] [--partitions 16]
    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py --recovery [--recovery-lines 400]

Everything on loopback: a fresh persona home with its embedded FalkorDB (graph in database 0, the
broker and job records in database 1), `persona worker` processes started as separate OS
processes (solo pool, one batch at a time each). A queued run is timed from the first message
sent to the last batch recorded (the producer runs concurrently, as it would in production).
Overhead per batch = (queued time with one worker - in-process time) / batches; the part that is the
queue itself = (queued time with one worker - the same pipeline calls made in-process) / batches.

`--recovery` measures instead how long a batch whose worker was killed with -9 takes to come back
(engine/distributed/recovery.py), with the default worker settings: 2 workers, the job of
`--recovery-lines` fact lines run once undisturbed (the baseline), then again with one worker
frozen mid-batch and killed; seconds from the kill until the batch is sent again and until the
job is finished with the graph equal to an in-process ingest (counts per label, per relationship
type and evidence; Conflict records aside, as in the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from engine.distributed import BatchOptions, JobStore, enqueue_file, job_store, partition_of  # noqa: E402
from engine.distributed.enqueue import valid_items  # noqa: E402
from engine.distributed.jobs import split_field  # noqa: E402
from engine.ingest import read_fact_lines  # noqa: E402
from engine.ingest.facts import fact_from_dict  # noqa: E402
from engine.ingest.rows import read_rows, validated  # noqa: E402
from engine.pipeline import ingest_facts  # noqa: E402
from engine.store import EmbeddedFalkorDB, ServerStatus  # noqa: E402
from engine.store.falkor import FalkorStore  # noqa: E402

THINGS = ["football", "pizza", "tennis", "sushi", "cats", "jazz", "coffee", "chess", "yoga", "rice"]
CITIES = ["Berlin", "Paris", "Madrid", "London", "Tokyo"]


def write_facts(path: Path, n: int, users: int) -> None:
    rng = random.Random(5)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w") as fh:
        for i in range(n):
            user = f"user{rng.randrange(users)}"
            roll = rng.random()
            pred, obj = ("LIVES_IN", rng.choice(CITIES)) if roll < 0.2 else (
                ("LIKES" if roll < 0.6 else "DISLIKES"), rng.choice(THINGS))
            fh.write(json.dumps({"doc_id": f"d{i // 2}-{user}", "user_id": user, "predicate": pred, "object": obj,
                                 "ts": (start + timedelta(minutes=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "confidence": 0.8, "text": f"text {i}"}) + "\n")


def same_messages(path: Path, batch: int, partitions: int) -> list[list[tuple[int, dict]]]:
    """The row groups the producer would send (windows of `batch` valid facts × partitions)."""
    groups: list[list[tuple[int, dict]]] = []
    pending: dict[int, list[tuple[int, dict]]] = {}
    in_window = 0
    for line, row in read_rows(path):
        pending.setdefault(partition_of(row.get("user_id"), partitions), []).append((line, row))
        in_window += valid_items("facts", row, line, BatchOptions())
        if in_window >= batch:
            groups += [pending[p] for p in sorted(pending)]
            pending, in_window = {}, 0
    return groups + [pending[p] for p in sorted(pending)]


def clear(status: ServerStatus, graph: str) -> FalkorStore:
    store = FalkorStore("127.0.0.1", int(status.port or 0), graph, password=status.password)
    store.ensure_schema()
    store.query("MATCH (n) DETACH DELETE n")
    return store


def start_workers(n: int, env: dict[str, str], logdir: Path) -> list[subprocess.Popen[bytes]]:
    procs, logs = [], []
    for i in range(n):
        log = logdir / f"w{i}-{uuid.uuid4().hex[:4]}.log"
        logs.append(log)
        with log.open("wb") as fh:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "worker", "--name", f"bench{i}@bench", "--loglevel", "WARNING"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
    # WARNING level prints no "ready": wait until each worker consumes (it answers a ping-less probe:
    # the first batches are simply queued until then, so give them a moment to come up)
    time.sleep(2.0 + 0.8 * n)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def graph_counts(store: FalkorStore) -> tuple[list, list]:
    nodes = store.ro_query("MATCH (n) WHERE NOT n:Conflict RETURN labels(n)[0], count(n)").rows
    edges = store.ro_query("MATCH ()-[r]->() WHERE type(r) <> 'HAS_CONFLICT' "
                           "RETURN type(r), count(r), sum(coalesce(r.evidence_count, 0))").rows
    return sorted(nodes), sorted(edges)


def wait_finished(settings: Settings, job_id: str, limit_s: float = 600) -> float:
    jobs, started = job_store(settings), time.perf_counter()
    while not jobs.status(job_id).finished:  # type: ignore[union-attr]
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"job {job_id} not finished after {limit_s:.0f} s")
        time.sleep(0.05)
    return time.perf_counter()


def freeze_one(jobs: JobStore, procs: list[subprocess.Popen[bytes]]) -> tuple[int, str, int] | None:
    """SIGSTOP a worker while the batch it runs still runs: (worker index, job, batch), or None."""
    for field in jobs.inflight():
        job_id, batch = split_field(field)
        runner = jobs.client.hget(jobs.key(job_id, "runner"), str(batch))
        if runner is None or jobs.state(job_id, batch) != "running":
            continue
        index = int(runner.decode().split("@")[0].removeprefix("bench"))
        os.killpg(procs[index].pid, signal.SIGSTOP)
        time.sleep(0.2)
        if jobs.state(job_id, batch) == "running":
            return index, job_id, batch
        os.killpg(procs[index].pid, signal.SIGCONT)
    return None


def enqueue_and_freeze(settings: Settings, status: ServerStatus, data: Path,
                       procs: list[subprocess.Popen[bytes]]) -> tuple[int, str, int]:
    """Enqueue on an empty graph, watching from the first batch on (warm workers finish small
    batches while the producer still sends), until a worker is frozen mid-batch."""
    jobs = job_store(settings)
    while True:
        clear(status, "bench").close()
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(enqueue_file, settings, "facts", data, batch_size=5000)
            caught = None
            while caught is None and not (sent.done() and jobs.status(sent.result().id).finished):  # type: ignore[union-attr]
                caught = freeze_one(jobs, procs)
                time.sleep(0.002)
        if caught is not None:
            return caught


def recovery(settings: Settings, env: dict[str, str], status: ServerStatus, tmp: Path, lines: int) -> None:
    data = tmp / "recovery.jsonl"
    write_facts(data, lines, users=100)
    store = clear(status, "bench")
    ingest_facts(store, settings, read_fact_lines(data), batch=5000)  # the CLI's default --batch-size
    expected = graph_counts(store)
    store.close()
    w = settings.worker
    print(f"recovery: {lines} fact lines, 2 workers, default settings (lock TTL {w.lock_ttl_s:.0f} s, sweep every "
          f"{w.recover_interval_s:.0f} s, visibility timeout {w.visibility_timeout_s} s)")
    clear(status, "bench").close()
    procs = start_workers(2, env, tmp)
    try:
        for run in ("cold", "warm"):  # the first job also loads the workers' code and connections
            clear(status, "bench").close()
            started = time.perf_counter()
            meta = enqueue_file(settings, "facts", data, batch_size=5000)
            undisturbed = wait_finished(settings, meta.id) - started
            print(f"recovery: the job undisturbed, workers {run}: {undisturbed:6.2f} s ({meta.batches} batches)")
        index, job_id, batch = enqueue_and_freeze(settings, status, data, procs)
        os.killpg(procs[index].pid, signal.SIGKILL)
        killed = time.perf_counter()
        jobs = job_store(settings)
        while jobs.state(job_id, batch) == "running":
            time.sleep(0.05)
        resent = time.perf_counter() - killed
        finished = wait_finished(settings, job_id) - killed
    finally:
        stop_workers([p for p in procs if p.poll() is None])
    store = FalkorStore("127.0.0.1", int(status.port or 0), "bench", password=status.password)
    same = graph_counts(store) == expected
    store.close()
    applied = jobs.status(job_id).report.applied  # type: ignore[union-attr]
    print(f"recovery: worker kill -9'd mid-batch {batch}: sent again after {resent:6.2f} s, job finished "
          f"{finished:6.2f} s after the kill ({finished / undisturbed:.0f}x the warm undisturbed job); "
          f"graph equals in-process: {same}; facts applied {applied} of {lines}")
    print(f"seconds until recovered: {finished:.1f} (without recovery: the visibility timeout, "
          f"{w.visibility_timeout_s} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--facts", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--batch-sizes", default="1000,5000")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--recovery", action="store_true", help="measure recovery after a worker kill -9 instead")
    ap.add_argument("--recovery-lines", type=int, default=400)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="persona-dist-bench-"))
    home = tmp / "home"
    server = EmbeddedFalkorDB(home)
    db = server.start()
    data = tmp / "facts.jsonl"
    write_facts(data, args.facts, args.users)
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSONA_HOME": str(home), "PERSONA_GRAPH_URI": "embedded",
           "PERSONA_GRAPH_NAME": "bench", "PERSONA_WORKER_QUEUE": queue,
           "PERSONA_WORKER_PARTITIONS": str(args.partitions)}
    settings = Settings.from_env(env)
    if args.recovery:
        try:
            recovery(settings, env, db, tmp, args.recovery_lines)
        finally:
            server.stop()
        return
    print(f"{args.facts} facts, {args.users} users, {args.partitions} partitions, {os.cpu_count()} cores")
    try:
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            store = clear(db, "bench")
            started = time.perf_counter()
            report = ingest_facts(store, settings, read_fact_lines(data), batch=batch)
            base = time.perf_counter() - started
            store.close()
            print(f"batch {batch:>5}: in-process {base:6.2f} s  {report.accepted / base:8.0f} facts/s")
            # the same pipeline calls as the queued run makes, one after the other, without a queue
            groups = same_messages(data, batch, args.partitions)
            store = clear(db, "bench")
            started = time.perf_counter()
            for rows in groups:
                ingest_facts(store, settings, list(validated(rows, fact_from_dict)), batch=len(rows))
            split = time.perf_counter() - started
            store.close()
            print(f"batch {batch:>5}: in-process, same {len(groups)} groups as the messages {split:6.2f} s  "
                  f"{report.accepted / split:8.0f} facts/s")
            single = None
            for n in [int(w) for w in args.workers.split(",")]:
                clear(db, "bench").close()
                procs = start_workers(n, env, tmp)
                try:
                    started = time.perf_counter()
                    meta = enqueue_file(settings, "facts", data, batch_size=batch)
                    jobs = job_store(settings)
                    while not (status := jobs.status(meta.id)).finished:  # type: ignore[union-attr]
                        time.sleep(0.05)
                    took = time.perf_counter() - started
                finally:
                    stop_workers(procs)
                assert status.states["dead"] == 0, status.dead
                single = took if n == 1 else single
                line = (f"batch {batch:>5}: {n} worker(s) {took:6.2f} s  {status.report.accepted / took:8.0f} facts/s"
                        f"  ({meta.batches} messages, {base / took:.2f}x in-process)")
                if n == 1:
                    line += (f"  overhead {(took - base) / meta.batches * 1000:.1f} ms/batch vs in-process, "
                             f"{(took - split) / meta.batches * 1000:.1f} ms/batch of it the queue")
                print(line)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
