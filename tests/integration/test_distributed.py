"""Scale-out ingest against a real local cluster: the embedded Redis as broker, `persona worker`
processes as separate OS processes, the graph in the same embedded FalkorDB.

Every run through the queue is compared with one in-process run of the same input on the same
server (node and edge counts, evidence totals, a digest of every fact edge's properties).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings, WorkerSettings
from engine.distributed import JobStore, job_store
from engine.distributed.jobs import split_field
from engine.ingest import read_fact_lines
from engine.pipeline import IngestReport, ingest_facts
from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
THINGS = ["football", "pizza", "tennis", "sushi", "cats", "jazz", "coffee", "chess", "yoga", "rice"]
CITIES = ["Berlin", "Paris", "Madrid", "London", "Tokyo"]
BAD_LINES = [
    '{"doc_id": "bad-ts", "user_id": "u1", "ts": 12, "predicate": "LIKES", "object": "x"}',
    "not json at all",
    '{"doc_id": "bad-pred", "user_id": "u2", "ts": "2024-01-01T00:00:00Z", "predicate": "NOPE", "object": "x"}',
]
VOLATILE = {"updated_at"}
START = datetime(2024, 1, 1, tzinfo=UTC)  # wall-clock stamps, not content


def write_facts(path: Path, n: int, *, seed: int, users: int = 120, prefix: str = "d",
                things: list[str] = THINGS, cities: list[str] = CITIES) -> list[int]:
    """`n` fact lines over `users` users (functional LIVES_IN, exclusive LIKES/DISLIKES), with a
    malformed line every 700; returns the line numbers of the malformed ones."""
    rng = random.Random(seed)
    bad: list[int] = []
    lines: list[str] = []
    for i in range(n):
        user = f"user{rng.randrange(users)}"
        roll = rng.random()
        pred, obj = ("LIVES_IN", rng.choice(cities)) if roll < 0.2 and cities else (
            ("LIKES" if roll < 0.6 else "DISLIKES"), rng.choice(things))
        lines.append(json.dumps({
            "doc_id": f"{prefix}{i // 2}-{user}", "user_id": user, "predicate": pred, "object": obj,
            # time moves forward through the file, as in a log or a backlog exported in order
            "ts": (START + timedelta(minutes=7 * i + rng.randrange(5))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "confidence": round(rng.uniform(0.5, 0.95), 2), "text": f"text {i}",
        }))
        if i % 700 == 350:
            lines.append(BAD_LINES[(i // 700) % len(BAD_LINES)])
            bad.append(len(lines))
    path.write_text("\n".join(lines) + "\n")
    return bad


def digest(store: FalkorStore) -> dict[str, Any]:
    """Counts per label and relationship type, evidence totals, and a hash of every fact and
    document (Conflict records carry a wall-clock id and time: counted, not hashed)."""
    labels = {r[0]: r[1] for r in store.ro_query("MATCH (n) RETURN labels(n)[0], count(n)").rows}
    types = {r[0]: r[1] for r in store.ro_query("MATCH ()-[r]->() RETURN type(r), count(r)").rows}
    evidence = store.ro_query("MATCH (:User)-[r]->() WHERE r.evidence_count IS NOT NULL "
                              "RETURN sum(r.evidence_count)").rows[0][0]
    rows = store.ro_query(
        "MATCH (a)-[r]->(b) WHERE NOT b:Conflict "
        "RETURN labels(a)[0], coalesce(a.id, a.key), type(r), properties(r), labels(b)[0], coalesce(b.id, b.key)"
    ).rows
    docs = store.ro_query("MATCH (d:Document) RETURN properties(d)").rows
    canon = sorted(json.dumps([r[0], r[1], r[2], {k: v for k, v in r[3].items() if k not in VOLATILE}, r[4], r[5]],
                              sort_keys=True, default=str) for r in rows)
    canon += sorted(json.dumps({k: v for k, v in d[0].items() if k not in VOLATILE}, sort_keys=True, default=str)
                    for d in docs)
    return {"labels": labels, "types": types, "evidence": evidence,
            "hash": hashlib.sha256("\n".join(canon).encode()).hexdigest()}


def without_conflicts(d: dict[str, Any]) -> dict[str, Any]:
    """The digest less the Conflict records. A batch killed between check's two writes (statuses,
    then Conflict nodes: engine/check.py apply_changes) leaves statuses without their record and
    a rerun finds nothing left to resolve: the same happens to an in-process ingest killed there."""
    return {**d, "labels": {k: v for k, v in d["labels"].items() if k != "Conflict"},
            "types": {k: v for k, v in d["types"].items() if k != "HAS_CONFLICT"}}


class Cluster:
    """Worker processes (`persona worker`) sharing one persona home and its embedded database."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.nodes: dict[str, str] = {}  # name → Celery node name of its current process
        self.logs: dict[str, Path] = {}

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        node = f"{name}-{uuid.uuid4().hex[:4]}@test"  # a restarted worker is another process
        log = self.home.parent / f"{node}.log"
        self.logs[name], self.nodes[name] = log, node
        with log.open("ab") as fh:
            self.workers[name] = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "worker", "--name", node, "--loglevel", "INFO"],
                cwd=ROOT, env={**self.env, **(env or {})}, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_ready(self, *names: str) -> None:
        deadline = time.monotonic() + 90
        for name in names:
            while b" ready." not in self.logs[name].read_bytes():
                assert self.workers[name].poll() is None, self.logs[name].read_text()[-3000:]
                assert time.monotonic() < deadline, f"worker {name} not ready: {self.logs[name].read_text()[-3000:]}"
                time.sleep(0.1)

    def kill9(self, name: str) -> None:
        os.killpg(self.workers[name].pid, signal.SIGKILL)
        self.workers.pop(name).wait(timeout=30)

    def stop(self, name: str) -> None:
        proc = self.workers.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.workers):
            self.stop(name)

    def enqueue(self, file: Path, *extra: str) -> str:
        out = self.cli("ingest-facts", str(file), "--queue", "--json", *extra)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["job_id"]

    def wait_job(self, job_id: str, timeout: float = 150) -> tuple[int, dict[str, Any]]:
        out = self.cli("jobs", job_id, "--wait", "--json", "--interval", "0.2", timeout=timeout)
        assert out.stdout, out.stderr
        return out.returncode, json.loads(out.stdout)

    def settings(self, graph: str | None = None) -> Settings:
        return Settings.from_env(self.env, graph_name=graph)

    def graph(self, name: str | None = None) -> FalkorStore:
        status = EmbeddedFalkorDB(self.home).status()
        store = FalkorStore("127.0.0.1", int(status.port or 0), name or self.env["PERSONA_GRAPH_NAME"],
                            password=status.password)
        store.ensure_schema()
        return store

    def clear(self) -> None:
        store = self.graph()
        store.query("MATCH (n) DETACH DELETE n")
        store.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    home = base / "home"
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200",
        "PERSONA_HOME": str(home), "PERSONA_GRAPH_URI": "embedded", "PERSONA_GRAPH_NAME": "cluster",
        "PERSONA_WORKER_QUEUE": f"q-{uuid.uuid4().hex[:8]}", "PERSONA_WORKER_PARTITIONS": "8",
        # short timings so redelivery and retries happen within a test
        "PERSONA_WORKER_VISIBILITY_TIMEOUT_S": "4", "PERSONA_WORKER_RESTORE_INTERVAL_S": "0.5",
        "PERSONA_WORKER_LOCK_TTL_S": "3", "PERSONA_WORKER_RETRY_BACKOFF_S": "0.2",
        "PERSONA_WORKER_RETRY_BACKOFF_MAX_S": "1", "PERSONA_WORKER_MAX_RETRIES": "2",
    }
    for key in ("PERSONA_BROKER_URL", "PERSONA_RESULT_BACKEND"):
        env.pop(key, None)
    server = EmbeddedFalkorDB(home)
    server.start()
    c = Cluster(home, env)
    for name in ("w1", "w2", "w3"):
        c.start(name)
    c.wait_ready("w1", "w2", "w3")
    try:
        yield c
    finally:
        c.stop_all()
        server.stop()


