"""Scale-out ingest on Celery: many workers, one graph, nothing lost.

    app.py        the Celery app from Settings (broker, job records, at-least-once delivery)
    enqueue.py    producer: a file → per-user partitions → batch messages → a job id
    tasks.py      worker: one batch through `engine.pipeline`, retries, dead letters
    jobs.py       job records in Redis: batch states, reports (counted once), dead letters
    partition.py  user → partition hash, the per-partition lock
    recovery.py   every worker sends again the batches whose worker died (lock gone, still "running")

`persona worker`, `persona ingest* FILE --queue` and `persona jobs` (engine/cli/worker.py) call
`start_worker`, `enqueue_file`, `job_store(...).status` and `retry_dead`.
"""

from __future__ import annotations

import os
import socket

from engine.config import Settings
from engine.distributed.app import broker_url, job_records, job_store, make_app, state_url
from engine.distributed.enqueue import EnqueueError, enqueue_file, enqueue_rows, retry_dead
from engine.distributed.jobs import BatchOptions, BatchTask, JobMeta, JobStatus, JobStore
from engine.distributed.partition import partition_of
from engine.distributed.recovery import start_sweeper


def worker_argv(concurrency: int, queues: list[str], loglevel: str = "INFO", name: str | None = None) -> list[str]:
    """Arguments for `celery worker`: one process runs batches itself (solo pool, the extractor
    loaded once in it); more run a prefork pool whose children each load it once."""
    node = name or f"persona-{os.getpid()}@{socket.gethostname()}"
    argv = ["worker", f"--concurrency={concurrency}", f"--queues={','.join(queues)}", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle", f"--hostname={node}"]
    if concurrency == 1:
        argv.append("--pool=solo")
    return argv


def start_worker(settings: Settings, *, concurrency: int = 1, queues: list[str] | None = None,
                 loglevel: str = "INFO", name: str | None = None) -> None:
    """Run a Celery worker in this process until it is stopped (SIGTERM: finish the batch, exit);
    once it is ready, it also sweeps for batches whose worker died (in the main process)."""
    from celery.signals import worker_ready

    app = make_app(settings)

    @worker_ready.connect(weak=False)
    def _recover(**_: object) -> None:
        start_sweeper(app, job_store(settings, app.conf.persona_state_url), settings)

    app.worker_main(worker_argv(concurrency, queues or [settings.worker.queue], loglevel, name))


__all__ = [
    "BatchOptions",
    "BatchTask",
    "EnqueueError",
    "JobMeta",
    "JobStatus",
    "JobStore",
    "broker_url",
    "enqueue_file",
    "enqueue_rows",
    "job_records",
    "job_store",
    "make_app",
    "partition_of",
    "retry_dead",
    "start_worker",
    "state_url",
    "worker_argv",
]
