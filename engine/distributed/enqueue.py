"""The producer side: an input file → batches on the queue → a job id.

Rows are read with the same reader as an in-process ingest (`engine.ingest.read_rows`) and cut
into the same windows an in-process run fuses together (`batch_size` valid items, counted with the
same validation); each window is split by a hash of the raw `user_id` into partitions, one
message per (window, partition). A user's facts are therefore fused in the same groups, in the same
order, and the rules run on them at the same points as in one in-process run with that batch
size — the rules' history (valid_to, supersede reasons, conflicts) depends on those groups, so
this is what makes both modes give the same graph.

A message carries the raw rows and their line numbers; the worker validates them again with the
same parsers. Rows that would yield nothing in-process — the reader could not decode them (bad
UTF-8, not JSON, too long, too deeply nested) or validation refuses them (a text over the limit, a
missing field) — are reported by the producer into the job with their line and never sent, so the
queue carries no more than an in-process run would keep. A job whose enqueuing fails midway is
marked failed (with the reason), so waiting on it ends once the batches already sent are done.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import Settings
from engine.distributed.app import TASK, broker_url, job_store, make_app
from engine.distributed.jobs import BatchOptions, BatchTask, JobMeta, JobStore, Kind, now_iso
from engine.distributed.partition import partition_of
from engine.ingest import LineError
from engine.ingest.events import event_from_dict
from engine.ingest.facts import fact_from_dict
from engine.ingest.records import records_from_dict
from engine.ingest.rows import Row, read_rows

if TYPE_CHECKING:
    from celery import Celery


class Producer:
    """Sends batch messages of one job (one broker connection for the whole file)."""

    def __init__(self, app: Celery, jobs: JobStore, queue: str) -> None:
        self.app, self.jobs, self.queue = app, jobs, queue

    def send(self, task: BatchTask, producer: Any) -> None:
        # recorded before it is sent: a worker fast enough to finish it first must not be overwritten
        self.jobs.queued(task.job_id, task.batch)
        self.app.send_task(TASK, kwargs={"msg": task.model_dump(mode="python")}, queue=self.queue,
                           producer=producer, retry=True)


class EnqueueError(RuntimeError):
    """Enqueuing stopped midway; the job is marked failed."""


def valid_items(kind: Kind, row: dict[str, Any], line: int, options: BatchOptions) -> tuple[int, list[LineError]]:
    """How many items an in-process run would batch from this row, and its errors when that is 0."""
    if kind == "facts":
        items: list[Any] = [fact_from_dict(row, line)]
    elif kind == "events":
        items = [event_from_dict(row, line)]
    else:
        items = records_from_dict(row, line, oversize=options.oversize)
    valid = sum(not isinstance(i, LineError) for i in items)
    return valid, [] if valid else [i for i in items if isinstance(i, LineError)]


def enqueue_rows(
    settings: Settings,
    kind: Kind,
    rows: Iterable[Row],
    *,
    source: str,
    batch_size: int,
    options: BatchOptions | None = None,
    app: Celery | None = None,
    progress: Callable[[int], None] | None = None,
) -> JobMeta:
    """Enqueue every row; returns the job (its id for `persona jobs`)."""
    broker = broker_url(settings)
    app = app or make_app(settings, broker)
    jobs = job_store(settings, app.conf.persona_state_url)
    w = settings.worker
    meta = JobMeta(id=uuid.uuid4().hex[:12], kind=kind, source=source, created=now_iso(), queue=w.queue,
                   partitions=w.partitions, batch_size=batch_size)
    jobs.create(meta)
    options = options or BatchOptions()
    sender = Producer(app, jobs, w.queue)
    pending: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    last_of: dict[int, int] = {}
    refused: list[LineError] = []  # lines reported by the producer, never sent
    bad_lines = 0
    in_window = 0  # valid items in the current window

    try:
        with app.producer_or_acquire() as producer:

            def flush(partition: int) -> None:
                task = BatchTask(job_id=meta.id, batch=meta.batches, kind=kind, partition=partition,
                                 after=last_of.get(partition), rows=pending.pop(partition), options=options)
                sender.send(task, producer)
                last_of[partition] = meta.batches
                meta.batches += 1

            for line, row in rows:
                meta.rows += 1
                if progress is not None:
                    progress(1)
                if isinstance(row, LineError):
                    refused.append(row)
                    bad_lines += 1
                    continue
                valid, errors = valid_items(kind, row, line, options)
                if not valid:  # reported here, never sent: a worker would only refuse it again
                    refused += errors
                    bad_lines += 1
                    continue
                part = partition_of(row.get("user_id"), w.partitions)
                pending.setdefault(part, []).append((line, row))
                in_window += valid
                if in_window >= batch_size:
                    for p in sorted(pending):
                        flush(p)
                    in_window = 0
            for p in sorted(pending):
                flush(p)
    except BaseException as exc:  # an interrupt too: nobody should wait on the job forever
        reason = f"enqueuing stopped after {meta.rows} rows and {meta.batches} batches: {type(exc).__name__}: {exc}"
        _record_failure(jobs, meta, kind, bad_lines, refused, reason)
        if not isinstance(exc, Exception):
            raise
        raise EnqueueError(f"job {meta.id}: {reason}") from exc
    if refused:
        jobs.reader_errors(meta.id, kind, bad_lines, refused)
    meta.enqueued = True
    jobs.save_meta(meta)
    return meta


def _record_failure(jobs: JobStore, meta: JobMeta, kind: Kind, bad_lines: int, errors: list[LineError],
                    reason: str) -> None:
    """Best effort: when the job store itself is what failed, the original error is what matters."""
    meta.failed = reason
    try:
        if errors:
            jobs.reader_errors(meta.id, kind, bad_lines, errors)
        jobs.save_meta(meta)
    except Exception:  # noqa: BLE001, S110 - the caller raises the error that stopped the enqueuing
        pass


def enqueue_file(
    settings: Settings, kind: Kind, path: Path, *, fmt: str | None = None, batch_size: int = 1000,
    options: BatchOptions | None = None, progress: Callable[[int], None] | None = None,
) -> JobMeta:
    return enqueue_rows(settings, kind, read_rows(path, fmt), source=str(path), batch_size=batch_size,
                        options=options, progress=progress)


def retry_dead(settings: Settings, job_id: str) -> list[int]:
    """Send a job's dead-lettered batches again (attempts start over); their numbers."""
    broker = broker_url(settings)
    app = make_app(settings, broker)
    jobs = job_store(settings, app.conf.persona_state_url)
    meta = jobs.meta(job_id)
    if meta is None:
        raise KeyError(job_id)
    sender = Producer(app, jobs, meta.queue)
    sent = []
    with app.producer_or_acquire() as producer:
        for task in sorted(jobs.dead_tasks(job_id), key=lambda t: t.batch):
            fresh = task.model_copy(update={"failures": 0, "after": None})  # its successors already ran
            jobs.requeue(fresh)
            sender.send(fresh, producer)
            sent.append(task.batch)
    return sent
