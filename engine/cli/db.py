"""`persona db start | stop | status`: the embedded FalkorDB of this persona home."""

from __future__ import annotations

import typer

from engine.cli._util import EXIT_USAGE, connect, console, fail, load_bar, print_json, settings_of
from engine.store import EmbeddedFalkorDB, StoreError

db_app = typer.Typer(help="Start, stop and inspect the embedded FalkorDB.", no_args_is_help=True)


@db_app.command("start")
def db_start(
    ctx: typer.Context,
    wait_stall: float | None = typer.Option(
        None, "--wait-stall", min=1, help="Give up after this many seconds without load progress "
        "[PERSONA_DB_START_STALL_S; default 120]; a large log replays for as long as it makes progress"),
) -> None:
    """Start the embedded FalkorDB for this home (or reuse the running one), showing load progress."""
    settings = settings_of(ctx)
    server = EmbeddedFalkorDB(settings.home, settings.db)
    with load_bar() as on_progress:
        try:
            status = server.start(stall_timeout_s=wait_stall or settings.db.start_stall_s, on_progress=on_progress)
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
    """Show whether the embedded FalkorDB is running (or still loading), its pid, port, data dir and log size."""
    server = EmbeddedFalkorDB(settings_of(ctx).home)
    status = server.status()
    log_mb = round(server.log_size_bytes() / 1e6, 2)
    if as_json:
        print_json({**status.model_dump(), "log_mb": log_mb})
        return
    state = ("[green]running[/green]" if status.running else
             "[yellow]loading[/yellow]" if status.loading else "[yellow]stopped[/yellow]")
    console.print(f"{state} pid={status.pid} port={status.port} data={status.data_dir} log={log_mb} MB")


@db_app.command("compact")
def db_compact(
    ctx: typer.Context,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the rewrite is on disk"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rewrite the database's append-only log as one snapshot (fast restarts; deleted data leaves the disk)."""
    report = connect(ctx).compact(wait=wait)
    if as_json:
        print_json(report.model_dump())
        return
    console.print("compaction: " + ", ".join(f"{k}={v}" for k, v in report.model_dump().items()))
