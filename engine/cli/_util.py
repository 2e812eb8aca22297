"""What every `persona` command module shares: settings from the root context, the store, output,
progress bars, the error listing and the exit-code convention.

Exit codes: 0 all good · 1 some records failed (or the thing asked for does not exist) ·
2 usage or configuration error (bad option, unreachable store, missing file or data).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from engine.config import Settings
from engine.store import GraphStore, StoreError, open_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_LISTED_ERRORS = 50

console = Console()
err = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings.from_env()


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `error: message` on stderr and leave with `code`."""
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def connect(ctx: typer.Context) -> GraphStore:
    """The configured store; an embedded database that is still loading shows a progress bar."""
    with load_bar() as on_progress:
        try:
            return open_store(settings_of(ctx), on_progress=on_progress)
        except StoreError as exc:
            fail(str(exc), EXIT_USAGE)


@contextmanager
def load_bar() -> Iterator[Callable[[Any], None]]:
    """A callback for the database's load progress; the bar appears only if there is loading to show."""
    bar: Progress | None = None
    task = None

    def on_progress(step: Any) -> None:
        nonlocal bar, task
        if not getattr(step, "loading", False):
            return
        if bar is None:
            bar = Progress(TextColumn("loading the database"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                           TimeElapsedColumn(), console=err)
            bar.start()
            task = bar.add_task("load", total=max(int(step.total_bytes or 0), 1))
        bar.update(task, completed=int(step.loaded_bytes or 0))

    try:
        yield on_progress
    finally:
        if bar is not None:
            bar.stop()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def progress_bar(total_known: bool = True) -> Progress:
    """A bar on stderr (stdout stays clean for --json)."""
    columns = [SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn()]
    columns += [MofNCompleteColumn()] if total_known else [TextColumn("{task.completed}")]
    return Progress(*columns, TimeElapsedColumn(), console=err)


def list_errors(errors: Sequence[object], limit: int = MAX_LISTED_ERRORS) -> None:
    """Each error on its own line on stderr (warnings in yellow), at most `limit` of them."""
    for e in errors[:limit]:
        colour = "yellow" if getattr(e, "fatal", True) is False else "red"
        err.print(f"[{colour}]{e}[/{colour}]", markup=True, highlight=False)
    if len(errors) > limit:
        err.print(f"… and {len(errors) - limit} more (use --json or --errors FILE for all)")
