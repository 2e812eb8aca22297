"""Committed JSON-lines files of pydantic rows, read with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

Row = TypeVar("Row", bound=BaseModel)


def read_rows(path: Path, model: type[Row], error: type[ValueError]) -> list[Row]:
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(model.model_validate_json(line))
                except ValueError as exc:
                    raise error(f"{path}: line {n}: {exc}") from None
    return rows
