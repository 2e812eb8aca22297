"""The pure parts of scale-out ingest: settings, partitions, windows, report merging, worker argv."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, Settings
from engine.distributed import BatchOptions, partition_of, worker_argv
from engine.distributed.enqueue import valid_items
from engine.distributed.jobs import merge_reports
from engine.ingest import LineError
from engine.pipeline import IngestReport


def test_worker_settings_from_env() -> None:
    s = Settings.from_env({"PERSONA_BROKER_URL": "redis://broker:6379/0", "PERSONA_WORKER_PARTITIONS": "32",
                           "PERSONA_WORKER_MAX_RETRIES": "7", "PERSONA_WORKER_VISIBILITY_TIMEOUT_S": "90",
                           "PERSONA_WORKER_QUEUE": "ingest"})
    assert (s.worker.broker_url, s.worker.partitions, s.worker.max_retries) == ("redis://broker:6379/0", 32, 7)
    assert (s.worker.visibility_timeout_s, s.worker.queue) == (90, "ingest")
    assert Settings.from_env({}).worker.broker_url is None  # the embedded Redis, database 1
    with pytest.raises(ConfigError, match="PERSONA_WORKER_PARTITIONS"):
        Settings.from_env({"PERSONA_WORKER_PARTITIONS": "many"})


def test_partition_is_stable_and_total() -> None:
    # a fixed hash, not Python's per-process hash(): producers and workers on other machines agree
    assert partition_of("ana", 1024) == 572  # the same in every process and on every machine
    assert {partition_of(f"user{i}", 8) for i in range(200)} == set(range(8))
    assert partition_of(None, 8) in range(8) and partition_of(12, 8) in range(8)  # bad ids still go somewhere


def test_windows_count_valid_items_like_the_pipeline() -> None:
    good = {"doc_id": "d", "user_id": "u", "ts": "2024-01-01T00:00:00Z", "predicate": "LIKES", "object": "x"}
    assert valid_items("facts", good, 1, BatchOptions()) == (1, [])
    valid, errors = valid_items("facts", {**good, "ts": 12}, 7, BatchOptions())
    assert valid == 0 and [(e.line, e.field) for e in errors] == [(7, "ts")]  # what the producer reports
    long = {"user_id": "u", "ts": "2024-01-01T00:00:00Z", "text": "word " * 9000}
    assert valid_items("records", long, 1, BatchOptions(oversize="chunk"))[0] == 3  # 45k characters → 3 records
    assert valid_items("records", long, 1, BatchOptions(oversize="truncate"))[0] == 1


def test_merge_reports_sums_batches() -> None:
    a = IngestReport(kind="facts", lines=3, accepted=2, applied=2, conflicts={"superseded": 1},
                     errors=[LineError(line=9, field="ts", message="bad")])
    b = IngestReport(kind="facts", lines=2, accepted=2, applied=1, conflicts={"superseded": 2},
                     errors=[LineError(line=4, field="object", message="bad")])
    total = merge_reports("facts", [a, b], users=3, documents=4)
    assert (total.lines, total.accepted, total.applied, total.users, total.documents) == (5, 4, 3, 3, 4)
    assert total.conflicts == {"superseded": 3} and [e.line for e in total.errors] == [4, 9]


def test_worker_argv_solo_for_one_process() -> None:
    assert "--pool=solo" in worker_argv(1, ["persona"])
    argv = worker_argv(4, ["a", "b"], name="n1@h")
    assert "--pool=solo" not in argv and "--concurrency=4" in argv and "--queues=a,b" in argv
    assert "--hostname=n1@h" in argv
