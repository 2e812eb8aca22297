"""Raw input rows: JSONL, CSV or Parquet → (line number, mapping | LineError).

Decoding problems stay with their line: invalid UTF-8, a byte-order mark, bad JSON, a line that
is not an object, a NUL character in any field, or values nested deeper than MAX_NESTING each
become a LineError and the file goes on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from engine.ingest.errors import LineError, Numbered

T = TypeVar("T")

FORMATS = ("jsonl", "csv", "parquet")
_BOM = b"\xef\xbb\xbf"
# No input format nests values this deep; deeper lines would exhaust the interpreter's recursion
# (the JSON decoder, validation, the queue's serialiser) and take the whole run down with them.
MAX_NESTING = 32
# A line longer than this holds more than any input keeps (a record's text is cut after
# MAX_CHUNKS × MAX_TEXT characters, a fact's after MAX_TEXT): refused whole, in-process and on the
# queue alike, before it is decoded.
MAX_LINE_BYTES = 8 * 1024 * 1024
Row = tuple[int, "dict[str, Any] | LineError"]


def format_of(path: Path, fmt: str | None = None) -> str:
    """The input format from an explicit name or the file suffix."""
    if fmt:
        name = fmt.strip().lower()
        if name not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return name
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ValueError(f"unsupported input {path.name}: use .jsonl, .csv or .parquet")


def nul_field(data: dict[str, Any]) -> LineError | None:
    """NUL cannot travel through the graph stores' query protocol: refuse it by field."""
    for key, value in data.items():
        if isinstance(value, str) and "\x00" in value:
            return LineError(field=str(key), message="contains a NUL character (binary content)")
    return None


def too_deep(data: Any, limit: int = MAX_NESTING) -> bool:
    """Whether lists and mappings nest more than `limit` levels (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _too_deep_error(line: int) -> LineError:
    return LineError(line=line, message=f"too deeply nested (more than {MAX_NESTING} levels)")


def _checked(line: int, data: Any) -> dict[str, Any] | LineError:
    if not isinstance(data, dict):
        return LineError(line=line, message=f"expected a JSON object, got {type(data).__name__}")
    if too_deep(data):
        return _too_deep_error(line)
    bad = nul_field(data)
    if bad is not None:
        return bad.model_copy(update={"line": line})
    return data


def parse_json_line(raw: bytes | str, line: int) -> dict[str, Any] | LineError:
    """One JSONL line (bytes as read, or text from an API body) → mapping or error."""
    if isinstance(raw, bytes):
        try:
            raw = raw.removeprefix(_BOM).decode("utf-8")
        except UnicodeDecodeError as exc:
            return LineError(line=line, message=f"invalid UTF-8 at byte {exc.start}")
    try:
        data = json.loads(raw.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        return LineError(line=line, message=f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:  # nested beyond what the decoder follows
        return _too_deep_error(line)
    return _checked(line, data)


def read_jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if len(raw) > MAX_LINE_BYTES:
                yield line, LineError(line=line, message=f"line of {len(raw):,} bytes is over the limit of "
                                                         f"{MAX_LINE_BYTES:,} bytes per line")
            elif raw.strip() and raw.strip() != _BOM:
                yield line, parse_json_line(raw, line)


def read_csv(path: Path) -> Iterator[Row]:
    # surrogateescape keeps invalid bytes visible as lone surrogates, reported per row below
    csv.field_size_limit(10_000_000)
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    yield line, LineError(line=line, message="more values than header columns")
                    continue
                if any(isinstance(v, str) and any(0xDC80 <= ord(c) <= 0xDCFF for c in v) for v in row.values()):
                    yield line, LineError(line=line, message="invalid UTF-8")
                    continue
                # an empty cell is an absent value, as in JSON without the key
                data = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
                yield line, _checked(line, data)
        except csv.Error as exc:
            yield reader.line_num, LineError(line=reader.line_num, message=f"bad CSV: {exc}")


def read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for data in batch.to_pylist():
            row += 1
            yield row, _checked(row, {k: v for k, v in data.items() if v is not None})


def read_rows(path: str | Path, fmt: str | None = None) -> Iterator[Row]:
    """Every non-blank line/row of the file, numbered from 1."""
    path = Path(path)
    reader = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}[format_of(path, fmt)]
    yield from reader(path)


def numbered(items: Iterable[Any]) -> Iterator[Row]:
    """Already-parsed items (an API body) numbered from 1 like lines, checked like lines."""
    for line, item in enumerate(items, start=1):
        yield line, _checked(line, item)


def validated(rows: Iterable[Row], parse: Callable[[dict[str, Any], int | None], T | LineError]) -> Iterator[
    Numbered[T]
]:
    """Each row through `parse` (a model's validation); bad rows keep their error."""
    for line, row in rows:
        yield line, row if isinstance(row, LineError) else parse(row, line)


def count_rows(path: str | Path) -> int | None:
    """Rows to expect (for progress bars); None when counting would mean reading the file twice."""
    path = Path(path)
    try:
        kind = format_of(path)
    except ValueError:
        return None
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):  # unreadable: reading it says why, with the job or line
            return None
    with path.open("rb") as handle:
        lines = sum(1 for raw in handle if raw.strip())
    return lines - 1 if kind == "csv" else lines


