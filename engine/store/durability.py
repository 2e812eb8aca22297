"""Keeping a redis-hosted FalkorDB's files small and honest: compaction and load progress.

FalkorDB replicates every write as the Cypher text, so its append-only log replays by re-running
each query; replay slows as the graph grows (measured: 3.2 MB of log took 22 s, the same graph as
an RDB preamble 0.02 s). Compaction rewrites the log as one RDB snapshot (`aof-use-rdb-preamble`),
and it is also how a delete reaches the disk: until the rewrite, the old log still holds the
deleted data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import redis
from pydantic import BaseModel

from engine.store.base import StoreError


class CompactReport(BaseModel):
    """What one compaction did; `completed` says the files on disk no longer hold deleted data."""

    backend: str
    method: Literal["aof-rewrite", "rdb-save", "none"]
    started: bool
    completed: bool
    seconds: float = 0.0
    size_before_bytes: int | None = None
    size_after_bytes: int | None = None
    detail: str = ""


class LoadProgress(BaseModel):
    """A starting server's load of its data files, from INFO persistence."""

    loading: bool
    loaded_bytes: int = 0
    total_bytes: int = 0
    percent: float = 0.0
    eta_seconds: int | None = None
    elapsed_s: float = 0.0


ProgressCallback = Callable[[LoadProgress], None]


def _info(client: redis.Redis) -> dict[str, Any]:
    try:
        return dict(client.info("persistence"))
    except redis.ResponseError as exc:
        raise StoreError(f"FalkorDB refused INFO persistence: {exc}") from exc
    except redis.ConnectionError as exc:
        raise StoreError(f"FalkorDB is not reachable: {exc}") from exc


def load_progress(info: dict[str, Any], elapsed_s: float = 0.0) -> LoadProgress:
    """INFO persistence as a LoadProgress (total 0 when the server does not say)."""
    eta = info.get("loading_eta_seconds")
    return LoadProgress(
        loading=bool(info.get("loading", 0)),
        loaded_bytes=int(info.get("loading_loaded_bytes", 0) or 0),
        total_bytes=int(info.get("loading_total_bytes", 0) or 0),
        percent=float(info.get("loading_loaded_perc", 0.0) or 0.0),
        eta_seconds=int(eta) if eta is not None else None,
        elapsed_s=round(elapsed_s, 2),
    )


def _aof_dir(client: redis.Redis) -> Path | None:
    """The server's append-only directory when it is on this machine (None if unknown)."""
    try:
        cfg = client.config_get("dir")
        cfg.update(client.config_get("appenddirname"))
    except (redis.ResponseError, redis.ConnectionError):
        return None  # CONFIG may be disabled on a managed server
    if not cfg.get("dir") or not cfg.get("appenddirname"):
        return None
    path = Path(cfg["dir"]) / cfg["appenddirname"]
    return path if path.is_dir() else None


def _manifest_files(aof_dir: Path) -> set[str] | None:
    manifests = list(aof_dir.glob("*.manifest"))
    if len(manifests) != 1:
        return None
    names: set[str] = {manifests[0].name}
    for line in manifests[0].read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "file":
            names.add(parts[1])
    return names


def _wait_history_removed(aof_dir: Path, timeout_s: float = 10.0) -> list[str]:
    """Wait until the directory holds only the files the manifest names; returns leftovers.

    After a rewrite redis unlinks the superseded log files from a background thread, a moment
    after INFO already reports the rewrite done.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        wanted = _manifest_files(aof_dir)
        present = {p.name for p in aof_dir.iterdir() if p.is_file()}
        extra = sorted(present - wanted) if wanted is not None else []
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)


def _wait_while(
    client: redis.Redis, busy: Callable[[dict[str, Any]], bool], timeout_s: float | None, what: str
) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        info = _info(client)
        if not busy(info):
            return info
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise StoreError(f"{what} still running after {timeout_s:.0f}s; it continues in the server")
        time.sleep(0.05)


def _aof_busy(info: dict[str, Any]) -> bool:
    return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled"))


def _rdb_busy(info: dict[str, Any]) -> bool:
    return bool(info.get("rdb_bgsave_in_progress"))


def compact_redis(
    client: redis.Redis, *, wait: bool = True, timeout_s: float | None = None, backend: str = "falkordb"
) -> CompactReport:
    """Rewrite the append-only log as one snapshot (or save the RDB when the log is off).

    With wait=True, returns once the new files are in place and the superseded ones are removed
    (when the data directory is on this machine), so data deleted before the call is gone from
    disk. A rewrite already running may have forked before the caller's deletes, so it is waited
    for first and a fresh one started.
    """
    started = time.monotonic()
    info = _info(client)
    aof = bool(info.get("aof_enabled"))
    before = int(info.get("aof_current_size", 0) or 0) if aof else None
    if aof:
        info = _wait_while(client, _aof_busy, timeout_s, "an earlier log rewrite")
        count = int(info.get("aof_rewrites", 0) or 0)
        try:
            client.bgrewriteaof()
        except redis.ResponseError as exc:
            raise StoreError(f"FalkorDB refused BGREWRITEAOF: {exc}") from exc
    else:
        info = _wait_while(client, _rdb_busy, timeout_s, "an earlier snapshot")
        count = int(info.get("rdb_saves", 0) or 0)
        try:
            client.bgsave()
        except redis.ResponseError as exc:
            raise StoreError(f"FalkorDB refused BGSAVE: {exc}") from exc
    method: Literal["aof-rewrite", "rdb-save"] = "aof-rewrite" if aof else "rdb-save"
    if not wait:
        return CompactReport(backend=backend, method=method, started=True, completed=False,
                             size_before_bytes=before, detail="running in the background")
    counter, busy, status_key = (
        ("aof_rewrites", _aof_busy, "aof_last_bgrewrite_status")
        if aof
        else ("rdb_saves", _rdb_busy, "rdb_last_bgsave_status")
    )
    while True:
        info = _wait_while(client, busy, timeout_s, method)
        if int(info.get(counter, 0) or 0) > count or info.get(status_key) != "ok":
            break
        time.sleep(0.05)  # a scheduled rewrite has not begun yet
    if info.get(status_key) != "ok":
        raise StoreError(f"FalkorDB {method} failed ({status_key}={info.get(status_key)}); see the server log")
    detail = ""
    if aof and (aof_dir := _aof_dir(client)) is not None:
        leftovers = _wait_history_removed(aof_dir)
        if leftovers:
            detail = f"superseded log files still present: {', '.join(leftovers)}"
    return CompactReport(
        backend=backend,
        method=method,
        started=True,
        completed=not detail,
        seconds=round(time.monotonic() - started, 3),
        size_before_bytes=before,
        size_after_bytes=int(info.get("aof_current_size", 0) or 0) if aof else None,
        detail=detail,
    )
