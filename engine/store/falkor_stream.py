"""Bulk reads from FalkorDB: one GRAPH.RO_QUERY reply consumed row by row as it arrives.

redis-py reads a whole reply before returning it, and the falkordb client then walks every value in
Python (`[type, value]` pairs, node and edge objects). For bulk reads (segment export) this module
asks for the verbose result set instead, whose rows are plain values, parses the few header lines
itself and hands the rows to hiredis one at a time as the bytes arrive: hiredis builds the row lists
in C and a million-row result never sits in memory as Python objects all at once.

Verbose values: strings, integers and null arrive as str, int and None; every other type (floats,
booleans, lists, maps, nodes) arrives as FalkorDB's text for it (a float as "%.15g").
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import hiredis

from engine.store.base import StoreError

READ_SIZE = 1 << 20


class ServerReplyError(StoreError):
    """The server answered the command with an error reply (its message is the exception text)."""


def command_bytes(args: list[str]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    """Just enough RESP to walk the outer layers of a reply; the rest goes to hiredis."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def _fill(self) -> None:
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise StoreError("FalkorDB closed the connection in the middle of a reply")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            self._fill()
        line = self.buf[self.pos : end]
        self.pos = end + 2
        return line

    def value(self) -> Any:
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) - self.pos < size + 2:
                self._fill()
            data = self.buf[self.pos : self.pos + size]
            self.pos += size + 2
            return data.decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.value() for _ in range(size)]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ServerReplyError(rest.decode(errors="replace"))
        raise StoreError(f"unexpected reply from FalkorDB: {line[:80]!r}")

    def array_length(self) -> int:
        line = self.line()
        if line[:1] == b"-":
            raise ServerReplyError(line[1:].decode(errors="replace"))
        if line[:1] != b"*":
            raise StoreError(f"unexpected reply from FalkorDB: {line[:80]!r}")
        return int(line[1:])

    def rest(self) -> bytes:
        rest, self.buf, self.pos = self.buf[self.pos :], b"", 0
        return rest


def stream_rows(
    host: str,
    port: int,
    command: list[str],
    *,
    batch_size: int,
    auth: list[str] | None = None,
    connect_timeout: float | None = None,
    timeout: float | None = None,
) -> Iterator[list[list[Any]]]:
    """Send one GRAPH.RO_QUERY (verbose) on a connection of its own; yield its rows in batches.

    Raises ServerReplyError for an error reply and StoreError when the server cannot be reached
    or the connection drops. The connection is closed when the generator finishes or is closed.
    """
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except OSError as exc:
        raise StoreError(f"FalkorDB is not reachable at {host}:{port}: {exc}") from exc
    try:
        sock.settimeout(timeout)
        reader = _Reader(sock)
        if auth:
            sock.sendall(command_bytes(["AUTH", *auth]))
            reader.value()
        sock.sendall(command_bytes(command))
        parts = reader.array_length()
        if parts < 2:  # a statement without RETURN: statistics only
            return
        reader.value()  # header: the column names
        remaining = reader.array_length()
        rows_reader = hiredis.Reader(encoding="utf-8")
        rows_reader.feed(reader.rest())
        gets, feed, recv = rows_reader.gets, rows_reader.feed, sock.recv
        batch: list[list[Any]] = []
        append = batch.append
        while remaining:
            row = gets()
            if row is False:
                data = recv(READ_SIZE)
                if not data:
                    raise StoreError("FalkorDB closed the connection in the middle of a reply")
                feed(data)
                continue
            append(row)
            remaining -= 1
            if len(batch) >= batch_size:
                yield batch
                batch = []
                append = batch.append
        if batch:
            yield batch
        for _ in range(parts - 2):  # statistics; an error reply here means the query failed late
            while (tail := gets()) is False:
                data = recv(READ_SIZE)
                if not data:
                    raise StoreError("FalkorDB closed the connection in the middle of a reply")
                feed(data)
            if isinstance(tail, Exception):
                raise ServerReplyError(str(tail))
    except OSError as exc:
        raise StoreError(f"FalkorDB is not reachable: {exc}") from exc
    except hiredis.ProtocolError as exc:
        raise StoreError(f"unreadable reply from FalkorDB: {exc}") from exc
    finally:
        sock.close()


class Deadline:
    """One time budget for a whole call: every socket wait gets what is left of it."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.ends = time.monotonic() + timeout_ms / 1000

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise StoreError(f"query timed out: the {self.timeout_ms} ms budget ran out while reading the result")
        return left


def head_rows(
    host: str,
    port: int,
    command: list[str],
    *,
    max_rows: int,
    deadline: Deadline,
    auth: list[str] | None = None,
) -> tuple[Any, list[Any], int]:
    """Send one GRAPH.RO_QUERY (compact) on a connection of its own and read at most `max_rows` rows.

    Returns (raw header, raw rows, rows the server produced). The row count is the length prefix of
    the rows array, so it is known before any row is read. When the result is longer the connection
    is closed mid-reply: the server drops the rest of its reply and this process never holds more
    than `max_rows` rows. Every wait is bounded by `deadline`.
    """
    try:
        sock = socket.create_connection((host, port), timeout=deadline.left())
    except OSError as exc:
        raise StoreError(f"FalkorDB is not reachable at {host}:{port}: {exc}") from exc
    try:
        reader = _Reader(sock)

        def recv(size: int) -> bytes:
            sock.settimeout(deadline.left())
            return sock.recv(size)

        reader.sock = _TimedSocket(recv)  # type: ignore[assignment]
        if auth:
            sock.sendall(command_bytes(["AUTH", *auth]))
            reader.value()
        sock.sendall(command_bytes(command))
        parts = reader.array_length()
        if parts < 2:  # a statement without RETURN: statistics only
            reader.value()
            return [], [], 0
        header = reader.value()
        total = reader.array_length()
        rows_reader = hiredis.Reader(encoding="utf-8", errors="replace")
        rows_reader.feed(reader.rest())
        rows: list[Any] = []
        wanted = min(total, max_rows)
        while len(rows) < wanted:
            row = rows_reader.gets()
            if row is False:
                data = recv(READ_SIZE)
                if not data:
                    raise StoreError("FalkorDB closed the connection in the middle of a reply")
                rows_reader.feed(data)
                continue
            rows.append(row)
        if total <= max_rows:  # read the statistics: an error reply there means the query failed late
            for _ in range(parts - 2):
                while (tail := rows_reader.gets()) is False:
                    data = recv(READ_SIZE)
                    if not data:
                        raise StoreError("FalkorDB closed the connection in the middle of a reply")
                    rows_reader.feed(data)
                if isinstance(tail, Exception):
                    raise ServerReplyError(str(tail))
        return header, rows, total
    except TimeoutError as exc:
        raise StoreError(f"query timed out: no reply within the {deadline.timeout_ms} ms budget") from exc
    except OSError as exc:
        raise StoreError(f"FalkorDB is not reachable: {exc}") from exc
    except hiredis.ProtocolError as exc:
        raise StoreError(f"unreadable reply from FalkorDB: {exc}") from exc
    finally:
        sock.close()  # mid-reply when truncated: the server frees what it had not sent


class _TimedSocket:
    """What _Reader needs of a socket (recv), with the deadline applied to each wait."""

    def __init__(self, recv: Any) -> None:
        self.recv = recv
