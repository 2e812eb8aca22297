"""Issue # 16 row 12: the embedded Redis asks for a password, kept in the home (mode 0600) and used
by every client the engine starts; another local user without it reads and writes nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import Settings
from engine.distributed import job_store
from engine.store import EmbeddedFalkorDB, ServerStatus, open_store

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    EmbeddedFalkorDB(home).stop()


def refused(status: ServerStatus, password: str | None = None) -> bool:
    client = redis.Redis(host="127.0.0.1", port=int(status.port or 0), password=password, socket_timeout=5)
    try:
        client.execute_command("GRAPH.LIST")
    except redis.AuthenticationError:
        return True
    except redis.ResponseError as exc:
        return "noauth" in str(exc).lower()
    finally:
        client.close()
    return False


def test_the_server_asks_for_the_password_kept_in_the_home(home: Path) -> None:
    server = EmbeddedFalkorDB(home)
    status = server.start()
    secret = server.password_file.read_text().strip()
    assert len(secret) >= 32 and status.password == secret
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700  # nor can the data files be read
    assert refused(status) and refused(status, "guess")
    assert not refused(status, secret)
    assert secret.encode() not in Path(f"/proc/{status.pid}/cmdline").read_bytes()  # not on its command line
    assert secret not in repr(status) and "password" not in status.model_dump()


def test_every_client_the_engine_starts_uses_it(home: Path, tmp_path: Path) -> None:
    settings = Settings(home=home, graph_name="pw")
    store = open_store(settings)  # the graph
    store.query("MERGE (:User {id: 'u1'})")
    store.close()
    jobs = job_store(settings)  # the broker and job records (database 1)
    assert jobs.list() == []
    jobs.client.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
    env.update({"PYTHONPATH": str(ROOT), "PERSONA_HOME": str(home), "PERSONA_GRAPH_NAME": "pw", "COLUMNS": "200"})
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"doc_id": "d1", "user_id": "u2", "ts": "2024-01-01T00:00:00Z",
                                 "predicate": "LIKES", "object": "football"}) + "\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    assert cli("ingest-facts", str(facts), "--json").returncode == 0
    status = cli("db", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["running"]
    assert EmbeddedFalkorDB(home).password() not in status.stdout + status.stderr
    forgot = cli("forget", "u2", "--yes", "--json")
    assert forgot.returncode == 0, forgot.stderr


def test_a_server_started_without_a_password_gets_one(home: Path) -> None:
    """A server left running by an older version (no password) is protected when reused."""
    server = EmbeddedFalkorDB(home)
    status = server.start()
    client = redis.Redis(host="127.0.0.1", port=int(status.port or 0), password=status.password)
    client.config_set("requirepass", "")  # as an older version left it
    client.close()
    assert not refused(status)
    again = server.start()
    assert again.pid == status.pid and refused(again) and not refused(again, again.password)
