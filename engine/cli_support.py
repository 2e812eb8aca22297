"""What every `persona` command module shares: root settings, the store, JSON output."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from engine.config import Settings
from engine.store import GraphStore, StoreError, open_store

err = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings.from_env()


def connect(ctx: typer.Context) -> GraphStore:
    try:
        return open_store(settings_of(ctx))
    except StoreError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
