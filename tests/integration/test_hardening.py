"""Issue 11 (items 3-5) and issue 6: the read-only console cannot reach out or run the API out of
memory, the API checks Host, URLs and tokens at the edge, exports survive a full disk. Against the
real embedded FalkorDB, and a real `persona serve` process where the HTTP layer matters."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.export import ExportWriteError, export_segment, manifest_path
from engine.pipeline import apply_fact_lines
from engine.segment import apply_definition, run_segment
from engine.store import OutboundAccessRefused, ReadOnlyViolation, StoreError
from engine.store.falkor import FalkorStore
from tests.factlines import fact

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hardening-token"  # noqa: S105 - a test value
USERS = ["team/ana", "user-bob-4410", "user-cy-9902"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**os.environ, **cli_env, "PYTHONPATH": str(ROOT), "PERSONA_API_TOKEN": TOKEN, **extra}


@pytest.fixture
def people(store: FalkorStore, settings: Settings) -> FalkorStore:
    apply_fact_lines(store, settings, [
        fact(doc_id=f"d{i}", user_id=u, predicate="LIVES_IN", object_qid="Q8686", object_types=["Q515"])
        for i, u in enumerate(USERS)
    ])
    apply_definition(store, {"id": "cn", "name": "China", "where": {"lives_in": {"within": "Q148"}}})
    run_segment(store, "cn")
    return store


# --- LOAD CSV on the read-only paths --------------------------------------------------------------


class Listener:
    """A loopback TCP listener that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


LOADS = [
    "LOAD CSV FROM 'https://127.0.0.1:{port}/x.csv' AS r RETURN r",
    "load csv with headers from 'https://127.0.0.1:{port}/x' as r return r",
    "LOAD/* hidden */CSV FROM 'https://127.0.0.1:{port}/x' AS r RETURN r",
    "LOAD // line comment\n CSV FROM 'https://127.0.0.1:{port}/x' AS r RETURN r",
    "MATCH (u:User) WITH u LIMIT 1 LOAD CSV FROM 'file:///etc/passwd' AS r RETURN r",
]


@pytest.mark.parametrize("query", LOADS)
def test_load_csv_is_refused_on_every_read_only_path(people: FalkorStore, listener: Listener, query: str) -> None:
    q = query.format(port=listener.port)
    for call in (lambda: people.ro_query(q), lambda: list(people.ro_stream(q)),
                 lambda: people.ro_head(q, max_rows=10, timeout_ms=2000)):
        with pytest.raises(OutboundAccessRefused, match="read-only path"):
            call()
    time.sleep(0.3)
    assert listener.connections == 0


def test_the_listener_sees_what_the_database_would_do(people: FalkorStore, listener: Listener) -> None:
    """The refusal above is what stops the connection: the same statement on the (operator's)
    write path does reach the listener, so the test above can fail."""
    with contextlib.suppress(StoreError):
        people.query(f"LOAD CSV FROM 'https://127.0.0.1:{listener.port}/x.csv' AS r RETURN r")
    deadline = time.monotonic() + 5
    while listener.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listener.connections >= 1


def test_load_csv_words_as_data_go_in_parameters(people: FalkorStore) -> None:
    assert people.ro_query("RETURN $t AS t", {"t": "LOAD CSV FROM x"}).scalar() == "LOAD CSV FROM x"
    with pytest.raises(ReadOnlyViolation):  # the text itself is refused, even inside a literal
        people.ro_query("RETURN 'LOAD CSV' AS t")


def test_cli_cypher_refuses_load_csv(people: FalkorStore, cli_env: dict[str, str], listener: Listener) -> None:
    query = f"LOAD CSV FROM 'https://127.0.0.1:{listener.port}/' AS r RETURN r"
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "cypher", query],
        env=_env(cli_env), capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1 and "error:" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr and listener.connections == 0


# --- /cypher: bounded rows, one time budget ----------------------------------------------------------