def baseline(cluster: Cluster, *files: Path, batch: int) -> tuple[dict[str, Any], IngestReport]:
    """One in-process run of the files (in order) into a fresh graph on the same server; the
    digest and the last file's report."""
    name = f"base_{uuid.uuid4().hex[:8]}"
    store = cluster.graph(name)
    settings = cluster.settings(name)
    try:
        for f in files:
            report = ingest_facts(store, settings, read_fact_lines(f), batch=batch)
        return digest(store), report
    finally:
        store.query("MATCH (n) DETACH DELETE n")
        store.close()


@pytest.fixture(scope="module")
def facts_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    path = tmp_path_factory.mktemp("input") / "facts.jsonl"
    return path, write_facts(path, 2000, seed=7)


def test_three_workers_give_the_in_process_graph(cluster: Cluster, facts_file: tuple[Path, list[int]]) -> None:
    path, bad = facts_file
    expected, in_process = baseline(cluster, path, batch=500)
    cluster.clear()
    job = cluster.enqueue(path, "--batch-size", "500")
    code, status = cluster.wait_job(job)
    assert code == 1  # malformed lines failed...
    assert status["states"]["done"] == status["meta"]["batches"] and status["states"]["dead"] == 0
    errors = status["report"]["errors"]
    # ...each alone, with its line, worded as in-process
    assert sorted(e["line"] for e in errors) == bad
    assert [(e["line"], e["field"], e["message"]) for e in errors] == [
        (e.line, e.field, e.message) for e in in_process.errors]
    # (edges_written counts writes per batch: more, smaller batches write an edge more often)
    for count in ("lines", "accepted", "applied", "users", "documents"):
        assert status["report"][count] == getattr(in_process, count), count
    store = cluster.graph()
    try:
        assert digest(store) == expected
    finally:
        store.close()
    workers = {o.worker for o in job_store(cluster.settings()).outcomes(job).values()}
    assert len(workers) >= 2, workers  # the batches really were spread over processes


