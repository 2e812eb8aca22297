"""`persona db start | stop | status`: the embedded FalkorDB of this persona home."""

from __future__ import annotations

import typer

from engine.cli._util import EXIT_USAGE, console, fail, print_json, settings_of
from engine.store import EmbeddedFalkorDB, StoreError

db_app = typer.Typer(help="Start, stop and inspect the embedded FalkorDB.", no_args_is_help=True)


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded FalkorDB for this home (or reuse the running one)."""
    server = EmbeddedFalkorDB(settings_of(ctx).home)
    try:
        status = server.start()
    except StoreError as exc:
        fail(str(exc), EXIT_USAGE)
    console.print(f"FalkorDB running: pid {status.pid}, port {status.port}, data {status.data_dir}")


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded FalkorDB cleanly (data is kept)."""
    stopped = EmbeddedFalkorDB(settings_of(ctx).home).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show whether the embedded FalkorDB is running, its pid, port and data dir."""
    status = EmbeddedFalkorDB(settings_of(ctx).home).status()
    if as_json:
        print_json(status.model_dump())
        return
    state = "[green]running[/green]" if status.running else "[yellow]stopped[/yellow]"
    console.print(f"{state} pid={status.pid} port={status.port} data={status.data_dir}")
