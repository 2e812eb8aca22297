"""`persona serve`: the HTTP API and explorer UI with uvicorn."""

from __future__ import annotations

from collections.abc import Sequence

import typer

from engine.cli._util import EXIT_USAGE, fail, settings_of
from engine.config import Settings


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback by default)"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Another Host header name to serve (repeatable; PERSONA_API_ALLOWED_HOSTS)"
    ),
) -> None:
    """Serve the HTTP API (/docs) and the graph explorer UI (/)."""
    run_server(settings_of(ctx), host=host, port=port, log_level=log_level, allow_hosts=allow_host)


def run_server(
    settings: Settings, *, host: str, port: int, log_level: str = "info", allow_hosts: Sequence[str] = ()
) -> None:
    """Serve until interrupted. Plain arguments: `persona serve` and `persona demo` both call this
    (a Typer command called as a function keeps its `typer.Option` defaults)."""
    import uvicorn

    from engine.api.app import create_app
    from engine.store import StoreError, open_store

    try:
        store = open_store(settings)  # fail here with a clear message, not inside uvicorn
    except StoreError as exc:
        fail(str(exc), EXIT_USAGE)
    # Requests must name localhost, 127.0.0.1, ::1, a listed name or the interface bound (DNS rebinding).
    api = settings.api.model_copy(update={"allowed_hosts": [*settings.api.allowed_hosts, *allow_hosts]})
    app = create_app(settings, store, options=api.with_bind_host(host))
    typer.echo(f"Persona Engine explorer: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        store.close()
