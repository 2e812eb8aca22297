"""`persona cypher`: run Cypher, read-only unless --write."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from engine.cli._util import EXIT_FAILED, connect, console, fail, print_json
from engine.store import GraphNode, OutboundAccessRefused, ReadOnlyViolation, StoreError


def _cell(value: Any) -> Any:
    if isinstance(value, GraphNode):
        return {"labels": value.labels, **value.properties}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, list):
        return [_cell(v) for v in value]
    return value


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE (VALUE may be JSON)", param_hint="--param")
        name, raw = item.split("=", 1)
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def cypher(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="A Cypher statement"),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE (JSON values allowed)"),
    write: bool = typer.Option(False, "--write", help="Allow writes (default: read-only)"),
    timeout_ms: int = typer.Option(30_000, help="Read-only query timeout in milliseconds"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run Cypher; read-only unless --write (the database itself refuses writes on that path)."""
    store = connect(ctx)
    params = _parse_params(param)
    try:
        result = store.query(query, params) if write else store.ro_query(query, params, timeout_ms)
    except OutboundAccessRefused as exc:
        fail(str(exc), EXIT_FAILED)
    except ReadOnlyViolation as exc:
        fail(f"{exc}; add --write to modify the graph", EXIT_FAILED)
    except StoreError as exc:
        fail(str(exc), EXIT_FAILED)
    rows = [[_cell(v) for v in row] for row in result.rows]
    if as_json:
        print_json({"columns": result.columns, "rows": rows})
        return
    table = Table()
    for col in result.columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s)")