def test_kill_9_of_a_worker_mid_batch_loses_and_duplicates_nothing(
    cluster: Cluster, facts_file: tuple[Path, list[int]]
) -> None:
    path, _ = facts_file
    expected, _ = baseline(cluster, path, batch=1000)
    cluster.clear()
    jobs = job_store(cluster.settings())
    job = cluster.enqueue(path, "--batch-size", "1000")  # few big batches: one is surely running
    by_node = {node: name for name, node in cluster.nodes.items()}
    killed: list[tuple[str, int]] = []  # (node, the batch it died on)
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        pipe = jobs.client.pipeline()
        pipe.hgetall(jobs.key(job, "state"))
        pipe.hgetall(jobs.key(job, "runner"))
        states, runners = pipe.execute()
        running = [(runners[b].decode(), int(b)) for b, st in states.items() if st == b"running" and b in runners]
        if not running:
            continue
        node = running[0][0]
        name = by_node[node]
        cluster.kill9(name)
        # after its death nothing changes what it had: a batch it left `running` is the one it died in
        after = jobs.client.hgetall(jobs.key(job, "state"))
        killed = [(node, b) for n, b in running if n == node and after.get(str(b).encode()) == b"running"]
        cluster.start(name)  # a new process under the same name (another node name)
    assert killed, "no worker was caught mid-batch"
    code, status = cluster.wait_job(job)
    assert status["states"]["dead"] == 0 and status["states"]["done"] == status["meta"]["batches"]
    node, batch = killed[0]
    outcome = jobs.outcomes(job)[batch]
    assert outcome.worker != node, "the killed batch was finished by another worker"
    assert status["report"]["applied"] == 2000  # counted once although delivered twice
    store = cluster.graph()
    try:
        # no lost fact, no doubled evidence: every fact edge and document as in-process
        assert without_conflicts(digest(store)) == without_conflicts(expected)
    finally:
        store.close()
    cluster.wait_ready(*cluster.workers)


def test_two_inputs_racing_on_shared_users(cluster: Cluster, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    # the same 40 users in both; LIVES_IN and the objects only in one each, so the result does not
    # depend on which input's batch comes first, only on batches never overlapping
    write_facts(a, 1000, seed=11, users=40, prefix="a", things=THINGS[:5])
    write_facts(b, 1000, seed=12, users=40, prefix="b", things=THINGS[5:], cities=[])
    expected, _ = baseline(cluster, a, b, batch=50)
    cluster.clear()
    procs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "ingest-facts", str(f), "--queue", "--json",
                               "--batch-size", "50"], cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, text=True)
             for f in (a, b)]
    jobs_ids = [json.loads(p.communicate(timeout=60)[0])["job_id"] for p in procs]
    for job in jobs_ids:
        _, status = cluster.wait_job(job)
        assert status["states"]["done"] == status["meta"]["batches"]
    store = cluster.graph()
    try:
        assert digest(store) == expected
    finally:
        store.close()
    # no two batches of one partition (from either job) ever ran at the same time
    jobs = job_store(cluster.settings())
    spans: dict[int, list[tuple[float, float]]] = {}
    for job in jobs_ids:
        for o in jobs.outcomes(job).values():
            spans.setdefault(int(o.partition or 0), []).append((o.started_at or 0, o.ended_at or 0))
    for part, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            assert start >= end, f"partition {part}: overlapping batches"


