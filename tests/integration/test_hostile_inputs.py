"""Hostile structures through real `persona` processes (#16 rows 7-10): deeply nested and oversized
lines fail alone in every ingest command and on the queue's producer (which applies the in-process
limits and sends nothing a worker would refuse), a job that fails to enqueue ends as failed, and
`segment apply` refuses deep files, alias bombs and thousands of clauses with a message."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Settings, WorkerSettings
from engine.distributed import enqueue_file, job_store
from engine.ingest import LineError, read_fact_lines
from engine.ingest.rows import MAX_LINE_BYTES
from engine.store import ServerStatus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TS = "2024-05-01T10:00:00Z"
DEEP = 3_000


def fact(doc: str, **kw: Any) -> str:
    return json.dumps({"doc_id": doc, "user_id": "ana", "ts": TS, "predicate": "LIKES", "object": "tea"} | kw)


def event(event_id: str, **kw: Any) -> str:
    return json.dumps({"event_id": event_id, "user_id": "ana", "type": "purchase", "item": "ball", "ts": TS,
                       "amount": 3.0} | kw)


def deep(line: str) -> str:
    """The line with one more field nested DEEP levels."""
    return line[:-1] + ', "deep": ' + "[" * DEEP + "]" * DEEP + "}"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cap_memory() -> None:
    """The child may not take the machine down if a limit is missing (an alias bomb grows fast)."""
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def persona(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False, preexec_fn=cap_memory)  # noqa: PLW1509


@pytest.fixture
def env(cli_env: dict[str, str], falkor_server: ServerStatus) -> dict[str, str]:
    import os

    return {**os.environ, **cli_env, "PYTHONPATH": str(ROOT),
            "PERSONA_BROKER_URL": f"redis://:{falkor_server.password}@127.0.0.1:{falkor_server.port}/1",
            "PERSONA_WORKER_QUEUE": f"q-{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def queue_settings(settings: Settings, env: dict[str, str]) -> Iterator[Settings]:
    """No worker consumes this queue: whatever is in a job's report came from the producer."""
    worker = WorkerSettings(broker_url=env["PERSONA_BROKER_URL"], queue=env["PERSONA_WORKER_QUEUE"], partitions=4)
    yield settings.model_copy(update={"worker": worker})
    redis.Redis.from_url(env["PERSONA_BROKER_URL"]).delete(env["PERSONA_WORKER_QUEUE"])


@pytest.mark.parametrize(("command", "make"), [("ingest-facts", fact), ("ingest-events", event)])
def test_a_deeply_nested_line_fails_alone_in_a_real_ingest(env: dict[str, str], tmp_path: Path, command: str,
                                                          make) -> None:
    file = write(tmp_path / "in.jsonl", [make("a"), deep(make("b")), make("c")])
    out = persona(env, command, str(file), "--json")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["accepted"] == 2 and report["failed"] == 1
    assert [(e["line"], e["field"], e["message"]) for e in report["errors"]] == [
        (2, "record", "too deeply nested (more than 32 levels)")]


def test_the_producer_applies_the_in_process_limits(queue_settings: Settings, tmp_path: Path) -> None:
    file = write(tmp_path / "facts.jsonl", [
        fact("a"),
        fact("b", text="x" * 5_000_000),  # a fact's text is at most 20,000 characters
        deep(fact("c")),
        fact("d", text="y" * (MAX_LINE_BYTES + 10)),  # longer than any line may be
        fact("e", predicate="NOPE"),
        fact("f"),
    ])
    meta = enqueue_file(queue_settings, "facts", file, batch_size=10)
    status = job_store(queue_settings).status(meta.id)
    assert status is not None and meta.rows == 6
    in_process = {(line, e.field, e.message) for line, e in read_fact_lines(file) if isinstance(e, LineError)}
    assert {(e.line, e.field, e.message) for e in status.report.errors} == in_process
    assert {line for line, _, _ in in_process} == {2, 3, 4, 5}
    messages = redis.Redis.from_url(queue_settings.worker.broker_url).lrange(queue_settings.worker.queue, 0, -1)
    assert len(messages) == meta.batches >= 1
    assert max(len(m) for m in messages) < 20_000  # only the two valid lines travel


def test_a_job_that_fails_to_enqueue_is_failed_and_waiting_on_it_ends(env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "facts.parquet"
    broken.write_bytes(b"PAR1 not a parquet file PAR1")
    out = persona(env, "ingest-facts", str(broken), "--queue", "--json")
    assert out.returncode == 2 and "could not enqueue: job " in out.stderr, out.stderr[-2000:]
    job = out.stderr.split("could not enqueue: job ")[1].split(":")[0]
    listed = json.loads(persona(env, "jobs", "--json").stdout)
    assert [j["finished"] for j in listed if j["id"] == job] == [True]
    waited = persona(env, "jobs", job, "--wait", "--json", "--interval", "0.1", timeout=60)
    assert waited.returncode == 1, waited.stderr[-2000:]
    status = json.loads(waited.stdout)
    assert status["finished"] is True and "enqueuing stopped after 0 rows" in status["meta"]["failed"]
    assert "Parquet" in status["meta"]["failed"] or "parquet" in status["meta"]["failed"]
    assert f"job {job} failed" in " ".join(persona(env, "jobs", job, "--no-wait").stderr.split())


def bomb(levels: int) -> str:
    lines = ["id: bomb", "where:", "  all:", "    - any: &l0 [" + ", ".join(["{likes: {key: x}}"] * 9) + "]"]
    lines += [f"    - any: &l{i} [" + ", ".join([f"{{any: *l{i - 1}}}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("deep", "id: deep\nwhere: " + "{not: " * DEEP + "{likes: {key: x}}" + "}" * DEEP + "\n",
     "too deeply nested (more than 32 levels)"),
    ("bomb", bomb(9), "too large: more than 100,000 values (aliases expanded)"),
    ("clauses", "id: many\nwhere:\n  all:\n" + "    - likes: {key: x}\n" * 10_000,
     "where.all: 10,000 conditions: at most 200 in a definition"),
], ids=["3000-deep", "alias-bomb", "10000-clauses"])
def test_segment_apply_refuses_hostile_definitions(env: dict[str, str], tmp_path: Path, name: str, text: str,
                                                   message: str) -> None:
    file = tmp_path / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    out = persona(env, "segment", "apply", str(file), "--run")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert message in " ".join(out.stderr.split())
    assert json.loads(persona(env, "segment", "list", "--json").stdout) == []


def test_api_ingest_refuses_deep_bodies_and_deep_lines_fail_alone(store, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from engine.api import create_app
    from engine.config import ApiSettings

    api = settings.model_copy(update={"api": ApiSettings(token="t")})  # noqa: S106
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(api, store), base_url="http://localhost", raise_server_exceptions=False) as client:
        body = '{"facts": [' + "[" * DEEP + "]" * DEEP + "]}"
        resp = client.post("/ingest", content=body, headers=auth | {"content-type": "application/json"})
        assert resp.status_code == 400 and resp.json()["message"] == "body is not valid JSON: too deeply nested"
        ndjson = "\n".join([fact("a"), deep(fact("b")), fact("c")])
        resp = client.post("/ingest", content=ndjson, headers=auth | {"content-type": "application/x-ndjson"})
        assert resp.status_code == 200, resp.text
        facts = resp.json()["facts"]
        assert facts["facts_applied"] == 2 and facts["errors"] == [
            {"line": 2, "field": "record", "message": "too deeply nested (more than 32 levels)"}]
