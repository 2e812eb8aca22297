"""Audience export: a segment's members → CSV / Parquet / JSONL, plus a manifest next to it.

Rows: user_id (or its salted hash), segment_id, reason, confidence, since, status, left_at.
- Without `since`: the current members (status `member`).
- With `since` (ISO timestamp): the delta since then — `joined` (since ≥ TS, still a member) and
  `left` (left_at ≥ TS).
- Hashed ids are HMAC-SHA256(salt, user_id), hex; a salt is required (an unsalted hash of a
  guessable id is not pseudonymous). Without an explicit one, `resolve_salt` uses the persona home's
  salt file, made once with a random salt (mode 0600) so that later exports hash the same way; the
  manifest names the salt by `salt_id` (an HMAC of a fixed label under the salt), never the salt.
  Reasons then use the stored variant without evidence document ids (doc ids often embed user ids)
  and any raw user id left in a reason is replaced by its hash.
Data and manifest are one unit: both are written to temporary files in the target directory and
fsynced, and only then renamed into place (data, then manifest), so a full disk or a crash leaves the
previous export (or nothing), never a data file without its manifest. A disk that refuses the write
raises ExportWriteError (an ExportError) with the reason, for an `error:` line instead of a traceback.

Speed (1M rows in ~5 s, see benchmarks/segments.py --export-everyone): the rows come from one
statement through the store's `ro_stream` (plain value lists in batches, no QueryResult), each batch
becomes Arrow columns, and CSV / JSONL text is built column-wise with Arrow kernels, byte for byte
what csv.writer and json.dumps produced row by row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import tempfile
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C encoder json.dumps uses
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from engine.contracts import iso, to_utc
from engine.gc_pause import cyclic_gc_paused
from engine.segment.service import get_segment
from engine.store import GraphStore

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
COLUMNS = ("user_id", "segment_id", "reason", "confidence", "since", "status", "left_at")
BATCH = 100_000  # rows per streamed batch (ro_stream)
PAGE = 100_000  # rows per keyset page where the store cannot stream
SALT_FILE = "export-salt"  # in the persona home; one random salt per home


class ExportError(RuntimeError):
    """The export cannot be written (bad path, missing salt, unknown format)."""


class ExportWriteError(ExportError):
    """The disk refused the write (full, quota, file size limit); nothing was replaced."""


class ExportManifest(BaseModel):
    segment_id: str
    segment_name: str
    format: str
    file: str
    rows: int
    members: int = 0
    joined: int = 0
    left: int = 0
    since: str | None = None
    definition_hash: str
    segment_updated_at: str | None = None
    exported_at: str
    engine_version: str
    hashed_ids: bool
    hash_algorithm: str | None = None
    salt_id: str | None = None  # salt_id_of(salt): tells exports hashed with the same salt apart
    salt_source: str | None = None  # "home" (the persona home's salt file) or "given"
    sha256: str = ""
    columns: list[str] = Field(default_factory=lambda: list(COLUMNS))


# The member rows, streamed in one statement where the store can (`ro_stream`: one consistent read,
# no paging), otherwise paged by user id (keyset: every page is a fresh, bounded query). The same
# text runs on FalkorDB and Neo4j 5. Confidence is returned as is: FalkorDB's bulk path sends floats
# as text, Neo4j as floats, and _frame() reads both.
_EXPORT = """
MATCH (s:Segment {id: $id})<-[m:MEMBER_OF]-(u:User)
WHERE {where}
RETURN u.id AS user_id, {reason} AS reason, coalesce(m.confidence, 0.0) AS confidence, m.since AS since,
       m.left_at AS left_at