def test_ro_head_reads_only_the_rows_it_returns(people: FalkorStore) -> None:
    big = "UNWIND range(1, 1000000) AS x RETURN x, {n: x, s: 'row ' + toString(x)} AS m"
    tracemalloc.start()
    try:
        head = people.ro_head(big, max_rows=1000, timeout_ms=60_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert head.truncated and head.total == 1_000_000 and len(head.rows) == 1000
    assert head.rows[1] == [2, {"n": 2, "s": "row 2"}]
    # A million rows as Python objects are hundreds of MB; the head holds 1000 of them.
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_ro_head_returns_nodes_edges_and_whole_small_results(people: FalkorStore) -> None:
    head = people.ro_head("MATCH (u:User)-[f:LIVES_IN]->(c) RETURN u, f, c.qid AS qid ORDER BY u.id",
                          max_rows=10, timeout_ms=5000)
    assert not head.truncated and head.total == 3 and head.columns == ["u", "f", "qid"]
    assert [r[0].properties["id"] for r in head.rows] == sorted(USERS)
    assert head.rows[0][1].type == "LIVES_IN" and head.rows[0][2] == "Q8686"
    assert people.ro_head("MATCH (n:Nothing) RETURN n", max_rows=5, timeout_ms=5000).rows == []
    with pytest.raises(ReadOnlyViolation):
        people.ro_head("CREATE (:User {id: 'x'}) RETURN 1", max_rows=5, timeout_ms=5000)
    with pytest.raises(StoreError, match="(?i)timed out"):
        people.ro_head("UNWIND range(1, 5000) AS x UNWIND range(1, 5000) AS y WITH x, y WHERE (x * y) % 7 = 3 "
                       "RETURN count(*)", max_rows=5, timeout_ms=50)


def test_ro_head_budget_covers_a_server_that_never_answers(people: FalkorStore) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    stuck = FalkorStore.__new__(FalkorStore)
    stuck.__dict__.update(people.__dict__)
    stuck._connection_kwargs = lambda: {"host": "127.0.0.1", "port": silent.getsockname()[1]}  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreError, match="timed out"):
            stuck.ro_head("RETURN 1", max_rows=1, timeout_ms=300)
    finally:
        silent.close()


# --- the real server process -------------------------------------------------------------------------


