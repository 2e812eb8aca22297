"""The database comes back after a crash whatever its log size; forget reaches every file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.extract.cache import ExtractionCache, cache_key, text_hash
from engine.extract.types import ExtractionResult
from engine.forget import forget_everywhere
from engine.pipeline import apply_fact_lines
from engine.store import EmbeddedFalkorDB, LoadProgress, QueryMemoryExceeded, ServerConfig, ServerStatus, StoreError
from engine.store.falkor import FalkorStore
from tests.factlines import fact

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NO_AUTO_REWRITE = ServerConfig(aof_rewrite_percentage=0)


@pytest.fixture(autouse=True)
def _no_leftover_servers(tmp_path: Path):
    """A failed test must not leave its servers running (some are stopped with SIGSTOP)."""
    yield
    for pid_file in tmp_path.rglob("server.pid"):
        try:
            pid = int(pid_file.read_text())
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _fill_log(status: ServerStatus, statements: int) -> None:
    """Many small un-indexed MERGEs logged as query text (as servers before effects-only logging
    wrote them): each replays as a scan, so replay takes seconds per MB."""
    client = redis.Redis(host="127.0.0.1", port=int(status.port or 0), password=status.password)
    client.execute_command("GRAPH.CONFIG", "SET", "EFFECTS_THRESHOLD", 1_000_000_000)
    pipe = client.pipeline(transaction=False)
    for i in range(statements):
        pipe.execute_command(
            "GRAPH.QUERY", "big",
            f"CYPHER i={i} MERGE (u:Person {{name: 'p' + toString($i % 2000)}}) "
            "MERGE (t:Thing {name: 't' + toString($i)}) MERGE (u)-[:R]->(t)",
        )
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    client.close()


def _count(status: ServerStatus) -> int:
    store = FalkorStore("127.0.0.1", int(status.port or 0), "big", password=status.password)
    try:
        return int(store.ro_query("MATCH (:Person)-[r:R]->(:Thing) RETURN count(r)").scalar())
    finally:
        store.close()


def _replay(server: EmbeddedFalkorDB, stall_timeout_s: float) -> tuple[ServerStatus, list[LoadProgress]]:
    seen: list[LoadProgress] = []
    status = server.start(stall_timeout_s=stall_timeout_s, on_progress=seen.append)
    return status, [p for p in seen if p.loading]


def _largest_gap(loading: list[LoadProgress]) -> float:
    """The longest wait between two load steps that showed progress."""
    times = [0.0, *(p.elapsed_s for p in loading)]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def test_big_uncompacted_log_restarts_while_loading_progresses(tmp_path: Path) -> None:
    server = EmbeddedFalkorDB(tmp_path / "home", NO_AUTO_REWRITE)
    status = server.start()
    _fill_log(status, 12_000)
    os.kill(int(status.pid or 0), signal.SIGKILL)
    assert server.log_size_bytes() > 1_000_000

    # First replay, with a generous stall window, measures this machine: how long the replay takes
    # and how far apart its progress steps are. A clean stop keeps the log un-compacted.
    first, loading = _replay(server, stall_timeout_s=120.0)
    assert first.running and len(loading) >= 3, loading
    replay_s, gap_s = loading[-1].elapsed_s, _largest_gap(loading)
    server.stop()
    # Second replay with a stall window shorter than the replay just measured, yet longer than any
    # pause between progress steps: the start must keep waiting while loading progresses.
    stall_s = max(2 * gap_s, replay_s / 3)
    assert stall_s < replay_s, (stall_s, replay_s, loading)
    restarted, loading = _replay(server, stall_timeout_s=stall_s)
    try:
        assert restarted.running
        # A replay longer than the stall window finished: the start waited while loading progressed.
        assert len(loading) >= 2 and loading[-1].loaded_bytes > loading[0].loaded_bytes
        assert _count(restarted) == 12_000

        report = server.compact()
        assert report.completed and report.method == "aof-rewrite"
        files = sorted(p.name for p in (server.data_dir / "appendonlydir").iterdir())
        assert [f for f in files if f.endswith(".incr.aof")] and len(files) == 3, files
    finally:
        server.stop()
    after: list[LoadProgress] = []
    again = server.start(stall_timeout_s=3.0, on_progress=after.append)
    try:
        assert _count(again) == 12_000
    finally:
        server.stop()


def test_auto_rewrite_policy_keeps_the_log_compact(tmp_path: Path) -> None:
    server = EmbeddedFalkorDB(tmp_path / "home", ServerConfig(aof_rewrite_percentage=50, aof_rewrite_min_size_mb=1))
    status = server.start()
    try:
        _fill_log(status, 8_000)
        client = redis.Redis(host="127.0.0.1", port=int(status.port or 0), password=status.password)
        for _ in range(600):  # the server's cron starts the rewrite; let a running one finish
            info = client.info("persistence")
            if info["aof_rewrites"] >= 1 and not info["aof_rewrite_in_progress"]:
                break
            time.sleep(0.05)
        assert info["aof_rewrites"] >= 1  # the server compacted by itself
        assert info["aof_base_size"] > 0
    finally:
        server.stop()


def test_stalled_start_names_the_state_and_leaves_the_server(tmp_path: Path) -> None:
    server = EmbeddedFalkorDB(tmp_path / "home", NO_AUTO_REWRITE)
    status = server.start()
    _fill_log(status, 4_000)
    os.kill(int(status.pid or 0), signal.SIGKILL)
    restarted = server.start()
    pid = int(restarted.pid or 0)
    # A server that stops making progress (stopped here, hung in real life): whatever phase it is in,
    # a start must not wait forever, must not kill it, and must say what it saw.
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(StoreError, match="made no progress for 1s"):
            server.start(stall_timeout_s=1.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = server.start(stall_timeout_s=60.0)  # still there: a second start resumes the wait
    try:
        assert resumed.running and resumed.pid == pid
        assert _count(resumed) == 4_000
    finally:
        server.stop()


def test_query_memory_cap_refuses_a_huge_unwind(tmp_path: Path) -> None:
    server = EmbeddedFalkorDB(tmp_path / "home", ServerConfig(query_mem_capacity_mb=64))
    status = server.start()
    store = FalkorStore("127.0.0.1", int(status.port or 0), "mem", password=status.password)
    try:
        with pytest.raises(QueryMemoryExceeded, match="per-query cap"):
            store.query("UNWIND range(1, 50000000) AS x RETURN collect(x)")
        assert store.query("UNWIND range(1, 1000) AS x RETURN count(x)").scalar() == 1000
    finally:
        store.close()
        server.stop()


SECRET_TEXT = "I am alice-7f3q and I love football"


def _grep(home: Path, needle: str) -> list[str]:
    out = subprocess.run(["grep", "-a", "-r", "-l", needle, str(home)], capture_output=True, text=True)
    return out.stdout.split()


def test_forget_leaves_no_trace_in_any_file_under_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = EmbeddedFalkorDB(home)
    status = server.start()
    port = int(status.port or 0)
    store = FalkorStore("127.0.0.1", port, "persona", password=status.password)
    store.ensure_schema()
    settings = Settings(home=home, graph_uri=status.graph_uri())
    try:
        apply_fact_lines(store, settings, [
            fact(doc_id="a-d1", user_id="alice-7f3q", predicate="LIKES", object="football",
                 text=SECRET_TEXT, lang="en"),
            fact(doc_id="b-d1", user_id="bob-1", predicate="LIKES", object="football",
                 text="bob writes about football", lang="en"),
        ])
        # the extraction cache as ingest leaves it, plus a row from before text hashes were kept
        cache = ExtractionCache(home / "extraction_cache.sqlite")
        result = ExtractionResult.model_validate(
            {"facts": [{"predicate": "LIKES", "object": "football", "evidence": SECRET_TEXT}]}
        )
        cache.put(cache_key(SECRET_TEXT, "en", "v1"), result, text_hash=text_hash(SECRET_TEXT, "en"),
                  owner="alice-7f3q")
        cache.put(cache_key(SECRET_TEXT, "en", "v0"), result)  # legacy row
        bob = ExtractionResult.model_validate(
            {"facts": [{"predicate": "LIKES", "object": "football", "evidence": "bob writes"}]}
        )
        cache.put(cache_key("bob writes about football", "en", "v1"), bob,
                  text_hash=text_hash("bob writes about football", "en"), owner="bob-1")
        cache.close()
        exports = home / "exports"
        exports.mkdir()
        (exports / "fans.csv").write_text("user_id,segment_id\nalice-7f3q,fans\nbob-1,fans\n")
        (exports / "other.csv").write_text("user_id,segment_id\nbob-1,fans\n")
        assert _grep(home, "alice-7f3q") and _grep(home, SECRET_TEXT)

        report = forget_everywhere(store, "alice-7f3q", home=home, delete_files=True)

        assert report.graph.user_removed
        assert report.compaction.completed, report.compaction
        assert report.cache is not None
        assert (report.cache.rows_removed, report.cache.legacy_rows_removed) == (1, 1)
        assert [Path(h.path).name for h in report.files] == ["fans.csv"]
        assert report.residual == []
        assert _grep(home, "alice-7f3q") == []
        assert _grep(home, SECRET_TEXT) == []
        # everyone else is intact, in the graph, the cache and the files
        assert store.ro_query("MATCH (u:User) RETURN collect(u.id)").scalar() == ["bob-1"]
        assert len(ExtractionCache(home / "extraction_cache.sqlite")) == 1
        assert (exports / "other.csv").exists()
    finally:
        store.close()
        server.stop()
    # and it stays gone across a restart (nothing replays it back)
    again = server.start()
    try:
        assert _grep(home, "alice-7f3q") == []
        back = FalkorStore("127.0.0.1", int(again.port or 0), "persona", password=again.password)
        assert back.ro_query("MATCH (u:User) RETURN collect(u.id)").scalar() == ["bob-1"]
        back.close()
    finally:
        server.stop()


# --- kill -9 of the database in the middle of `persona ingest-facts`, restart, rerun ----------

VOLATILE = {"updated_at", "created_at", "checked_at", "ts_written"}


def _facts_file(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "doc_id": f"d{i // 2}", "user_id": f"user{i % 997}", "ts": f"2024-01-{1 + i % 28:02d}T00:00:00Z",
                "predicate": "LIKES" if i % 3 else "DISLIKES", "object": f"thing {i % 1500}",
                "text": f"document {i // 2} of user{i % 997} " + "x" * 40,
            }) + "\n")


def _ingest(home: Path, facts: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSONA_HOME": str(home),
           "PERSONA_GRAPH_URI": "embedded", "PERSONA_GRAPH_NAME": "persona"}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "ingest-facts", str(facts), "--batch-size", "2000", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _canonical(status: ServerStatus) -> tuple[list[str], list[str]]:
    """Nodes and edges by content (internal ids and wall-clock stamps left out), sorted."""
    store = FalkorStore("127.0.0.1", int(status.port or 0), "persona", password=status.password)
    try:
        def clean(props: dict) -> str:
            return json.dumps({k: v for k, v in props.items() if k not in VOLATILE}, sort_keys=True, default=str)

        nodes = sorted(
            json.dumps([sorted(labels), clean(props)])
            for labels, props in store.ro_query("MATCH (n) RETURN labels(n), properties(n)").rows
        )
        edges = sorted(
            json.dumps([t, clean(a), clean(b), clean(p)])
            for t, a, b, p in store.ro_query(
                "MATCH (a)-[r]->(b) RETURN type(r), properties(a), properties(b), properties(r)"
            ).rows
        )
        return nodes, edges
    finally:
        store.close()


def test_kill_9_mid_ingest_then_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    facts = tmp_path / "facts.jsonl"
    _facts_file(facts, 20_000)

    clean_home = tmp_path / "clean"
    clean_run = _ingest(clean_home, facts)
    assert clean_run.wait(timeout=600) == 0, clean_run.stderr.read().decode()[-2000:] if clean_run.stderr else ""
    clean_server = EmbeddedFalkorDB(clean_home)
    try:
        expected = _canonical(clean_server.start())
    finally:
        clean_server.stop()

    home = tmp_path / "crashed"
    server = EmbeddedFalkorDB(home)
    status = server.start()
    run = _ingest(home, facts)
    port = int(status.port or 0)
    client = redis.Redis(host="127.0.0.1", port=port, password=status.password)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:  # wait until a few batches are in
        try:
            if client.execute_command("GRAPH.QUERY", "persona", "MATCH (d:Document) RETURN count(d)")[1][0][0] > 3000:
                break
        except redis.ResponseError:
            pass  # graph not created yet
        time.sleep(0.05)
    os.kill(int(status.pid or 0), signal.SIGKILL)
    assert run.wait(timeout=120) != 0  # the ingest saw the database die mid-way
    rerun = _ingest(home, facts)  # starts the database again (replaying its log) and reruns
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()[-2000:] if rerun.stderr else ""
    try:
        got = _canonical(server.status())
        assert len(got[0]) == len(expected[0]) and len(got[1]) == len(expected[1])
        assert got == expected
    finally:
        server.stop()
