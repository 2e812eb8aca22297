"""`persona worker`, `persona jobs [ID]`, `persona jobs retry ID`: the scale-out ingest cluster.

Workers and producers reach the broker from PERSONA_BROKER_URL; by default the embedded Redis
under the persona home (database 1; the graph is database 0), started or reused like every
other command starts the database.
"""

from __future__ import annotations

import time

import redis
import typer
from rich.table import Table

from engine.cli._util import (
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    err,
    fail,
    list_errors,
    print_json,
    progress_bar,
    settings_of,
)
from engine.store import StoreError


def worker(
    ctx: typer.Context,
    concurrency: int = typer.Option(
        1, "--concurrency", "-c", min=1, help="Worker processes (each loads its extractor once)"),
    queues: str | None = typer.Option(
        None, "--queues", "-Q", help="Comma-separated queues [default PERSONA_WORKER_QUEUE or 'persona']"),
    loglevel: str = typer.Option("INFO", "--loglevel", help="Celery log level"),
    name: str | None = typer.Option(None, "--name", "-n", help="Node name (default persona-<pid>@<host>)"),
) -> None:
    """Run a Celery worker for queued ingests (`persona ingest* FILE --queue`) until stopped."""
    from engine.distributed import start_worker

    settings = settings_of(ctx)
    names = [q.strip() for q in (queues or settings.worker.queue).split(",") if q.strip()]
    try:
        start_worker(settings, concurrency=concurrency, queues=names, loglevel=loglevel, name=name)
    except (StoreError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


def _table(status) -> Table:  # noqa: ANN001 - JobStatus
    r, m = status.report, status.meta
    table = Table(title=f"job {m.id}: {m.kind} from {m.source}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rate = status.lines_per_second
    rows: list[tuple[str, object]] = [
        ("batches", f"{status.batches_finished} of {m.batches}"
                    f"{'' if m.enqueued else ' (enqueuing failed)' if m.failed else ' (still enqueuing)'}"),
        *((f"batches {s}", n) for s, n in status.states.items()),
        ("lines read", f"{r.lines} of {m.rows}"), ("valid", r.accepted), ("failed", r.failed),
        ("warnings", r.warnings), ("users", r.users), ("documents", r.documents),
        ("facts applied" if m.kind != "events" else "new events", r.applied), ("edges written", r.edges_written),
        ("lines/s", f"{rate:.0f}" if rate else "-"),
    ]
    rows += [(f"conflicts: {k}", v) for k, v in sorted(r.conflicts.items())]
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def _jobs_list(ctx: typer.Context, as_json: bool) -> None:
    from engine.distributed import job_store

    store = job_store(settings_of(ctx))
    statuses = [store.status(m.id) for m in store.list()]
    statuses = [s for s in statuses if s is not None]
    if as_json:
        print_json([{"id": s.meta.id, "kind": s.meta.kind, "source": s.meta.source, "created": s.meta.created,
                     "batches": s.meta.batches, "states": s.states, "finished": s.finished} for s in statuses])
        return
    table = Table(title="jobs")
    for col in ("id", "kind", "source", "created", "batches", "done", "dead", "finished"):
        table.add_column(col)
    for s in statuses:
        table.add_row(s.meta.id, s.meta.kind, s.meta.source, s.meta.created[:19], str(s.meta.batches),
                      str(s.states["done"]), str(s.states["dead"]), "yes" if s.finished else "no")
    console.print(table)


def _show(ctx: typer.Context, job_id: str, wait: bool, as_json: bool, interval: float) -> None:
    from engine.distributed import job_store

    store = job_store(settings_of(ctx))
    status = store.status(job_id)
    if status is None:
        fail(f"no job {job_id!r} (see `persona jobs`)", EXIT_FAILED)
    if wait and not status.finished:
        with progress_bar() as bar:
            task = bar.add_task(f"job {job_id}", total=max(status.meta.batches, 1))
            while not status.finished:
                bar.update(task, total=max(status.meta.batches, 1), completed=status.batches_finished,
                           description=f"job {job_id}: {status.states['running']} running, "
                                       f"{status.states['retrying']} retrying, {status.states['dead']} dead")
                time.sleep(interval)
                status = store.status(job_id) or status
            bar.update(task, completed=status.batches_finished)
    if as_json:
        print_json({**status.model_dump(mode="json"), "failed": status.report.failed,
                    "batches_finished": status.batches_finished, "lines_per_second": status.lines_per_second})
    else:
        list_errors(status.report.errors)
        for letter in status.dead:
            err.print(f"[red]batch {letter.batch} dead after {letter.attempts} attempts: {letter.reason}[/red]",
                      markup=True, highlight=False)
        for batch, why in sorted(status.retrying.items()):
            err.print(f"[yellow]batch {batch} retrying: {why}[/yellow]", markup=True, highlight=False)
        console.print(_table(status))
        if status.dead:
            err.print(f"{len(status.dead)} batch(es) dead-lettered: `persona jobs retry {job_id}` sends them again")
        if status.meta.failed:
            err.print(f"[red]job {job_id} failed: {status.meta.failed}[/red]", markup=True, highlight=False)
    if status.finished and (status.report.failed or status.dead or status.meta.failed):
        raise typer.Exit(EXIT_FAILED)


def jobs(
    ctx: typer.Context,
    args: list[str] | None = typer.Argument(None, help="[ID] to show one job, or `retry ID`"),
    wait: bool | None = typer.Option(
        None, "--wait/--no-wait", help="Follow with a live bar until the job finishes [default: on a terminal]"),
    interval: float = typer.Option(0.5, "--interval", min=0.05, help="Seconds between refreshes while waiting"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Queued ingest jobs: list them, show one (progress, counts per state, throughput, failures,
    dead letters), or `retry ID` to send a job's dead-lettered batches again.

    Exit code 1 when a finished job has failed lines or dead batches."""
    args = args or []
    try:
        if not args:
            _jobs_list(ctx, as_json)
        elif args[0] == "retry":
            if len(args) != 2:
                fail("usage: persona jobs retry ID", EXIT_USAGE)
            _retry(ctx, args[1], as_json)
        elif len(args) == 1:
            _show(ctx, args[0], console.is_terminal if wait is None else wait, as_json, interval)
        else:
            fail("usage: persona jobs [ID] | persona jobs retry ID", EXIT_USAGE)
    except StoreError as exc:
        fail(str(exc), EXIT_USAGE)
    except (redis.RedisError, OSError) as exc:
        fail(f"job records unreachable: {exc}", EXIT_USAGE)


def _retry(ctx: typer.Context, job_id: str, as_json: bool) -> None:
    from engine.distributed import retry_dead

    try:
        sent = retry_dead(settings_of(ctx), job_id)
    except KeyError:
        fail(f"no job {job_id!r} (see `persona jobs`)", EXIT_FAILED)
    if as_json:
        print_json({"job_id": job_id, "requeued": sent})
    else:
        console.print(f"job {job_id}: {len(sent)} dead batch(es) sent again" + (f": {sent}" if sent else ""))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("jobs")(jobs)
