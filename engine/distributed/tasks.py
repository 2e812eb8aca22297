"""The worker side: one task runs one batch through the same `engine.pipeline` entry point as an
in-process ingest, after validating its raw rows with the same readers.

Per delivery: skip a batch that already finished (a redelivery), wait for the previous batch of
its partition in the same job (per-user order), take the partition lock (no two workers fuse one
user at once), run the pipeline, record the report once. Waiting backs off (0.5 s doubling up to
8 s), so a partition stuck behind a lost batch does not spin. A failure retries with exponential
backoff; after `max_retries` the batch is dead-lettered with its reason. When the job records
themselves cannot be reached (the broker Redis restarting), the message is neither acknowledged
nor lost: it is rejected back to the queue, or stays unacknowledged; either way the batch is still
"running" in the in-flight registry without its lock, and recovery.py sends it again.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import redis

from engine.config import Settings
from engine.distributed.jobs import BatchOutcome, BatchTask, JobStore, inflight_field, now_iso
from engine.distributed.partition import PartitionLock
from engine.ingest import LineError
from engine.ingest.events import event_from_dict
from engine.ingest.facts import fact_from_dict
from engine.ingest.records import records_from_dict
from engine.ingest.rows import validated
from engine.pipeline import IngestReport, ingest_events, ingest_facts, ingest_records

if TYPE_CHECKING:
    from celery import Celery, Task

    from engine.store import GraphStore

log = logging.getLogger("persona.worker")
# A batch whose partition is busy or whose predecessor runs comes back after WAIT_S, doubling with
# each wait in a row up to WAIT_MAX_S.
WAIT_S = 0.5
WAIT_MAX_S = 8.0
# Extraction errors that mean "the LLM server is away", not "this document is bad".
_UNREACHABLE = ("BackendError", "ConnectionError", "APIConnectionError", "Timeout", "ConnectError")


class _Process:
    """What one worker process loads once: the store connection, extractors, the job records."""

    def __init__(self) -> None:
        self.store: GraphStore | None = None
        self.extractors: dict[str, Any] = {}
        self.jobs: JobStore | None = None

    def reset(self) -> None:
        """After a fork: connections are not shared with the parent."""
        self.store, self.jobs = None, None

    def graph(self, settings: Settings) -> GraphStore:
        if self.store is None:
            from engine.store import open_store

            self.store = open_store(settings)
        return self.store

    def drop_graph(self) -> None:
        """A failed batch may have left the connection broken: reconnect next time."""
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001, S110 - it is being thrown away
                pass
        self.store = None

    def extractor(self, settings: Settings, tier: str | None) -> Any:
        """The extractor of a tier, loaded once per process (the encoder weights are ~0.5 GB)."""
        name = (tier or settings.extractor).strip().lower()
        if name not in self.extractors:
            from engine.extract import make_tier

            self.extractors[name] = make_tier(name, settings.llm, allow_sensitive=settings.allow_sensitive,
                                              model_cache=settings.model_cache)
        return self.extractors[name]


PROCESS = _Process()


def wait_countdown(waits: int) -> float:
    return min(WAIT_S * 2 ** min(waits, 16), WAIT_MAX_S)


def backoff(settings: Settings, failures: int) -> float:
    w = settings.worker
    return min(w.retry_backoff_s * 2 ** (failures - 1), w.retry_backoff_max_s)


def _good(items: list[tuple[int | None, Any]], report: IngestReport) -> list[Any]:
    """Valid items of lines that did not fail later (linking, a rejected document)."""
    bad = {e.line for e in report.errors if e.fatal}
    return [item for line, item in items if not isinstance(item, LineError) and line not in bad]


def process_batch(settings: Settings, task: BatchTask, jobs: JobStore) -> tuple[IngestReport, set[str], set[str]]:
    """Validate the raw rows exactly as an in-process ingest does, run the pipeline; the report,
    and the distinct users and documents it took in."""
    rows = [(line, row) for line, row in task.rows]
    size = max(len(rows), 1)
    if task.kind == "facts":
        items = list(validated(rows, fact_from_dict))
        report = ingest_facts(PROCESS.graph(settings), settings, items, batch=size)
        rejected = {e.doc_id for e in report.errors if e.field == "doc_id"}
        facts = [f for _, f in items if not isinstance(f, LineError)]
        return (report, {f.user_id for f in _good(items, report)},
                {f.doc_id for f in facts if f.doc_id not in rejected})
    if task.kind == "events":
        items = list(validated(rows, event_from_dict))
        report = ingest_events(PROCESS.graph(settings), settings, items, batch=size)
        return report, {e.user_id for e in _good(items, report)}, set()
    records = [(line, r) for line, row in rows for r in records_from_dict(row, line, oversize=task.options.oversize)]
    extractor = PROCESS.extractor(settings, task.options.extractor)
    users: set[str] = set()
    docs: set[str] = set()

    def on_document(doc: Any) -> None:
        if doc.status == "ok":
            users.add(doc.user_id)
            docs.add(doc.doc_id)

    cache = None
    if task.options.cache:
        from engine.extract import ExtractionCache

        cache = ExtractionCache(settings.extraction_cache_path)
    try:
        report = ingest_records(PROCESS.graph(settings), settings, records, extractor=extractor, cache=cache,
                                batch=size, on_document=on_document, deduper=jobs.deduper(task.job_id, task.batch))
    finally:
        if cache is not None:
            cache.close()
    failed = [e.message for e in report.errors if e.field == "text" and e.message.startswith("extraction failed")]
    attempted = report.docs.get("ok", 0) + report.docs.get("failed", 0)
    if failed and len(failed) == attempted and all(any(n in m for n in _UNREACHABLE) for m in failed):
        # every document failed because the model server is away: a transient error, retry the batch
        raise ConnectionError(f"LLM unreachable for all {attempted} documents: {failed[0]}")
    return report, users, docs


def run(task_self: Task, settings: Settings, msg: dict[str, Any]) -> str:
    """One delivery of one batch (see the module docstring)."""
    from celery.exceptions import Reject, Retry

    task = BatchTask.model_validate(msg)
    worker = task_self.request.hostname or socket.gethostname()
    if PROCESS.jobs is None:
        from engine.distributed.app import job_store

        PROCESS.jobs = job_store(settings, task_self.app.conf.persona_state_url)
    jobs = PROCESS.jobs

    def wait() -> Retry:
        return task_self.retry(kwargs={"msg": {**msg, "waits": task.waits + 1}},
                               countdown=wait_countdown(task.waits), max_retries=None)

    lock = PartitionLock(jobs.client, task.partition, settings.worker.lock_ttl_s,
                         owner=inflight_field(task.job_id, task.batch))
    try:
        if jobs.finished(task.job_id, task.batch):
            return "already finished"  # delivered again after it finished: nothing to do
        if task.after is not None and not jobs.finished(task.job_id, task.after):
            raise wait()
        if not lock.try_acquire():
            raise wait()
    except Retry:
        raise
    except (redis.RedisError, OSError) as exc:
        log.warning("job records unreachable (%s): batch %s back to the queue", exc, task.batch)
        raise Reject(str(exc), requeue=True) from exc
    with lock.renewing():
        try:
            if jobs.finished(task.job_id, task.batch):  # finished while we waited for the lock
                return "already finished"
            jobs.running(task, {**msg, "waits": 0}, worker, lock.token)
        except (redis.RedisError, OSError) as exc:
            raise Reject(str(exc), requeue=True) from exc
        started = time.time()
        try:
            report, users, docs = process_batch(settings, task, jobs)
        except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
            return _failed(task_self, settings, jobs, task, msg, exc, worker)
        outcome = BatchOutcome(report=report, worker=worker, attempts=task.failures + 1, finished=now_iso(),
                               partition=task.partition, started_at=started, ended_at=time.time())
        try:
            jobs.complete(task.job_id, task.batch, outcome, users, docs)
        except (redis.RedisError, OSError) as exc:
            # the graph has the batch, the record of it is missing: run it again (idempotent)
            raise Reject(str(exc), requeue=True) from exc
    return "done"


def _failed(task_self: Task, settings: Settings, jobs: JobStore, task: BatchTask, msg: dict[str, Any],
            exc: Exception, worker: str) -> str:
    from celery.exceptions import Reject, Retry

    PROCESS.drop_graph()
    failures = task.failures + 1
    reason = f"{type(exc).__name__}: {exc}"
    log.warning("batch %s of job %s failed (attempt %d): %s", task.batch, task.job_id, failures, reason)
    try:
        if failures > settings.worker.max_retries:
            jobs.dead_letter(task.model_copy(update={"failures": failures}), reason, worker)
            return "dead"
        jobs.mark(task.job_id, task.batch, "retrying", reason)
        raise task_self.retry(kwargs={"msg": {**msg, "failures": failures}}, countdown=backoff(settings, failures),
                              max_retries=None)
    except Retry:
        raise
    except Exception as publish_error:  # noqa: BLE001 - broker or job records away: keep the message
        raise Reject(str(publish_error), requeue=True) from exc


def register(app: Celery, settings: Settings, state: str) -> None:
    """The ingest task on `app`; worker processes reset their connections after a fork."""
    from celery.signals import worker_process_init

    app.conf.persona_state_url = state

    @app.task(name="persona.ingest_batch", bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=None)
    def ingest_batch(self: Task, msg: dict[str, Any]) -> str:
        return run(self, settings, msg)

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        PROCESS.reset()
