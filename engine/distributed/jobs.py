"""Job records in Redis: what was enqueued, each batch's state and report, dead letters.

A job is one input file sent with `--queue`. Its batches are numbered; each has a state
(queued → running → done, or retrying → … → dead) and, once done, exactly one report: the first
finished delivery writes it (HSETNX), so a batch delivered twice is counted once. Distinct users
and documents are Redis sets (SADD is idempotent under redelivery too). Dead letters keep the
reason and the whole batch message, so `persona jobs retry` can send it again.

Keys (all under `persona:job:<id>:`, expiring `job_ttl_days` after the last write):
meta (hash), state / outcome / dead / error (hashes by batch), users / docs (sets), seen (dedupe).
Besides, `persona:inflight` (hash, `<job>:<batch>` → the message and the partition-lock token of
the delivery running it) holds the running batches, so one whose runner died can be sent again
(recovery.py); a batch leaves it when it finishes or stops running.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from kombu.utils.json import dumps as kdumps
from kombu.utils.json import loads as kloads
from pydantic import BaseModel, Field

from engine.ingest import LineError
from engine.ingest.records import Deduper, content_doc_id
from engine.pipeline import IngestReport

Kind = Literal["records", "facts", "events"]
BatchState = Literal["queued", "running", "retrying", "done", "dead"]
FINISHED = ("done", "dead")
JOBS_INDEX = "persona:jobs"
INFLIGHT = "persona:inflight"
READER = "reader"  # the outcome slot of lines the producer could not even decode


class BatchOptions(BaseModel):
    """How the worker reads and processes rows (the producer's command-line choices)."""

    oversize: str = "chunk"
    extractor: str | None = None  # records: tier; None = the worker's PERSONA_EXTRACTOR
    cache: bool = True  # records: reuse cached extractions


class BatchTask(BaseModel):
    """One task message: raw rows with their line numbers; the worker validates them itself."""

    job_id: str
    batch: int
    kind: Kind
    partition: int
    # The previous batch of the same partition in this job: it must finish first (per-user order).
    after: int | None = None
    rows: list[tuple[int, dict[str, Any]]]
    options: BatchOptions = Field(default_factory=BatchOptions)
    failures: int = 0  # failed attempts so far (transient errors)
    waits: int = 0  # deliveries in a row that found the partition busy or the previous batch unfinished


class BatchOutcome(BaseModel):
    report: IngestReport
    worker: str = ""
    attempts: int = 1
    finished: str = ""
    partition: int | None = None
    # wall-clock span of the pipeline run (epoch seconds): lets anyone check that no two batches
    # of one partition ever overlapped
    started_at: float | None = None
    ended_at: float | None = None


class InFlight(BaseModel):
    """A running batch in the in-flight registry: what to send again if its runner dies."""

    msg: dict[str, Any]
    # the partition-lock token of the delivery running it; None once recovery sent it again
    token: str | None = None


class DeadLetter(BaseModel):
    batch: int
    reason: str
    attempts: int
    at: str
    worker: str = ""


class JobMeta(BaseModel):
    id: str
    kind: Kind
    source: str
    created: str
    queue: str
    partitions: int
    batch_size: int
    batches: int = 0
    rows: int = 0
    enqueued: bool = False  # every batch is on the queue
    failed: str | None = None  # enqueuing stopped midway: why (the batches sent before still run)


class JobStatus(BaseModel):
    """What `persona jobs ID` shows."""

    meta: JobMeta
    states: dict[str, int]
    report: IngestReport  # the sum of every finished batch (users and documents distinct)
    dead: list[DeadLetter] = Field(default_factory=list)
    retrying: dict[int, str] = Field(default_factory=dict)  # batch → last error
    finished: bool = False
    started: float | None = None
    last_done: float | None = None

    @property
    def batches_finished(self) -> int:
        return sum(self.states.get(s, 0) for s in FINISHED)

    @property
    def lines_per_second(self) -> float | None:
        if self.started is None or self.last_done is None or self.last_done <= self.started:
            return None
        return self.report.lines / (self.last_done - self.started)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def merge_reports(kind: Kind, reports: list[IngestReport], users: int, documents: int) -> IngestReport:
    """Batch reports → one job report, summed the way one in-process run counts."""
    total = IngestReport(kind=kind)
    conflicts: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for r in reports:
        for name in ("lines", "accepted", "applied", "edges_written", "warnings", "facts_extracted", "llm_calls",
                     "prompt_tokens", "completion_tokens", "cached"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.seconds += r.seconds
        total.errors += r.errors
        conflicts.update(r.conflicts)
        docs.update(r.docs)
        dropped.update(r.facts_dropped)
    total.conflicts, total.docs, total.facts_dropped = dict(conflicts), dict(docs), dict(dropped)
    total.errors.sort(key=lambda e: (e.line is None, e.line or 0))
    total.users, total.documents = users, documents
    total.seconds = round(total.seconds, 3)
    return total


class JobStore:
    """Job records on one Redis (the result backend)."""

    def __init__(self, client: redis.Redis, ttl_s: float = 14 * 86400) -> None:
        self.client = client
        self.ttl_s = int(ttl_s)

    @staticmethod
    def key(job_id: str, part: str) -> str:
        return f"persona:job:{job_id}:{part}"

    def _keys(self, job_id: str) -> list[str]:
        return [self.key(job_id, p) for p in ("meta", "state", "outcome", "dead", "error", "runner", "users", "docs",
                                                   "seen")]

    def _touch(self, pipe: Any, job_id: str) -> None:
        for k in self._keys(job_id):
            pipe.expire(k, self.ttl_s)

    # --- producer side ---------------------------------------------------------------------

    def create(self, meta: JobMeta) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.key(meta.id, "meta"), mapping={"json": meta.model_dump_json()})
        pipe.zadd(JOBS_INDEX, {meta.id: time.time()})
        self._touch(pipe, meta.id)
        pipe.execute()

    def save_meta(self, meta: JobMeta) -> None:
        self.client.hset(self.key(meta.id, "meta"), "json", meta.model_dump_json())

    def queued(self, job_id: str, batch: int) -> None:
        self.client.hset(self.key(job_id, "state"), str(batch), "queued")

    def reader_errors(self, job_id: str, kind: Kind, lines: int, errors: list[LineError]) -> None:
        """Lines the producer refused (undecodable, or invalid as in-process): they never reach a worker."""
        report = IngestReport(kind=kind, lines=lines, errors=errors)
        outcome = BatchOutcome(report=report, worker="producer", finished=now_iso())
        self.client.hset(self.key(job_id, "outcome"), READER, outcome.model_dump_json())

    # --- worker side -----------------------------------------------------------------------

    def state(self, job_id: str, batch: int) -> str | None:
        raw = self.client.hget(self.key(job_id, "state"), str(batch))
        return raw.decode() if raw else None

    def running(self, task: BatchTask, msg: dict[str, Any], worker: str, token: str) -> None:
        """The batch runs under the partition lock `token`; kept in flight until it stops running."""
        pipe = self.client.pipeline()
        pipe.hset(INFLIGHT, inflight_field(task.job_id, task.batch), InFlight(msg=msg, token=token).model_dump_json())
        self._mark(pipe, task.job_id, task.batch, "running", None, worker)
        pipe.execute()

    def mark(self, job_id: str, batch: int, state: BatchState, error: str | None = None) -> None:
        pipe = self.client.pipeline()
        pipe.hdel(INFLIGHT, inflight_field(job_id, batch))
        self._mark(pipe, job_id, batch, state, error, None)
        pipe.execute()

    def _mark(self, pipe: Any, job_id: str, batch: int, state: BatchState, error: str | None,
              worker: str | None) -> None:
        pipe.hset(self.key(job_id, "state"), str(batch), state)
        if worker is not None:
            pipe.hset(self.key(job_id, "runner"), str(batch), worker)
        if error is not None:
            pipe.hset(self.key(job_id, "error"), str(batch), error[:2000])
        if state == "running":
            pipe.hsetnx(self.key(job_id, "meta"), "started", repr(time.time()))

    def complete(self, job_id: str, batch: int, outcome: BatchOutcome, users: set[str], docs: set[str]) -> bool:
        """Record a finished batch; False when another delivery of it had already finished."""
        pipe = self.client.pipeline()
        pipe.hsetnx(self.key(job_id, "outcome"), str(batch), outcome.model_dump_json())
        if users:
            pipe.sadd(self.key(job_id, "users"), *users)
        if docs:
            pipe.sadd(self.key(job_id, "docs"), *docs)
        pipe.hset(self.key(job_id, "state"), str(batch), "done")
        pipe.hdel(INFLIGHT, inflight_field(job_id, batch))
        pipe.hdel(self.key(job_id, "error"), str(batch))
        pipe.hset(self.key(job_id, "meta"), "last_done", repr(time.time()))
        self._touch(pipe, job_id)
        return bool(pipe.execute()[0])

    def dead_letter(self, task: BatchTask, reason: str, worker: str) -> None:
        letter = DeadLetter(batch=task.batch, reason=reason[:2000], attempts=task.failures, at=now_iso(),
                            worker=worker)
        pipe = self.client.pipeline()
        pipe.hset(self.key(task.job_id, "dead"), str(task.batch),
                  kdumps({"letter": letter.model_dump(), "task": task.model_dump(mode="python")}))
        pipe.hset(self.key(task.job_id, "state"), str(task.batch), "dead")
        pipe.hdel(INFLIGHT, inflight_field(task.job_id, task.batch))
        pipe.hset(self.key(task.job_id, "meta"), "last_done", repr(time.time()))
        self._touch(pipe, task.job_id)
        pipe.execute()

    def finished(self, job_id: str, batch: int) -> bool:
        """The batch is done or dead (and no longer in flight)."""
        if self.state(job_id, batch) not in FINISHED:
            return False
        self.client.hdel(INFLIGHT, inflight_field(job_id, batch))
        return True

    # --- recovery --------------------------------------------------------------------------

    def inflight(self) -> dict[str, bytes]:
        """The registry as stored (`InFlight` JSON by field): take_over compares these bytes."""
        return {k.decode(): v for k, v in self.client.hgetall(INFLIGHT).items()}

    def take_over(self, field: str, seen: bytes) -> bool:
        """Claim a batch whose runner died, once across every sweeper: only if its entry is still
        `seen` and it is still running, it goes back to `queued` and out of the lock check."""
        job_id, batch = split_field(field)
        resent = InFlight(msg=InFlight.model_validate_json(seen).msg).model_dump_json()
        return bool(self.client.eval(_TAKE_OVER, 2, INFLIGHT, self.key(job_id, "state"), field, str(batch),
                                     seen, resent))

    def drop_inflight(self, field: str) -> None:
        self.client.hdel(INFLIGHT, field)

    def deduper(self, job_id: str, batch: int) -> JobDeduper:
        return JobDeduper(self.client, self.key(job_id, "seen"), str(batch))

    # --- forget ----------------------------------------------------------------------------

    def forget_user(self, user_id: str, doc_ids: Sequence[str], texts: Sequence[str] = ()) -> int:
        """Take a forgotten user out of every job record: the users / docs sets, the dedupe claims
        of its documents, and its rows in dead letters. Returns how many records changed."""
        changed = 0
        claims = [f"id:{d}" for d in doc_ids] + [f"c:{content_doc_id(user_id, t)}" for t in texts]
        for users_key in self.client.scan_iter(match=self.key("*", "users"), count=1000):
            job_id = users_key.decode().removeprefix("persona:job:").removesuffix(":users")
            pipe = self.client.pipeline()
            pipe.srem(users_key, user_id)
            if doc_ids:
                pipe.srem(self.key(job_id, "docs"), *doc_ids)
            if claims:
                pipe.hdel(self.key(job_id, "seen"), *claims)
            changed += sum(1 for n in pipe.execute() if n)
            changed += self._forget_dead_rows(job_id, user_id)
        return changed

    def _forget_dead_rows(self, job_id: str, user_id: str) -> int:
        changed = 0
        for batch, raw in self.client.hgetall(self.key(job_id, "dead")).items():
            letter = kloads(raw)
            rows = letter["task"]["rows"]
            kept = [r for r in rows if not (isinstance(r[1], dict) and r[1].get("user_id") == user_id)]
            if len(kept) != len(rows):
                letter["task"]["rows"] = kept
                self.client.hset(self.key(job_id, "dead"), batch, kdumps(letter))
                changed += 1
        return changed

    # --- reading ---------------------------------------------------------------------------

    def meta(self, job_id: str) -> JobMeta | None:
        raw = self.client.hget(self.key(job_id, "meta"), "json")
        return JobMeta.model_validate_json(raw) if raw else None

    def list(self, limit: int = 50) -> list[JobMeta]:
        ids = [i.decode() for i in self.client.zrevrange(JOBS_INDEX, 0, limit - 1)]
        metas = [self.meta(i) for i in ids]
        return [m for m in metas if m is not None]

    def runners(self, job_id: str) -> dict[int, str]:
        """The worker that last started each batch."""
        return {int(k): v.decode() for k, v in self.client.hgetall(self.key(job_id, "runner")).items()}

    def outcomes(self, job_id: str) -> dict[int, BatchOutcome]:
        raw = self.client.hgetall(self.key(job_id, "outcome"))
        return {int(k): BatchOutcome.model_validate_json(v) for k, v in raw.items() if k != READER.encode()}

    def dead_tasks(self, job_id: str) -> list[BatchTask]:
        raw = self.client.hgetall(self.key(job_id, "dead"))
        return [BatchTask.model_validate(kloads(v)["task"]) for v in raw.values()]

    def requeue(self, task: BatchTask) -> None:
        """A dead batch goes back to `queued` (before it is sent again)."""
        pipe = self.client.pipeline()
        pipe.hdel(self.key(task.job_id, "dead"), str(task.batch))
        pipe.hdel(self.key(task.job_id, "error"), str(task.batch))
        pipe.hset(self.key(task.job_id, "state"), str(task.batch), "queued")
        pipe.execute()

    def status(self, job_id: str) -> JobStatus | None:
        meta = self.meta(job_id)
        if meta is None:
            return None
        pipe = self.client.pipeline()
        pipe.hgetall(self.key(job_id, "state"))
        pipe.hvals(self.key(job_id, "outcome"))
        pipe.hvals(self.key(job_id, "dead"))
        pipe.hgetall(self.key(job_id, "error"))
        pipe.scard(self.key(job_id, "users"))
        pipe.scard(self.key(job_id, "docs"))
        pipe.hmget(self.key(job_id, "meta"), ["started", "last_done"])
        states, outcomes, dead, errors, users, docs, (started, last_done) = pipe.execute()
        counts = Counter(v.decode() for v in states.values())
        reports = [BatchOutcome.model_validate_json(o).report for o in outcomes]
        letters = sorted((DeadLetter.model_validate(kloads(d)["letter"]) for d in dead), key=lambda d: d.batch)
        retrying = {int(k): v.decode() for k, v in errors.items() if states.get(k) == b"retrying"}
        finished = ((meta.enqueued or meta.failed is not None)
                    and sum(counts.get(s, 0) for s in FINISHED) >= meta.batches)
        return JobStatus(
            meta=meta, states={s: counts.get(s, 0) for s in ("queued", "running", "retrying", "done", "dead")},
            report=merge_reports(meta.kind, reports, users, docs), dead=letters, retrying=retrying,
            finished=finished, started=float(started) if started else None,
            last_done=float(last_done) if last_done else None,
        )


def inflight_field(job_id: str, batch: int) -> str:
    return f"{job_id}:{batch}"


def split_field(field: str) -> tuple[str, int]:
    job_id, _, batch = field.rpartition(":")
    return job_id, int(batch)


# Compare-and-set: the entry is still the one the sweeper judged, and the batch still running.
_TAKE_OVER = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then return 0 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], 'queued')
return 1
"""


# One claim per key: the batch that saw a document first owns it, whoever delivers it again.
_CLAIM = """
local a = redis.call('HGET', KEYS[1], ARGV[1])
local b = redis.call('HGET', KEYS[1], ARGV[2])
if (a and a ~= ARGV[3]) or (b and b ~= ARGV[3]) then return 1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 0
"""


class JobDeduper(Deduper):
    """`Deduper` over a whole job: a record another batch of the job claimed first is a duplicate.

    Claims are per batch, so a batch delivered again does not find its own records "seen". With
    per-partition order (a user's batches run in input order) the same record wins as in one
    in-process run.
    """

    def __init__(self, client: redis.Redis, key: str, owner: str) -> None:
        super().__init__()
        self.client, self.hash_key, self.owner = client, key, owner

    def seen(self, record: Any) -> bool:
        if super().seen(record):
            return True
        doc_id, content = self.doc_id(record), content_doc_id(record.user_id, record.text)
        return bool(self.client.eval(_CLAIM, 1, self.hash_key, f"id:{doc_id}", f"c:{content}", self.owner))