"""
_PAGE_TAIL = """ORDER BY user_id
LIMIT $limit
"""
_MEMBERS_WHERE = "m.left_at IS NULL"
_DELTA_WHERE = "(m.left_at IS NULL AND m.since >= $since) OR m.left_at >= $since"
_AFTER = "($after IS NULL OR u.id > $after)"


def export_statement(*, delta: bool, public_reason: bool, paged: bool = False) -> str:
    """The export query: current members, or the joined/left delta since `$since`.

    Paged: only users after `$after` (null for the first page), `$limit` of them in user id order.
    """
    reason = "coalesce(m.reason_public, m.reason, '')" if public_reason else "coalesce(m.reason, '')"
    where = _DELTA_WHERE if delta else _MEMBERS_WHERE
    if paged:
        where = f"({where}) AND {_AFTER}"
    statement = _EXPORT.replace("{where}", where).replace("{reason}", reason)
    return statement + _PAGE_TAIL if paged else statement


def engine_version() -> str:
    try:
        return metadata.version("persona-engine")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"


def hash_id(user_id: str, salt: str) -> str:
    return hmac.new(salt.encode(), user_id.encode(), hashlib.sha256).hexdigest()


_SHA256_BLOCK = 64


def id_hasher(salt: str) -> Callable[[str], str]:
    """hash_id(·, salt) with the keyed inner and outer SHA-256 states computed once (~2x faster)."""
    key = salt.encode()
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hashed(user_id: str) -> str:
        i = inner.copy()
        i.update(user_id.encode())
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return hashed



_SALT_ID_LABEL = b"persona-engine export salt id v1"


def salt_id_of(salt: str) -> str:
    """A short public name for a salt: HMAC(salt, fixed label), so it reveals nothing of the ids."""
    return "salt-" + hmac.new(salt.encode(), _SALT_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def known_salts(home: str | Path, *others: str | None) -> list[str]:
    """Every salt hashed exports of this home may have used: the home's own (if one was made) and
    the others given (the configured one, --salt): what forget needs to find hashed ids."""
    path = Path(home).expanduser() / SALT_FILE
    own = path.read_text(encoding="utf-8").strip() if path.is_file() else None
    return [s for s in (own, *others) if s]


def load_or_create_salt(home: str | Path) -> tuple[str, str]:
    """(salt, salt_id) from `<home>/export-salt`, created with 32 random bytes (hex) on first use.

    The file is created with mode 0600 and O_EXCL, so two concurrent first exports agree on one
    salt; later exports reuse it and their hashes stay comparable.
    """
    path = Path(home).expanduser() / SALT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        salt = path.read_text().strip()
    except OSError as exc:
        raise ExportError(f"cannot read or create the export salt file {path}: {exc.strerror or exc}") from None
    if not salt:
        raise ExportError(f"the export salt file {path} is empty: delete it to make a new salt "
                          "(hashes will change) or write the old salt back")
    return salt, salt_id_of(salt)


def resolve_salt(home: str | Path | None, salt: str | None = None) -> tuple[str, str, str]:
    """(salt, salt_id, source) for --hash-ids: an explicit salt (--salt / setting) wins, else the
    persona home's salt file."""
    if salt:
        return salt, salt_id_of(salt), "given"
    if home is None:
        raise ExportError("--hash-ids needs a salt: pass --salt, or a persona home to keep one in")
    value, sid = load_or_create_salt(home)
    return value, sid, "home"


def _normalise_since(since: str | datetime | None) -> str | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        return iso(to_utc(since))
    try:
        return iso(to_utc(datetime.fromisoformat(since.strip().replace("Z", "+00:00"))))
    except ValueError:
        raise ExportError(f"--since {since!r} is not an ISO-8601 timestamp") from None


