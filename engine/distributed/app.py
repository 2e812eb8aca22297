"""The Celery app, built from Settings: broker, job records, delivery guarantees.

Delivery is at-least-once: a message is acknowledged only after its batch finished (`acks_late`),
a worker process that dies mid-batch puts its message back (`reject_on_worker_lost`), and a
worker that vanishes altogether (kill -9, machine lost) leaves the message unacknowledged in the
broker, where another worker restores it after `visibility_timeout_s`. Each worker takes one
message at a time (prefetch 1), so a dead worker strands at most one batch per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlparse

import redis

from engine.config import Settings
from engine.distributed.jobs import JobStore

if TYPE_CHECKING:
    from celery import Celery

TASK = "persona.ingest_batch"
EMBEDDED_BROKER_DB = 1  # the graph lives in database 0 of the embedded Redis


def embedded_redis_url(settings: Settings) -> str:
    """Database 1 of the embedded Redis under the persona home (started or reused here)."""
    from engine.store import EmbeddedFalkorDB, StoreError

    status = EmbeddedFalkorDB(settings.home, settings.db).start(stall_timeout_s=settings.db.start_stall_s)
    if not status.running or status.port is None:
        raise StoreError("the embedded FalkorDB is not running; start it with `persona db start`")
    return f"redis://:{quote(status.password or '', safe='')}@127.0.0.1:{status.port}/{EMBEDDED_BROKER_DB}"


def _is_redis(url: str) -> bool:
    return urlparse(url).scheme in {"redis", "rediss", "unix"}


def broker_url(settings: Settings) -> str:
    return settings.worker.broker_url or embedded_redis_url(settings)


def state_url(settings: Settings, broker: str | None = None) -> str:
    """Where job records live: the result backend, else the broker if it is a Redis, else embedded."""
    if settings.worker.result_backend:
        if not _is_redis(settings.worker.result_backend):
            raise ValueError(f"PERSONA_RESULT_BACKEND={settings.worker.result_backend!r}: job records need a Redis")
        return settings.worker.result_backend
    broker = broker or broker_url(settings)
    return broker if _is_redis(broker) else embedded_redis_url(settings)


def job_store(settings: Settings, url: str | None = None) -> JobStore:
    client = redis.Redis.from_url(url or state_url(settings), socket_timeout=30, socket_connect_timeout=5,
                                  health_check_interval=10)
    return JobStore(client, ttl_s=settings.worker.job_ttl_days * 86400)


def job_records(settings: Settings) -> JobStore | None:
    """The job store queued ingests may have written for this home, or None when there cannot be
    one without starting a server (a Neo4j graph and no broker configured)."""
    if settings.worker.broker_url or settings.worker.result_backend or settings.graph_uri == "embedded":
        return job_store(settings)
    return None


def make_app(settings: Settings, broker: str | None = None) -> Celery:
    """A Celery app for `settings`; the ingest task is registered on it."""
    from celery import Celery

    from engine.distributed import tasks

    broker = broker or broker_url(settings)
    backend = state_url(settings, broker)
    w = settings.worker
    app = Celery("persona", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # progress lives in the job records, not in Celery results
        task_default_queue=w.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart is waited out, never fatal
        broker_transport_options={
            "visibility_timeout": w.visibility_timeout_s,
            "unacked_restore_interval": w.restore_interval_s,
            "unacked_restore_throttle": 1,
            # the sweep's mutex: kombu keeps it 300 s, so a worker killed during a sweep would stop
            # every redelivery for five minutes; a sweep takes milliseconds
            "unacked_mutex_expire": max(5, int(w.restore_interval_s * 4)),
            "socket_connect_timeout": 5,
        },
        result_backend_transport_options={"visibility_timeout": w.visibility_timeout_s},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 20, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 3},
    )
    tasks.register(app, settings, backend)
    return app
