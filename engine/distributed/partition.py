"""Per-user ordering: users hash into partitions, one Redis lock per partition.

A user's rows always land in the same partition (a stable hash, not Python's per-process
`hash`); the producer sends one batch per (window, partition) in input order, a batch waits for
the previous one of its partition, and a worker holds the partition's lock while it fuses a batch:
two workers never fuse the same user's facts at the same time, whichever jobs the batches come from.
The lock expires `ttl` seconds after its holder stops renewing it, so a worker killed with `kill -9`
cannot block its partition for long. Its value names the batch that holds it (`owner`), which is
how recovery (recovery.py) tells a running batch from one whose runner died.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

LOCK_PREFIX = "persona:lock:partition:"

# Compare-and-delete / compare-and-extend: only the holder (its token) may release or renew.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# A holder back from a Redis outage longer than the lifetime takes its lock again if nobody else has.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""


def lock_key(partition: int) -> str:
    return f"{LOCK_PREFIX}{partition}"


def partition_of(user_id: Any, partitions: int) -> int:
    """The partition of a raw user id (any value: a bad one still needs a home, the worker reports it)."""
    key = user_id if isinstance(user_id, str) else repr(user_id)
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class PartitionLock:
    """A renewable lock on one partition (SET NX PX + a token; renewed by a daemon thread)."""

    def __init__(self, client: redis.Redis, partition: int, ttl_s: float, owner: str = "") -> None:
        self.client = client
        self.key = lock_key(partition)
        self.ttl_ms = max(int(ttl_s * 1000), 100)
        self.token = f"{owner}/{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def held(self) -> bool:
        return self.client.get(self.key) == self.token.encode()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            self.client.eval(_RELEASE, 1, self.key, self.token)
        except redis.RedisError:
            pass  # the lock expires by itself

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)
            except redis.RedisError:
                continue  # broker away for a moment: try again; it expires if we never get back

    @contextmanager
    def renewing(self) -> Iterator[None]:
        """Keep the lock alive while the body runs; release it afterwards."""
        self._renewer = threading.Thread(target=self._renew_loop, name=f"renew {self.key}", daemon=True)
        self._renewer.start()
        try:
            yield
        finally:
            self.release()