def test_store_unreachable_retries_then_dead_letters_then_retry(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    write_facts(path, 200, seed=3)
    queue = f"dead-{uuid.uuid4().hex[:6]}"
    # a worker whose graph store is a closed port; broker and job records are still the embedded Redis
    cluster.start("broken", env={"PERSONA_WORKER_QUEUE": queue, "PERSONA_GRAPH_URI": "falkordb://127.0.0.1:9"})
    cluster.wait_ready("broken")
    out = cluster.cli("ingest-facts", str(path), "--queue", "--json", "--batch-size", "1000",
                      env={"PERSONA_WORKER_QUEUE": queue})
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["job_id"]
    code, status = cluster.wait_job(job)
    cluster.stop("broken")
    assert code == 1
    assert status["states"]["dead"] == status["meta"]["batches"] > 0
    assert all(d["attempts"] == 3 and "not reachable" in d["reason"] for d in status["dead"])  # 1 + 2 retries
    text = cluster.cli("jobs", job, "--no-wait")
    assert "dead after 3 attempts" in text.stderr and "FalkorDB is not reachable" in text.stderr

    cluster.clear()
    retry = cluster.cli("jobs", "retry", job, "--json")
    assert retry.returncode == 0, retry.stderr
    assert len(json.loads(retry.stdout)["requeued"]) == status["meta"]["batches"]
    cluster.start("healthy", env={"PERSONA_WORKER_QUEUE": queue})
    try:
        code, status = cluster.wait_job(job)
    finally:
        cluster.stop("healthy")
    assert status["states"]["done"] == status["meta"]["batches"] and status["dead"] == []
    expected, _ = baseline(cluster, path, batch=1000)
    store = cluster.graph()
    try:
        assert digest(store) == expected
    finally:
        store.close()


def test_broker_restart_mid_job_resumes(cluster: Cluster, facts_file: tuple[Path, list[int]]) -> None:
    """The graph dies with the broker; its log replays it exactly (test_store_replay.py: before
    effects-only logging, one user's evidence could land on another user's edge here)."""
    path, _ = facts_file
    expected, _ = baseline(cluster, path, batch=250)
    cluster.clear()
    jobs = job_store(cluster.settings())
    job = cluster.enqueue(path, "--batch-size", "250")
    deadline = time.monotonic() + 60
    while jobs.status(job).states["done"] < 3 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    server = EmbeddedFalkorDB(cluster.home)
    port = server.status().port
    os.kill(int(server.status().pid or 0), signal.SIGKILL)  # broker, job records and graph all go away
    time.sleep(1.0)
    restarted = server.start()
    assert restarted.port == port  # same address: the workers reconnect by themselves
    code, status = cluster.wait_job(job)
    assert status["states"]["done"] == status["meta"]["batches"] and status["states"]["dead"] == 0
    store = cluster.graph()
    try:
        assert without_conflicts(digest(store)) == without_conflicts(expected)  # (the graph was killed too)
    finally:
        store.close()


def test_records_through_the_encoder_tier_match_in_process(cluster: Cluster, tmp_path: Path) -> None:
    """Free text: the workers load the encoder tier once and give the in-process graph."""
    from engine.extract import make_tier
    from engine.extract.encoder.weights import PACKAGED, WeightsError, load_task
    from engine.ingest import read_records
    from engine.pipeline import ingest_records

    try:
        load_task(PACKAGED, "facts")
    except (WeightsError, FileNotFoundError, OSError) as exc:
        pytest.skip(f"no trained encoder weights in {PACKAGED} yet (`persona train`): {exc}")
    texts = ["I live in Berlin and I love football.", "Odio el café, pero me encanta el té.",
             "我喜欢打网球，住在上海。", "My cat Tom hates rain.", "I moved to Paris last year."]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps({"user_id": f"user{i % 7}", "text": f"{texts[i % 5]} ({i})",
                                          "ts": f"2024-03-{1 + i % 28:02d}T10:00:00Z"}) for i in range(60))
                    + "\n" + json.dumps({"user_id": "", "text": "no user", "ts": "2024-01-01T00:00:00Z"}) + "\n")
    name = f"base_{uuid.uuid4().hex[:8]}"
    store = cluster.graph(name)
    try:
        tier = make_tier("encoder", cluster.settings().llm, model_cache=cluster.settings().model_cache)
        report = ingest_records(store, cluster.settings(name), read_records(path), extractor=tier, batch=16)
        expected = digest(store)
    finally:
        store.query("MATCH (n) DETACH DELETE n")
        store.close()
    cluster.clear()
    out = cluster.cli("ingest", str(path), "--queue", "--json", "--extractor", "encoder", "--batch-size", "16",
                      "--no-cache")
    assert out.returncode == 0, out.stderr
    code, status = cluster.wait_job(json.loads(out.stdout)["job_id"], timeout=300)
    assert code == 1 and [e["line"] for e in status["report"]["errors"]] == [61]  # the record without user
    assert status["report"]["docs"] == report.docs
    store = cluster.graph()
    try:
        assert digest(store) == expected
    finally:
        store.close()


