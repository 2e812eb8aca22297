"""`persona serve`: the HTTP API and explorer UI with uvicorn (registered by engine/cli.py)."""

from __future__ import annotations

import typer

from engine.config import Settings


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback by default)"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
) -> None:
    """Serve the HTTP API (/docs) and the graph explorer UI (/)."""
    import uvicorn

    from engine.api.app import create_app
    from engine.api.options import ApiOptions
    from engine.store import StoreError, open_store

    root = ctx.find_root().obj if ctx is not None else None
    settings = root if isinstance(root, Settings) else Settings.from_env()
    try:
        store = open_store(settings)  # fail here with a clear message, not inside uvicorn
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Requests must name localhost, 127.0.0.1, ::1 or the interface bound (DNS rebinding).
    app = create_app(settings, store, options=ApiOptions.from_env().with_bind_host(host))
    typer.echo(f"Persona Engine explorer: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        store.close()
