"""The recovery sweep (engine/distributed/recovery.py) against the real embedded Redis as broker and
job records: which in-flight batches it sends again, when, and only once. The sweeps are given
their clock (`now`), so nothing here waits for the confirmation time."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings, WorkerSettings
from engine.distributed import BatchTask, JobMeta, JobStore, job_store, make_app
from engine.distributed.jobs import INFLIGHT, BatchOutcome, inflight_field, now_iso
from engine.distributed.partition import PartitionLock
from engine.distributed.recovery import Sweeper
from engine.pipeline import IngestReport
from engine.store import ServerStatus

pytestmark = pytest.mark.integration
DB = 5  # a logical database of its own on the shared test server


@pytest.fixture
def settings(falkor_server: ServerStatus, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", worker=WorkerSettings(
        broker_url=f"redis://:{falkor_server.password}@127.0.0.1:{falkor_server.port}/{DB}",
        queue=f"q-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def jobs(settings: Settings) -> Iterator[JobStore]:
    store = job_store(settings)
    store.client.delete(INFLIGHT)
    yield store
    store.client.delete(INFLIGHT)


def new_job(jobs: JobStore, settings: Settings, batches: int) -> JobMeta:
    meta = JobMeta(id=uuid.uuid4().hex[:12], kind="facts", source="t", created=now_iso(), queue=settings.worker.queue,
                   partitions=16, batch_size=10, batches=batches, enqueued=True)
    jobs.create(meta)
    for b in range(batches):
        jobs.queued(meta.id, b)
    return meta


def start(jobs: JobStore, meta: JobMeta, batch: int, ttl_s: float) -> tuple[BatchTask, dict[str, Any], PartitionLock]:
    """What a worker does before it runs a batch: take the partition lock, record it running."""
    msg = BatchTask(job_id=meta.id, batch=batch, kind="facts", partition=batch,
                    rows=[(batch + 1, {"user_id": f"u{batch}"})]).model_dump(mode="json")
    task = BatchTask.model_validate(msg)
    lock = PartitionLock(jobs.client, task.partition, ttl_s, owner=inflight_field(meta.id, batch))
    assert lock.try_acquire()
    jobs.running(task, msg, "w@test", lock.token)
    return task, msg, lock


def queued_messages(jobs: JobStore, queue: str) -> list[dict[str, Any]]:
    """The `msg` argument of every message waiting in the broker's queue."""
    raw = jobs.client.lrange(queue, 0, -1)
    bodies = [json.loads(base64.b64decode(json.loads(r)["body"])) for r in raw]
    return [body[1]["msg"] for body in bodies]


def test_sends_again_only_a_running_batch_whose_lock_is_gone(jobs: JobStore, settings: Settings) -> None:
    meta = new_job(jobs, settings, 3)
    _, _, alive = start(jobs, meta, 0, ttl_s=20)
    _, lost_msg, _ = start(jobs, meta, 1, ttl_s=0.05)  # its holder stops renewing: the lock expires
    task2, _, lock2 = start(jobs, meta, 2, ttl_s=20)
    jobs.complete(meta.id, 2, BatchOutcome(report=IngestReport(kind="facts")), set(), set())
    lock2.release()
    time.sleep(0.2)
    sweeper = Sweeper(make_app(settings), jobs, settings)
    confirm = settings.worker.lock_ttl_s / 2
    assert sweeper.sweep(now=100.0) == []  # first seen without its lock: not yet
    assert sweeper.sweep(now=100.0 + confirm - 0.1) == []
    assert sweeper.sweep(now=100.0 + confirm) == [inflight_field(meta.id, 1)]
    assert queued_messages(jobs, meta.queue) == [lost_msg]
    assert jobs.state(meta.id, 1) == "queued" and jobs.state(meta.id, 0) == "running"
    assert set(jobs.inflight()) == {inflight_field(meta.id, 0), inflight_field(meta.id, 1)}  # done: gone
    assert sweeper.sweep(now=1000.0) == []  # sent once: the copy is on its way
    assert len(queued_messages(jobs, meta.queue)) == 1
    alive.release()
    jobs.client.delete(meta.queue)


def test_two_sweepers_send_a_lost_batch_once(jobs: JobStore, settings: Settings) -> None:
    meta = new_job(jobs, settings, 1)
    start(jobs, meta, 0, ttl_s=0.05)
    time.sleep(0.2)
    app = make_app(settings)
    first, second = Sweeper(app, jobs, settings), Sweeper(app, jobs, settings)
    for sweeper in (first, second):
        assert sweeper.orphans(0.0) == []
    found = [first.orphans(100.0), second.orphans(100.0)]
    assert found[0] == found[1] != []  # both judge it lost...
    assert first.sweep(now=100.0) == [inflight_field(meta.id, 0)]
    assert second.sweep(now=100.0) == []  # ...one sends it
    assert len(queued_messages(jobs, meta.queue)) == 1
    jobs.client.delete(meta.queue)


def test_a_runner_that_finishes_after_being_given_up_keeps_its_result(jobs: JobStore, settings: Settings) -> None:
    """A runner cut off longer than its lock lives is given up; when it finishes, its record stands
    and the copy finds the batch done."""
    meta = new_job(jobs, settings, 1)
    start(jobs, meta, 0, ttl_s=0.05)
    time.sleep(0.2)
    sweeper = Sweeper(make_app(settings), jobs, settings)
    sweeper.sweep(now=0.0)
    assert sweeper.sweep(now=100.0) == [inflight_field(meta.id, 0)]
    assert jobs.complete(meta.id, 0, BatchOutcome(report=IngestReport(kind="facts", applied=1)), {"u0"}, set())
    assert jobs.finished(meta.id, 0) and jobs.inflight() == {}
    jobs.client.delete(meta.queue)


def test_entries_of_finished_or_expired_jobs_are_dropped(jobs: JobStore, settings: Settings) -> None:
    meta = new_job(jobs, settings, 1)
    msg = BatchTask(job_id="gone", batch=0, kind="facts", partition=0, rows=[]).model_dump(mode="python")
    jobs.client.hset(INFLIGHT, inflight_field("gone", 0), json.dumps({"msg": msg, "token": "x"}))
    jobs.client.hset(jobs.key(meta.id, "state"), "0", "done")
    jobs.client.hset(INFLIGHT, inflight_field(meta.id, 0),
                     json.dumps({"msg": {**msg, "job_id": meta.id}, "token": "y"}))
    assert Sweeper(make_app(settings), jobs, settings).sweep(now=0.0) == []
    assert jobs.inflight() == {}


def test_a_holder_back_from_an_outage_takes_its_lock_again(jobs: JobStore) -> None:
    lock = PartitionLock(jobs.client, 9, ttl_s=0.3, owner="job:0")
    assert lock.try_acquire()
    with lock.renewing():
        jobs.client.delete(lock.key)  # expired while Redis was away
        deadline = time.monotonic() + 5
        while not lock.held() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock.held()
        other = PartitionLock(jobs.client, 9, ttl_s=0.3, owner="job:1")
        assert not other.try_acquire()
    assert jobs.client.get(lock.key) is None  # released at the end

