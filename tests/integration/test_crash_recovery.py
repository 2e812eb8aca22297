"""kill -9 of the database during an ingest: every acknowledged batch survives a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import EmbeddedFalkorDB
from engine.store.falkor import FalkorStore

pytestmark = pytest.mark.integration

WRITER = r"""
import json, os, sys
from engine.config import Settings
from engine.ingest import parse_fact_line
from engine.pipeline import apply_fact_lines
from engine.store.falkor import FalkorStore

port, graph, acked_path, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
store = FalkorStore("127.0.0.1", port, graph, password=password)
store.ensure_schema()
settings = Settings(graph_uri=f"falkordb://:{password}@127.0.0.1:{port}", graph_name=graph)
with open(acked_path, "a") as acked:
    for batch in range(10_000):
        lines = [
            parse_fact_line(json.dumps({
                "doc_id": f"b{batch}-d{i}", "user_id": f"user{batch}-{i % 7}",
                "ts": "2024-01-01T00:00:00Z", "predicate": "LIKES", "object": f"thing {i}",
            }), i)
            for i in range(200)
        ]
        apply_fact_lines(store, settings, lines)
        # only now is the batch acknowledged
        acked.write(json.dumps([f"b{batch}-d{i}" for i in range(200)]) + "\n")
        acked.flush()
        os.fsync(acked.fileno())
"""


def test_acknowledged_batches_survive_kill_9(tmp_path: Path) -> None:
    server = EmbeddedFalkorDB(tmp_path / "home")
    status = server.start()
    acked_file = tmp_path / "acked.jsonl"
    acked_file.touch()
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(status.port), "crash", str(acked_file), status.password or ""],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while len(acked_file.read_text().splitlines()) < 5 and time.monotonic() < deadline:
            assert writer.poll() is None, writer.stderr.read().decode() if writer.stderr else ""
            time.sleep(0.05)
        os.kill(int(status.pid or 0), signal.SIGKILL)  # mid-ingest, no clean shutdown
        writer.wait(timeout=60)
        assert writer.returncode != 0  # the writer saw the database die
    finally:
        if writer.poll() is None:
            writer.kill()

    acked = [doc for line in acked_file.read_text().splitlines() for doc in json.loads(line)]
    assert len(acked) >= 1000

    restarted = server.start()
    assert restarted.pid != status.pid
    store = FalkorStore("127.0.0.1", int(restarted.port or 0), "crash", password=restarted.password)
    try:
        rows = store.ro_query(
            "MATCH (:User)-[f:LIKES]->(:Entity) UNWIND f.docs AS d RETURN DISTINCT d"
        ).rows
        present = {r[0] for r in rows}
        missing = [d for d in acked if d not in present]
        assert missing == []
        docs = store.ro_query(
            "UNWIND $ids AS id MATCH (d:Document {id: id}) RETURN count(d)", {"ids": acked}
        ).scalar()
        assert docs == len(acked)
    finally:
        store.close()
        server.stop()