@pytest.fixture
def server(people: FalkorStore, settings: Settings, cli_env: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env=_env(cli_env, PERSONA_API_CYPHER_MAX_ROWS="100"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"persona serve did not start: {proc.stdout.read().decode() if proc.stdout else ''}")
        time.sleep(0.2)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def call(port: int, method: str, path: str, *, host: str = "127.0.0.1", body: object = None,
         token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request: the path is sent exactly as written (%2F, %00 stay encoded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": host}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def test_server_allows_only_its_host_names_and_sends_security_headers(server: int) -> None:
    for host in (f"127.0.0.1:{server}", f"localhost:{server}", f"[::1]:{server}", "LOCALHOST"):
        status, headers, _ = call(server, "GET", "/health", host=host)
        assert status == 200, host
        assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    for host in ("evil.example", f"evil.example:{server}", "127.0.0.1.evil.example", ""):
        status, headers, body = call(server, "GET", "/users", host=host)
        assert status == 400 and b"not served here" in body, host
        assert headers["x-frame-options"] == "DENY"
    status, headers, _ = call(server, "GET", "/")
    assert status == 200 and "script-src 'self';" in headers["content-security-policy"]


def test_server_cypher_cuts_big_results_and_refuses_load_csv(server: int, listener: Listener) -> None:
    status, _, body = call(server, "POST", "/cypher", body={"query": "UNWIND range(1, 3000000) AS x RETURN x"})
    result = json.loads(body)
    assert status == 200 and len(result["rows"]) == 100 and result["truncated"] is True
    assert result["row_count"] == 3_000_000 and result["rows"][-1] == [100]
    q = f"LOAD CSV FROM 'https://127.0.0.1:{listener.port}/x.csv' AS r RETURN r"
    status, _, body = call(server, "POST", "/cypher", body={"query": q})
    assert status == 400 and b"read-only" in body
    time.sleep(0.3)
    assert listener.connections == 0


def test_server_refuses_nul_and_reaches_ids_with_a_slash(server: int) -> None:
    for path in ("/users/a%00b", "/users/a%00b/graph", "/users?q=x%00y", "/segments/cn%00/members",
                 "/segments/x%2Fy%00"):
        status, _, body = call(server, "GET", path)
        assert status == 400 and b"NUL" in body, path
    status, _, body = call(server, "GET", "/users/team%2Fana")
    assert status == 200 and json.loads(body)["user"]["id"] == "team/ana"
    status, _, body = call(server, "GET", "/users/team%2fana/graph")
    assert status == 200 and any(n.get("label") == "team/ana" or "team/ana" in json.dumps(n)
                                 for n in json.loads(body)["nodes"])
    assert call(server, "GET", "/users/team/ana")[0] == 404  # a real slash is still a path separator
    status, _, body = call(server, "GET", "/segments/cn/members")
    assert status == 200 and json.loads(body)["total"] == 3
    # segment ids cannot hold a "/" (definitions refuse it), but the route reaches the handler
    status, _, body = call(server, "GET", "/segments/x%2Fy/members")
    assert status == 404 and b"'x/y'" in body
    status, _, body = call(server, "DELETE", "/users/team%2Fana", token=TOKEN)
    assert status == 200 and json.loads(body)["user_id"] == "team/ana"


def test_server_exports_raw_ids_only_with_the_token(server: int, settings: Settings) -> None:
    raw = "/segments/cn/export"
    assert call(server, "POST", raw, body={"format": "csv"})[0] == 401
    assert call(server, "POST", raw, body={"format": "csv", "hash_ids": True, "salt": "mine"})[0] == 401
    status, _, body = call(server, "POST", raw, body={"format": "csv"}, token=TOKEN)
    assert status == 200
    url = json.loads(body)["download_url"]
    assert call(server, "GET", url)[0] == 401
    status, _, data = call(server, "GET", url, token=TOKEN)
    assert status == 200 and b"team/ana" in data
    status, _, body = call(server, "POST", raw, body={"format": "jsonl", "hash_ids": True})
    hashed = json.loads(body)
    assert status == 200 and hashed["manifest"]["salt_source"] == "home" and hashed["manifest"]["salt_id"]
    status, _, data = call(server, "GET", hashed["download_url"])
    assert status == 200 and len(data.splitlines()) == 3
    salt = (Path(settings.home) / "export-salt").read_text().strip()
    for uid in USERS:
        assert uid.encode() not in data and uid.split("-")[-1].encode() not in data
    assert salt.encode() not in data and salt.encode() not in body


# --- full disk -----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root, like the test machines; mount(2) through libc, no helper binary)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", str(mnt).encode(), b"tmpfs", 0, b"size=1m") != 0:
        pytest.skip(f"cannot mount a tmpfs here: {os.strerror(ctypes.get_errno())}")
    yield mnt
    libc.umount2(str(mnt).encode(), 2)  # MNT_DETACH


def fill(disk: Path, leave: int) -> None:
    """Fill the disk until `leave` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_full_disk_after_the_data_leaves_no_file_without_its_manifest(people: FalkorStore, tiny_disk: Path,
                                                                      fmt: str) -> None:
    page = os.statvfs(tiny_disk).f_frsize
    fill(tiny_disk, leave=page)  # room for the small data file, none for the manifest
    out = tiny_disk / f"cn.{fmt}"
    with pytest.raises(ExportWriteError, match="No space left on device"):
        export_segment(people, "cn", fmt=fmt, out=out)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]
    (tiny_disk / "filler").unlink()
    manifest = export_segment(people, "cn", fmt=fmt, out=out)  # room again: both, consistent
    assert manifest.rows == 3 and json.loads(manifest_path(out).read_text())["file"] == out.name


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_cli_export_on_a_full_disk_prints_an_error_line(people: FalkorStore, tiny_disk: Path, fmt: str,
                                                        cli_env: dict[str, str]) -> None:
    fill(tiny_disk, leave=0)
    out = tiny_disk / f"cn.{fmt}"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "export", "cn", "--format", fmt, "--out", str(out)],
                          env=_env(cli_env), capture_output=True, text=True, timeout=120, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "error:" in text and "No space left on device" in text and "Traceback" not in text
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]