# --- recovery with the default settings (engine/distributed/recovery.py) -------------------------
# Nothing shortened: the visibility timeout stays 3600 s, so a batch whose worker died can only be
# finished within these waits if recovery sends it again.
RECOVERY_WAIT_S = 150


@pytest.fixture
def default_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Two `persona worker` processes with every worker setting at its default."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env.update({"PYTHONPATH": str(ROOT), "COLUMNS": "200", "PERSONA_HOME": str(home),
                "PERSONA_GRAPH_URI": "embedded", "PERSONA_GRAPH_NAME": "recovery"})
    server = EmbeddedFalkorDB(home)
    server.start()
    c = Cluster(home, env)
    assert c.settings().worker == WorkerSettings()
    c.start("w1")
    c.start("w2")
    try:
        c.wait_ready("w1", "w2")
        yield c
    finally:
        c.stop_all()
        server.stop()


def freeze_one(cluster: Cluster, jobs: JobStore) -> tuple[str, str, int] | None:
    """Stop (SIGSTOP) a worker while the batch it runs is still running: its name, the job and the
    batch. A frozen worker is where a kill -9 mid-batch would leave it."""
    by_node = {node: name for name, node in cluster.nodes.items()}
    for field in jobs.inflight():
        job, batch = split_field(field)
        runner = jobs.client.hget(jobs.key(job, "runner"), str(batch))
        name = by_node.get(runner.decode()) if runner else None
        if name is None or jobs.state(job, batch) != "running":
            continue
        os.killpg(cluster.workers[name].pid, signal.SIGSTOP)
        time.sleep(0.2)  # stopped for sure: nothing it does changes the records any more
        if jobs.state(job, batch) == "running":
            return name, job, batch
        os.killpg(cluster.workers[name].pid, signal.SIGCONT)  # it finished just before
    return None


def enqueue_and_freeze(cluster: Cluster, jobs: JobStore, path: Path, *extra: str) -> tuple[str, str, int]:
    """Enqueue `path` on an empty graph, watching from the first batch on (warm workers finish
    small batches while the producer still sends), until a worker is frozen mid-batch."""
    for _ in range(5):
        cluster.clear()
        producer = subprocess.Popen([sys.executable, "-m", "engine.cli", "ingest-facts", str(path), "--queue",
                                     "--json", *extra], cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, text=True)
        caught = None
        while caught is None and producer.poll() is None:
            caught = freeze_one(cluster, jobs)
            time.sleep(0.002)
        job = json.loads(producer.communicate(timeout=60)[0])["job_id"]
        while caught is None and not jobs.status(job).finished:  # type: ignore[union-attr]
            caught = freeze_one(cluster, jobs)
            time.sleep(0.002)
        if caught is not None:
            assert caught[1] == job
            return job, caught[0], caught[2]
    raise AssertionError("no worker was caught mid-batch in 5 jobs")


