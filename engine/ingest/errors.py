"""One error model for every way data enters: a bad line never stops the file."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T")


class LineError(BaseModel):
    """A problem with one input line (JSONL, CSV) or row (Parquet), or one item of an API body.

    ``field`` is ``"record"`` when the line as a whole is bad. ``fatal=False`` is a warning: the
    line still goes in (a text that was chunked or truncated).
    """

    line: int | None = None
    field: str = "record"
    message: str
    doc_id: str | None = None
    fatal: bool = True

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"doc {self.doc_id or '?'}"
        kind = "" if self.fatal else "warning: "
        return f"{where}: {self.field}: {kind}{self.message}"


def from_validation(exc: ValidationError, line: int | None, doc_id: str | None = None) -> LineError:
    """The first problem pydantic found, worded the same for every input."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "record"
    kind = first.get("type")
    if kind == "missing":
        message = "missing"
    elif kind == "extra_forbidden":
        message = "unknown field"
    else:
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return LineError(line=line, field=field, message=message, doc_id=doc_id)


# What every reader yields: the 1-based line (or row, or body item) and what it held.
Numbered = tuple[int | None, T | LineError]
