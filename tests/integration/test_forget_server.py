"""Forget asks the database server itself and reads its files uncompressed: FalkorDB's query telemetry
(recent queries with their parameters), the queue's job records and dead letters, and stray keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.distributed import BatchTask, job_store
from engine.distributed.jobs import BatchOutcome
from engine.persona import get_persona
from engine.pipeline import IngestReport, apply_fact_lines
from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore
from tests.factlines import fact

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = "probe-user-5k2v"
TEXT = "I am probe-user-5k2v, I live in Lyon and I really love playing the cello on Sundays"
DOCS = ["probe-doc-91", "probe-doc-92"]


def _ingest(store: FalkorStore, settings: Settings) -> None:
    apply_fact_lines(store, settings, [
        fact(doc_id=DOCS[0], user_id=USER, predicate="LIKES", object="cello", text=TEXT, lang="en"),
        fact(doc_id=DOCS[1], user_id=USER, predicate="LIVES_IN", object_qid="Q456", object_types=["Q515"]),
        fact(doc_id="other-doc-1", user_id="other-user", predicate="LIKES", object="cello",
             text="other-user writes about the cello and nothing else", lang="en"),
    ])


def _plant_job_records(settings: Settings) -> None:
    """What a queued ingest leaves: the users / docs sets of a finished batch, dedupe claims and a
    dead letter holding the user's raw row (the real JobStore calls the workers make)."""
    jobs = job_store(settings)
    jobs.complete("job-1", 0, BatchOutcome(report=IngestReport(kind="records")), users={USER, "other-user"},
                  docs=set(DOCS))
    jobs.client.hset(jobs.key("job-1", "seen"), f"id:{DOCS[0]}", "0")  # a dedupe claim of batch 0
    task = BatchTask(job_id="job-1", batch=1, kind="records", partition=3,
                     rows=[(7, {"user_id": USER, "text": TEXT, "ts": "2024-01-01T00:00:00Z"}),
                           (8, {"user_id": "other-user", "text": "kept", "ts": "2024-01-01T00:00:00Z"})])
    jobs.dead_letter(task, "store unreachable", "w1")
    jobs.client.close()


def _as_older_server(client: redis.Redis) -> None:
    """The settings a server started by an earlier version ran with: query telemetry on, LZF snapshots."""
    client.execute_command("GRAPH.CONFIG", "SET", "CMD_INFO", "yes")
    client.execute_command("GRAPH.CONFIG", "SET", "MAX_INFO_QUERIES", 1000)
    client.config_set("rdbcompression", "yes")


def _telemetry(client: redis.Redis, key: str = "telemetry{persona}") -> bytes:
    """The stream's values once the server has written them (it does so in the background)."""
    for _ in range(100):
        entries = client.xrange(key)
        if entries:
            return b"".join(v for _, fields in entries for v in fields.values())
        time.sleep(0.1)
    return b""


def _forget(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERSONA_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    env.pop("PERSONA_GRAPH_URI", None)
    return subprocess.run([sys.executable, "-m", "engine.cli", "forget", USER, "--yes", *extra],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def _files_holding(home: Path, needles: list[str]) -> list[str]:
    found = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    server = EmbeddedFalkorDB(home)
    status = server.start()
    yield home, int(status.port or 0), status.password
    server.stop()


def test_embedded_server_keeps_no_query_telemetry(home) -> None:
    path, port, password = home
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    assert client.execute_command("GRAPH.CONFIG", "GET", "CMD_INFO")[1] == 0
    assert client.execute_command("GRAPH.CONFIG", "GET", "MAX_INFO_QUERIES")[1] == 0
    store = FalkorStore("127.0.0.1", port, "persona", password=password)
    store.ensure_schema()
    _ingest(store, Settings(home=path, graph_uri=f"falkordb://:{password}@127.0.0.1:{port}"))
    get_persona(store, USER)
    assert list(client.scan_iter(match="telemetry{*}")) == []
    assert store.residue([USER]) != []  # the user is in the graph: the server check sees it
    store.close()


def test_forget_after_telemetry_and_job_records_leaves_nothing(home) -> None:
    path, port, password = home
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    _as_older_server(client)
    store = FalkorStore("127.0.0.1", port, "persona", password=password)
    store.ensure_schema()
    settings = Settings(home=path)
    _ingest(store, Settings(home=path, graph_uri=f"falkordb://:{password}@127.0.0.1:{port}"))
    for _ in range(3):
        get_persona(store, USER)
    # the leak this guards against is real: the telemetry stream holds the id and the whole text
    stream = _telemetry(client)
    assert USER.encode() in stream and TEXT.encode() in stream
    store.compact(wait=True)  # the old, compressed snapshot with the telemetry in it goes to disk
    store.close()
    _plant_job_records(settings)  # (opening the job store reconfigures the server, as every command does)

    done = _forget(path, "--delete-exports", "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["server_residual"] == [] and report["residual"] == []
    assert report["job_records"] >= 3  # users set, docs set, dedupe claim, dead letter
    check = FalkorStore("127.0.0.1", port, "persona", password=password)
    assert check.residue([USER, TEXT], DOCS) == []
    assert check.ro_query("MATCH (u:User {id: 'other-user'}) RETURN count(u)").scalar() == 1
    check.close()
    # the files, read as bytes: snapshots are written uncompressed now, so nothing hides in them
    assert _files_holding(path, [USER, TEXT, *DOCS]) == []
    jobs = job_store(settings)
    assert jobs.client.smembers(jobs.key("job-1", "users")) == {b"other-user"}
    assert [[r[1]["user_id"] for r in t.rows] for t in jobs.dead_tasks("job-1")] == [["other-user"]]
    jobs.client.close()


@pytest.mark.parametrize("mode", [["--json"], []], ids=["json", "plain"])
def test_forget_exits_1_when_the_server_still_holds_the_user(home, mode: list[str]) -> None:
    path, port, password = home
    store = FalkorStore("127.0.0.1", port, "persona", password=password)
    store.ensure_schema()
    _ingest(store, Settings(home=path, graph_uri=f"falkordb://:{password}@127.0.0.1:{port}"))
    store.close()
    # something forget does not own still holds the user: a long, compressible value in another database
    stray = redis.Redis(host="127.0.0.1", port=port, db=2, password=password)
    stray.set("notes:42", ("padding " * 200) + USER + (" padding" * 200))

    done = _forget(path, *mode)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "notes:42" in done.stdout + done.stderr
    if mode:
        report = json.loads(done.stdout)
        assert any("db2" in hit and "notes:42" in hit for hit in report["server_residual"])
        # and the rewritten snapshot shows it to a plain byte scan too (no compression to hide it)
        assert any("appendonlydir" in hit["path"] for hit in report["residual"]), report["residual"]