def test_recovery_kill_9_of_a_worker_mid_batch_with_default_settings(default_cluster: Cluster, tmp_path: Path) -> None:
    """Issue # 15: 2 workers, 400 fact lines, one worker kill -9'd mid-batch: its batch is sent again
    by the survivor (lock expired, still running), not after the 3600 s visibility timeout."""
    cluster = default_cluster
    path = tmp_path / "facts.jsonl"
    write_facts(path, 400, seed=21)
    expected, _ = baseline(cluster, path, batch=5000)  # the CLI's default --batch-size
    jobs = job_store(cluster.settings())
    job, name, batch = enqueue_and_freeze(cluster, jobs, path)
    node = cluster.nodes[name]
    cluster.kill9(name)
    code, status = cluster.wait_job(job, timeout=RECOVERY_WAIT_S)
    assert status["states"]["dead"] == 0 and status["states"]["done"] == status["meta"]["batches"]
    assert jobs.outcomes(job)[batch].worker == cluster.nodes["w1" if name == "w2" else "w2"] != node
    assert status["report"]["applied"] == 400  # counted once
    assert jobs.inflight() == {}  # nothing left in flight
    store = cluster.graph()
    try:
        assert without_conflicts(digest(store)) == without_conflicts(expected)  # nothing lost, nothing doubled
    finally:
        store.close()
    survivor = cluster.logs["w1" if name == "w2" else "w2"].read_text()
    assert f"batch {batch} of job {job} lost its worker" in survivor
    assert EmbeddedFalkorDB(cluster.home).password() not in survivor  # the broker URL is logged masked


def test_recovery_database_kill_9_mid_job_resumes_and_waits_back_off(default_cluster: Cluster,
                                                                     tmp_path: Path) -> None:
    """Issue # 16 row 6: the database (= broker) kill -9'd while a batch runs and restarted: the
    in-flight batch is sent again by the same recovery; the later batches of its partition wait
    with backoff, not every 0.5 s."""
    cluster = default_cluster
    path = tmp_path / "facts.jsonl"
    write_facts(path, 400, seed=22, users=30)
    expected, _ = baseline(cluster, path, batch=50)
    jobs = job_store(cluster.settings())
    job, name, batch = enqueue_and_freeze(cluster, jobs, path, "--batch-size", "50")  # several per partition
    server = EmbeddedFalkorDB(cluster.home)
    port = server.status().port
    os.kill(int(server.status().pid or 0), signal.SIGKILL)
    os.killpg(cluster.workers[name].pid, signal.SIGCONT)  # its batch fails against the dead database
    # down long enough for the workers to notice and fail to give their messages back (a restart
    # within a second or two finds them still trying, and they do give them back)
    time.sleep(10.0)
    assert server.start().port == port
    # Usually left "running" without its runner; on a slow machine the worker may still be retrying
    # its writes when the database is back, and finish the batch itself.
    left_running = job_store(cluster.settings()).state(job, batch) == "running"
    code, status = cluster.wait_job(job, timeout=RECOVERY_WAIT_S)
    assert status["states"]["dead"] == 0 and status["states"]["done"] == status["meta"]["batches"]
    assert status["report"]["applied"] == 400
    store = cluster.graph()
    try:
        assert without_conflicts(digest(store)) == without_conflicts(expected)  # (the graph was killed too)
    finally:
        store.close()
    logs = "".join(log.read_text() for log in cluster.logs.values())
    # Its worker lived: it gave the message back itself on reconnecting. Had it not (or had it died:
    # the test above), recovery sends it again, since the batch stayed "running" without its lock.
    if left_running:
        assert re.search(r"Restoring \d+ unacknowledged", logs) or f"batch {batch} of job {job} lost its worker" in logs
    # the batches waiting on it come back after 0.5, 1, 2, 4, 8, 8 … s, not every 0.5 s
    waits = wait_countdowns(logs)
    assert max(len(w) for w in waits.values()) >= 3, waits
    assert all(not any(a == b == 0.5 for a, b in zip(w, w[1:], strict=False)) for w in waits.values()), waits


def wait_countdowns(logs: str) -> dict[str, list[float]]:
    """The countdowns each task was retried with, in time order (log lines start with the time)."""
    lines = sorted(line for line in logs.splitlines() if line.startswith("[20") and " retry: Retry in " in line)
    found: dict[str, list[float]] = {}
    for line in lines:
        m = re.search(r"ingest_batch\[([0-9a-f-]+)\] retry: Retry in ([0-9.]+)s", line)
        if m:
            found.setdefault(m[1], []).append(float(m[2]))
    return found
