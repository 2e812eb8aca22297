"""`persona ingest`, `persona ingest-facts`, `persona ingest-events`: one input each, one report.

All three print the same summary (or `--json`), list bad lines as `line N: field: message`, can
write every error to a JSONL file (`--errors FILE`), and exit 1 when any line failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from engine.cli._util import (
    EXIT_FAILED,
    EXIT_USAGE,
    connect,
    console,
    fail,
    list_errors,
    print_json,
    progress_bar,
    settings_of,
)
from engine.ingest import count_rows, format_of
from engine.pipeline import EventBatchReport, IngestReport
from engine.store import GraphStore

FILE_HELP = "Input file: .jsonl, .csv or .parquet (or --format)"


def _check_format(file: Path, fmt: str | None) -> None:
    try:
        format_of(file, fmt)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _summary(report: IngestReport) -> Table:
    table = Table(title=f"ingest {report.kind}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    noun = {"records": "records", "facts": "facts", "events": "events"}[report.kind]
    rows: list[tuple[str, object]] = [
        ("lines read", report.lines), (f"valid {noun}", report.accepted), ("failed", report.failed),
        ("warnings", report.warnings), ("users", report.users), ("documents", report.documents),
        ("facts applied" if report.kind != "events" else "new events", report.applied),
        ("edges written", report.edges_written),
    ]
    if report.kind == "records":
        rows += [(f"documents {s}", report.docs.get(s, 0)) for s in ("ok", "empty", "duplicate", "failed")]
        rows += [("documents from cache", report.cached), ("facts kept", report.facts_extracted)]
        rows += [(f"facts dropped: {r}", n) for r, n in sorted(report.facts_dropped.items())]
        rows += [("LLM calls", report.llm_calls), ("prompt tokens", report.prompt_tokens),
                 ("completion tokens", report.completion_tokens)]
    rows += [(f"conflicts: {k}", v) for k, v in sorted(report.conflicts.items())]
    rows += [("seconds", f"{report.seconds:.1f}")]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def finish(report: IngestReport, *, as_json: bool, errors_file: Path | None) -> None:
    """Print the report, write the error file, exit 1 when anything failed."""
    if errors_file is not None:
        with errors_file.open("w", encoding="utf-8") as fh:
            for e in report.errors:
                fh.write(e.model_dump_json() + "\n")
    if as_json:
        print_json({**report.model_dump(mode="json"), "failed": report.failed})
    else:
        if errors_file is None:
            list_errors(report.errors)
        console.print(_summary(report))
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


def _with_bar(file: Path, label: str, run: Callable[[Callable[[int], None]], IngestReport]) -> IngestReport:
    total = count_rows(file)
    with progress_bar(total is not None) as bar:
        task = bar.add_task(label, total=total)
        return run(lambda n: bar.advance(task, n))


FMT_HELP = "jsonl, csv or parquet (default: from the suffix)"
ERRORS_HELP = "Write every error (JSONL) here"


QUEUE_HELP = "Send the file to the worker queue (`persona worker`) in batches and print the job id"


def _enqueue(ctx: typer.Context, file: Path, fmt: str | None, kind: str, batch: int, as_json: bool,
             options: object = None) -> None:
    """Split the file into per-user-partition batches on the queue; print the job id."""
    import redis

    from engine.distributed import BatchOptions, EnqueueError, enqueue_file
    from engine.store import StoreError

    settings = settings_of(ctx)
    total = count_rows(file)
    try:
        with progress_bar(total is not None) as bar:
            task = bar.add_task(f"enqueuing {file.name}", total=total)
            meta = enqueue_file(settings, kind, file, fmt=fmt, batch_size=batch,  # type: ignore[arg-type]
                                options=options if isinstance(options, BatchOptions) else None,
                                progress=lambda n: bar.advance(task, n))
    except (StoreError, ValueError, redis.RedisError, OSError, EnqueueError) as exc:
        fail(f"could not enqueue: {exc}", EXIT_USAGE)
    if as_json:
        print_json({"job_id": meta.id, "batches": meta.batches, "rows": meta.rows, "queue": meta.queue})
    else:
        console.print(f"job {meta.id}: {meta.rows} rows in {meta.batches} batches on queue {meta.queue!r}; "
                      f"follow it with `persona jobs {meta.id}`")


def _ingest_file(ctx: typer.Context, file: Path, fmt: str | None, kind: str, batch: int,
                 errors_file: Path | None, as_json: bool, queue: bool = False, refresh: bool = False) -> None:
    """Fact lines or events: read → pipeline → report, with a progress bar (or onto the queue).

    `refresh` (events): after each batch, refresh its users in the event-driven segments."""
    from engine import ingest, pipeline

    _check_format(file, fmt)
    if queue:
        _enqueue(ctx, file, fmt, kind, batch, as_json)
        return
    settings, store = settings_of(ctx), connect(ctx)
    reader, run = {
        "facts": (ingest.read_fact_lines, pipeline.ingest_facts),
        "events": (ingest.read_events, pipeline.ingest_events),
    }[kind]
    extra = {"after_batch": _segment_refresher(store)} if refresh else {}
    report = _with_bar(file, f"ingesting {kind}", lambda p: run(
        store, settings, reader(file, fmt), batch=batch, progress=p, **extra))
    finish(report, as_json=as_json, errors_file=errors_file)


def ingest_facts(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help=FILE_HELP),
    fmt: str | None = typer.Option(None, "--format", help=FMT_HELP),
    batch_size: int = typer.Option(5000, min=1, help="Facts per write batch"),
    errors_file: Path | None = typer.Option(None, "--errors", help=ERRORS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    queue: bool = typer.Option(False, "--queue", help=QUEUE_HELP),
) -> None:
    """Ingest facts (README, 'Facts input'); bad lines are reported, the rest goes in. Exit 1 if any failed."""
    _ingest_file(ctx, file, fmt, "facts", batch_size, errors_file, as_json, queue)


STREAM_HELP = "Input file: .jsonl or .csv (or --format), or - for JSONL events on standard input (a live stream)"


def _ingest_event_stream(ctx: typer.Context, batch: int, flush_seconds: float, refresh: bool,
                         errors_file: Path | None, as_json: bool) -> None:
    """Events from standard input until it closes, each batch written as it fills or the stream goes quiet."""
    import sys

    from engine.ingest.events import read_event_stream
    from engine.pipeline import ingest_events as run

    settings, store = settings_of(ctx), connect(ctx)
    refresher = _segment_refresher(store) if refresh else None
    with progress_bar(False) as bar:
        task = bar.add_task("ingesting events from standard input", total=None)
        report = run(store, settings, read_event_stream(sys.stdin.buffer, flush_seconds), batch=batch,
                     progress=lambda n: bar.advance(task, n), after_batch=refresher)
    finish(report, as_json=as_json, errors_file=errors_file)


def _segment_refresher(store: GraphStore) -> Callable[[EventBatchReport], None]:
    """After each batch: the memberships of its users in the segments events can change."""
    from engine.segment import refresh_users

    def refresh(result: EventBatchReport) -> None:
        if result.users:
            refresh_users(store, result.users)

    return refresh


def ingest_events(
    ctx: typer.Context,
    file: Path = typer.Argument(..., dir_okay=False, allow_dash=True, help=STREAM_HELP),
    fmt: str | None = typer.Option(None, "--format", help=FMT_HELP),
    batch_size: int = typer.Option(5000, min=1, help="Events per write batch"),
    errors_file: Path | None = typer.Option(None, "--errors", help=ERRORS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    queue: bool = typer.Option(False, "--queue", help=QUEUE_HELP),
    refresh_segments: bool = typer.Option(
        False, "--refresh-segments", help="After each batch, refresh the batch's users in the segments with "
        "behaviour, RFM or Cypher conditions"),
    flush_seconds: float = typer.Option(
        1.0, "--flush-seconds", min=0.01, help="With -: write a partial batch once the stream is quiet this long"),
) -> None:
    """Ingest behaviour events (purchase / view / cart / refund) as PURCHASED / VIEWED edges.

    Idempotent per event (event_id, else a content hash). Bad lines are reported with line and
    field, the rest goes in; exit code 1 when any line failed. FILE `-` reads a live JSONL stream.
    """
    if str(file) == "-":
        if queue:
            fail("--queue needs a file, not standard input", EXIT_USAGE)
        _ingest_event_stream(ctx, batch_size, flush_seconds, refresh_segments, errors_file, as_json)
        return
    if not file.is_file():
        fail(f"no such file: {file}", EXIT_USAGE)
    _ingest_file(ctx, file, fmt, "events", batch_size, errors_file, as_json, queue, refresh_segments)


def ingest(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help=FILE_HELP),
    fmt: str | None = typer.Option(None, "--format", help=FMT_HELP),
    extractor: str | None = typer.Option(
        None, "--extractor", help="cascade (default; PERSONA_EXTRACTOR), encoder or llm"),
    backend: str | None = typer.Option(None, help="LLM backend: llama_cpp (default), openai or transformers"),
    model: str | None = typer.Option(None, help="Model path / name for the backend"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server URL (openai backend)"),
    batch_size: int = typer.Option(32, min=1, help="Documents per graph write"),
    oversize: str = typer.Option("chunk", help="Texts over 20,000 characters: chunk or truncate"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse cached extractions"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Extract only; write nothing to the graph"),
    output: Path | None = typer.Option(None, help="Also write extracted documents (JSONL) here"),
    errors_file: Path | None = typer.Option(None, "--errors", "--errors-out", help=ERRORS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    queue: bool = typer.Option(False, "--queue", help=QUEUE_HELP + " (workers use their own LLM settings)"),
) -> None:
    """Ingest user texts: validate → dedupe → language → PII redaction → LLM → linking → fusion → rules.

    Prints a summary (documents, facts, drops by reason, LLM calls, tokens, seconds); exit code 1
    when some records failed.
    """
    from engine.extract import BackendError, ExtractionCache, make_tier
    from engine.extract.encoder.weights import WeightsError
    from engine.ingest import read_records
    from engine.ingest.records import OVERSIZE_POLICIES
    from engine.pipeline import ingest_records

    _check_format(file, fmt)
    if oversize not in OVERSIZE_POLICIES:
        fail(f"--oversize must be one of {', '.join(OVERSIZE_POLICIES)}", EXIT_USAGE)
    if queue:
        from engine.distributed import BatchOptions

        if dry_run or output is not None:
            fail("--queue writes to the graph: it does not combine with --dry-run or --output", EXIT_USAGE)
        _enqueue(ctx, file, fmt, "records", batch_size, as_json,
                 BatchOptions(oversize=oversize, extractor=extractor, cache=not no_cache))
        return
    settings = settings_of(ctx)
    llm = settings.llm.model_copy(update={k: v for k, v in {
        "backend": backend, "base_url": base_url}.items() if v is not None})
    if model:
        llm = llm.model_copy(update={"model_path" if llm.backend.startswith("llama") else "model": model})
    try:
        tier = make_tier(extractor or settings.extractor, llm, allow_sensitive=settings.allow_sensitive,
                         model_cache=settings.model_cache)
    except (BackendError, WeightsError) as exc:
        fail(str(exc), EXIT_USAGE)
    store = None if dry_run else connect(ctx)
    cache = None if no_cache else ExtractionCache(settings.extraction_cache_path)
    out = output.open("w", encoding="utf-8") if output else None

    def on_document(doc) -> None:  # noqa: ANN001 - ExtractedDocument
        if out is not None:
            out.write(doc.model_dump_json() + "\n")

    try:
        report = _with_bar(file, f"ingesting {file.name}", lambda p: ingest_records(
            store, settings, read_records(file, fmt=fmt, oversize=oversize), extractor=tier, cache=cache,
            batch=batch_size, progress=p, on_document=on_document))
    finally:
        if out is not None:
            out.close()
        if cache is not None:
            cache.close()
        if store is not None:
            store.close()
    finish(report, as_json=as_json, errors_file=errors_file)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("ingest-facts")(ingest_facts)
    app.command("ingest-events")(ingest_events)