def check_writable(out: Path) -> Path:
    """Resolve the output path and fail early, before any query, when it cannot be written."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a directory")
    parent = out.parent.resolve()
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: directory {parent} is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise ExportError(f"cannot write {out}: the file exists and is read-only")
    return parent / out.name


def _batches(
    store: GraphStore, *, delta: bool, public_reason: bool, params: dict[str, Any]
) -> Generator[list[Any], None, None]:
    """Rows [user_id, reason, confidence, since, left_at] in batches."""
    stream = getattr(store, "ro_stream", None)  # test doubles and foreign stores may lack it
    if stream is not None:
        yield from stream(export_statement(delta=delta, public_reason=public_reason), params, batch_size=BATCH)
        return
    statement = export_statement(delta=delta, public_reason=public_reason, paged=True)
    after = None
    while True:
        rows = store.ro_query(statement, {**params, "after": after, "limit": PAGE}).rows
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


@dataclass(frozen=True, slots=True)
class _Frame:
    """One batch of output rows as Arrow columns (the segment id is the writer's constant)."""

    user_id: pa.Array
    reason: pa.Array
    confidence: pa.Array
    since: pa.Array
    status: str | pa.Array  # one value for the whole batch, or one per row
    left_at: pa.Array

    @property
    def rows(self) -> int:
        return len(self.user_id)


def _strings(values: list[Any]) -> pa.Array:
    """A string column; empty strings read as missing, like the packed rows of old."""
    arr = pa.array(values, pa.string())
    empty = pc.equal(arr, "")
    if pc.any(empty).as_py():
        arr = pc.if_else(empty, pa.scalar(None, pa.string()), arr)
    return arr


def _floats(values: list[Any]) -> pa.Array:
    try:  # FalkorDB's bulk path: all text, parsed in one go
        return pa.array(values, pa.string()).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([float(v or 0.0) for v in values], pa.float64())


def _frame(
    rows: list[Any], since: str | None, hasher: Callable[[str], str] | None, counts: dict[str, int]
) -> _Frame:
    uids = [r[0] for r in rows]
    reasons = [r[1] or "" for r in rows]
    if hasher is not None:
        hashed = [hasher(u) for u in uids]
        # a raw id left in a reason (doc ids often embed it) is replaced by its hash
        reasons = [r.replace(u, h) if u in r else r for u, r, h in zip(uids, reasons, hashed, strict=True)]
        uids = hashed
    lefts = [r[4] for r in rows]
    status: str | pa.Array
    if since is None:
        status = "member"
        counts["member"] += len(rows)
    else:
        left = [bool(x) and x >= since for x in lefts]
        n_left = sum(left)
        counts["left"] += n_left
        counts["joined"] += len(rows) - n_left
        status = pc.if_else(pa.array(left, pa.bool_()), "left", "joined")
    return _Frame(
        user_id=pa.array(uids, pa.string()),
        reason=pa.array(reasons, pa.string()),
        confidence=_floats([r[2] for r in rows]),
        since=_strings([r[3] for r in rows]),
        status=status,
        left_at=_strings(lefts),
    )


# --- text formats, built column-wise with Arrow kernels -------------------------------------------
# Byte for byte what csv.writer (QUOTE_MINIMAL, "\r\n") and json.dumps(row, ensure_ascii=False) wrote
# row by row before; tests/unit/test_export_text.py checks that on hostile values.

_CSV_SPECIAL = '[,"\\r\\n]'
_JSON_SPECIAL = '["\\\\\\x00-\\x1f]'


def _csv_cells(arr: pa.Array) -> pa.Array:
    needs = pc.fill_null(pc.match_substring_regex(arr, _CSV_SPECIAL), False)
    if pc.any(needs).as_py():
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
        arr = pc.if_else(needs, quoted, arr)
    return pc.fill_null(arr, "")


def _csv_cell(value: str) -> str:
    return str(_csv_cells(pa.array([value], pa.string()))[0].as_py())


def _json_strings(arr: pa.Array) -> pa.Array:
    needs = pc.fill_null(pc.match_substring_regex(arr, _JSON_SPECIAL), False)
    if pc.any(needs).as_py():
        out = pa.array([None if v is None else encode_basestring(v) for v in arr.to_pylist()], pa.string())
    else:
        out = pc.binary_join_element_wise('"', arr, '"', "")
    return pc.fill_null(out, "null")


def _float_texts(arr: pa.Array, *, json_style: bool) -> pa.Array:
    """repr() of each float (what csv and json write), computed once per distinct value."""
    encoded = arr.dictionary_encode()
    values = encoded.dictionary.to_pylist()
    if json_style:
        texts = [repr(v) if math.isfinite(v) else _JSON_NONFINITE[repr(v)] for v in values]
    else:
        texts = [repr(v) for v in values]
    return pc.take(pa.array(texts, pa.string()), encoded.indices)


_JSON_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _text_bytes(arr: pa.Array) -> memoryview:
    """The UTF-8 bytes of a string array without nulls, all values back to back."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return memoryview(arr.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


_PARQUET_SCHEMA = pa.schema([
    ("user_id", pa.string()), ("segment_id", pa.string()), ("reason", pa.string()),
    ("confidence", pa.float64()), ("since", pa.string()), ("status", pa.string()),
    ("left_at", pa.string()),
])


class _Writer:
    """Streams frames into a temporary file in one of the formats."""

    def __init__(self, fmt: str, fh: Any, segment_id: str) -> None:
        self.fmt = fmt
        self.fh = fh
        self.segment_id = segment_id
        self.parquet: Any = None
        if fmt == "csv":
            fh.write((",".join(COLUMNS) + "\r\n").encode())
            self.segment_text = _csv_cell(segment_id)
        elif fmt == "jsonl":
            self.segment_text = encode_basestring(segment_id)

    def write(self, frame: _Frame) -> None:
        n = frame.rows
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            status = frame.status
            table = pa.Table.from_arrays([
                frame.user_id, pa.repeat(pa.scalar(self.segment_id, pa.string()), n), frame.reason,
                frame.confidence, frame.since,
                pa.repeat(pa.scalar(status, pa.string()), n) if isinstance(status, str) else status, frame.left_at,
            ], schema=_PARQUET_SCHEMA)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.fh, _PARQUET_SCHEMA, compression="zstd")
            self.parquet.write_table(table)
            return
        if n == 0:
            return
        if self.fmt == "csv":
            status = frame.status if isinstance(frame.status, str) else _csv_cells(frame.status)
            lines = pc.binary_join_element_wise(
                _csv_cells(frame.user_id), self.segment_text, _csv_cells(frame.reason),
                _float_texts(frame.confidence, json_style=False), _csv_cells(frame.since), status,
                _csv_cells(frame.left_at), ",",
            )
            lines = pc.binary_join_element_wise(lines, "\r\n", "")
        else:
            status = f'"{frame.status}"' if isinstance(frame.status, str) else _json_strings(frame.status)
            lines = pc.binary_join_element_wise(
                '{"user_id": ', _json_strings(frame.user_id), ', "segment_id": ', self.segment_text,
                ', "reason": ', _json_strings(frame.reason),
                ', "confidence": ', _float_texts(frame.confidence, json_style=True),
                ', "since": ', _json_strings(frame.since), ', "status": ', status,
                ', "left_at": ', _json_strings(frame.left_at), "}\n", "",
            )
        self.fh.write(_text_bytes(lines))

    def close(self) -> None:
        if self.fmt == "parquet":
            if self.parquet is None:
                empty = pa.array([], pa.string())
                self.write(_Frame(empty, empty, pa.array([], pa.float64()), empty, "member", empty))
            self.parquet.close()


def _write_temp(target: Path, produce: Callable[[Any], None], temps: list[Path]) -> str:
    """Run produce(binary file) on a temp file next to target and fsync it; returns its sha256.

    The temp file is appended to `temps` as soon as it exists, so the caller can remove it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temps.append(Path(tmp))
    with os.fdopen(fd, "wb") as fh:
        produce(fh)
        fh.flush()
        os.fsync(fh.fileno())
    digest = hashlib.sha256()
    with open(tmp, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable (a crash after this keeps both new names)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the renames still happened
    finally:
        os.close(fd)


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def export_segment(
    store: GraphStore,
    segment_id: str,
    *,
    fmt: str,
    out: str | Path,
    hash_ids: bool = False,
    salt: str | None = None,
    salt_home: str | Path | None = None,
    since: str | datetime | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ExportManifest:
    """Write the segment's members (or the joined/left delta since `since`) and a manifest.

    With `hash_ids`, ids are hashed with `salt`, or without one with the salt kept in `salt_home`
    (the persona home; created on first use). Raises SegmentNotFound for an unknown segment and
    ExportError for a bad format, missing salt or an unwritable path, in every case before anything
    is written; ExportWriteError when the disk refuses the write, leaving no new file behind.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    salt_id = salt_source = None
    if hash_ids:
        salt, salt_id, salt_source = resolve_salt(salt_home, salt)
    target = check_writable(Path(out))
    since_ts = _normalise_since(since)
    info = get_segment(store, segment_id)
    params: dict[str, Any] = {"id": segment_id}
    if since_ts is not None:
        params["since"] = since_ts
    counts = {"rows": 0, "member": 0, "joined": 0, "left": 0}
    total = info.size if since_ts is None else None
    hasher = id_hasher(salt or "") if hash_ids else None

    def produce(fh: Any) -> None:
        writer = _Writer(fmt, fh, segment_id)
        batches = _batches(store, delta=since_ts is not None, public_reason=hash_ids, params=params)
        with closing(batches), cyclic_gc_paused():  # closing: a failed write drops the stream's connection now
            for rows in batches:
                writer.write(_frame(rows, since_ts, hasher, counts))
                counts["rows"] += len(rows)
                if progress is not None:
                    progress(counts["rows"], total)
        writer.close()

    def make_manifest(digest: str) -> ExportManifest:
        return ExportManifest(
            segment_id=segment_id,
            segment_name=info.name,
            format=fmt,
            file=target.name,
            rows=counts["rows"],
            members=counts["member"] + counts["joined"],
            joined=counts["joined"],
            left=counts["left"],
            since=since_ts,
            definition_hash=info.definition_hash,
            segment_updated_at=info.last_run_at,
            exported_at=iso(datetime.now(UTC)),
            engine_version=engine_version(),
            hashed_ids=hash_ids,
            hash_algorithm="hmac-sha256" if hash_ids else None,
            salt_id=salt_id,
            salt_source=salt_source,
            sha256=digest,
        )

    meta_target = manifest_path(target)
    temps: list[Path] = []
    try:
        manifest = make_manifest(_write_temp(target, produce, temps))
        text = json.dumps(manifest.model_dump(), indent=2, ensure_ascii=False).encode()
        _write_temp(meta_target, lambda fh: fh.write(text), temps)
        # Both complete and on disk: only now does either replace what a reader may see.
        os.replace(temps[0], target)
        os.replace(temps[1], meta_target)
        temps.clear()
        _fsync_dir(target.parent)
    except OSError as exc:  # ENOSPC, EDQUOT, EFBIG (pyarrow's IO errors are OSErrors too)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ExportWriteError(
            f"cannot write {target}: {reason} (after {counts['rows']} rows); no new file was left "
            "and any previous export with this name is unchanged"
        ) from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return manifest
