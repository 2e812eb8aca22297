"""A batch whose worker died is sent again within a minute, not after the broker's visibility timeout.

What already says a runner is gone: its batch is "running" in the job record, and the partition
lock it ran under (renewed every third of `lock_ttl_s` while it runs, its value naming the batch)
no longer holds that delivery's token. The in-flight registry (jobs.py, `persona:inflight`) keeps
each running batch's message and token. Every worker process sweeps it every
`recover_interval_s`; a batch found without its lock on sweeps at least half a lock lifetime apart
(a runner back from a short Redis outage takes its lock again within a third of it) is claimed by
one sweeper (compare-and-set on the entry and the state), set back to `queued` and sent again.

The copy runs like any delivery: it takes the partition lock and runs the batch again, which
changes nothing twice (as after a broker redelivery; the kill -9 tests check it); a later copy, such as the
broker's own redelivery once `visibility_timeout_s` passes, finds the batch done and is dropped.
The visibility timeout therefore stays long: it only has to outlast the slowest batch.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from engine.config import Settings
from engine.distributed.app import TASK
from engine.distributed.jobs import FINISHED, InFlight, JobStore, split_field
from engine.distributed.partition import lock_key

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("persona.recovery")


class Sweeper:
    """Finds running batches whose lock is gone and sends them again (one per worker process)."""

    def __init__(self, app: Celery, jobs: JobStore, settings: Settings) -> None:
        self.app, self.jobs = app, jobs
        self.confirm_s = settings.worker.lock_ttl_s / 2
        self.suspects: dict[str, float] = {}  # field → when first seen without its lock (monotonic)

    def orphans(self, now: float) -> list[tuple[str, bytes]]:
        """Entries whose runner is gone, confirmed over `confirm_s`; finished ones are cleared."""
        entries = self.jobs.inflight()
        if not entries:
            self.suspects.clear()
            return []
        parsed = {field: InFlight.model_validate_json(raw) for field, raw in entries.items()}
        pipe = self.jobs.client.pipeline()
        for field, entry in parsed.items():
            job_id, batch = split_field(field)
            pipe.hget(self.jobs.key(job_id, "state"), str(batch))
            pipe.get(lock_key(int(entry.msg["partition"])))
        answers = pipe.execute()
        found: list[tuple[str, bytes]] = []
        for i, (field, entry) in enumerate(parsed.items()):
            state, holder = answers[2 * i], answers[2 * i + 1]
            if state is None or state.decode() in FINISHED:
                self.jobs.drop_inflight(field)  # job expired, or finished by a copy that lost its record
                continue
            if state != b"running" or entry.token is None or holder == entry.token.encode():
                self.suspects.pop(field, None)
                continue
            first = self.suspects.setdefault(field, now)
            if now - first >= self.confirm_s:
                found.append((field, entries[field]))
        self.suspects = {f: t for f, t in self.suspects.items() if f in parsed}
        return found

    def sweep(self, now: float | None = None) -> list[str]:
        """One pass; the batches sent again (`job:batch`)."""
        sent = []
        for field, raw in self.orphans(time.monotonic() if now is None else now):
            entry = InFlight.model_validate_json(raw)
            meta = self.jobs.meta(entry.msg["job_id"])
            if meta is None or not self.jobs.take_over(field, raw):
                continue  # another sweeper took it, or its runner finished meanwhile
            self.app.send_task(TASK, kwargs={"msg": entry.msg}, queue=meta.queue, retry=True)
            self.suspects.pop(field, None)
            sent.append(field)
            log.warning("batch %s of job %s lost its worker (lock expired while running): sent again",
                        split_field(field)[1], meta.id)
        return sent


def run_forever(sweeper: Sweeper, interval_s: float, stop: threading.Event) -> None:
    while not stop.wait(interval_s):
        try:
            sweeper.sweep()
        except Exception as exc:  # noqa: BLE001 - broker away, a bad entry: the thread must live on
            log.warning("recovery sweep skipped: %s: %s", type(exc).__name__, exc)


def start_sweeper(app: Celery, jobs: JobStore, settings: Settings) -> threading.Event:
    """A daemon thread sweeping every `recover_interval_s`; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(Sweeper(app, jobs, settings),
                                                        settings.worker.recover_interval_s, stop),
                              name="persona-recovery", daemon=True)
    thread.start()
    return stop
