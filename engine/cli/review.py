"""`persona review sample | report | export`: the analysts' review loop (engine/review).

Judging happens in the explorer's Review page (or PUT /review/batches/{id}/items/{doc}); these
commands sample a batch, print quality over time (exit code 1 when the drift alert fires) and
write judged documents as training data for `persona train`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from engine.cli._util import EXIT_FAILED, EXIT_USAGE, connect, console, err, fail, print_json, settings_of

review_app = typer.Typer(help="Review loop: sample documents to judge, quality over time, training data.",
                         no_args_is_help=True)


def _fmt(i) -> str:  # noqa: ANN001 - an engine.review.metrics.Interval or None
    if i is None or i.value is None:
        return "—"
    if i.low is None:
        return f"{i.value:.3f}"
    return f"{i.value:.3f} [{i.low:.2f}–{i.high:.2f}]"


@review_app.command("sample")
def sample(
    ctx: typer.Context,
    n: int = typer.Option(100, "--n", min=1, help="Documents in the batch"),
    since: str | None = typer.Option(None, "--since", help="ISO date; default 30 days before the newest document"),
    stratify: str = typer.Option("", "--stratify", help="Comma-separated: lang,predicate,tier"),
    seed: int = typer.Option(0, "--seed", help="Same seed and data, same sample"),
    name: str | None = typer.Option(None, "--name", help="Batch id (default <YYYY-MM>-<k>)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sample recent documents (not yet reviewed) with the engine's facts into a named review batch."""
    from engine.review import ReviewError, sample_batch

    keys = [k.strip() for k in stratify.split(",") if k.strip()]
    try:
        report = sample_batch(connect(ctx), n, since=since, stratify=keys, seed=seed, name=name,
                              created_by="cli")
    except ReviewError as exc:
        fail(str(exc), EXIT_USAGE if exc.status == 422 else EXIT_FAILED)
    if as_json:
        print_json(report.model_dump())
        return
    b = report.batch
    console.print(f"batch [bold]{b.id}[/bold]: {b.size} of {report.pool} documents since {b.since} (seed {b.seed})")
    for stratum, k in report.strata.items():
        console.print(f"  {stratum}: {k}")
    console.print(f"judge them in the explorer: `persona serve`, then #/review/{b.id}")


@review_app.command("report")
def report(
    ctx: typer.Context,
    alert_points: float | None = typer.Option(
        None, "--alert-points", min=0, max=100,
        help="Alert when F1 falls more than this many points below the previous batch's interval "
             "[env PERSONA_REVIEW_ALERT_POINTS; default 5]"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Quality per batch: precision / recall / F1 of facts, macro-F1 of sentiment, with intervals.
    Exit code 1 when the drift alert fires."""
    from engine.review import quality_report

    settings = settings_of(ctx).review
    if alert_points is not None:
        settings = settings.model_copy(update={"alert_points": alert_points})
    result = quality_report(connect(ctx), settings)
    if as_json:
        print_json(result.model_dump())
    else:
        _print_report(result)
    if result.alert is not None:
        err.print(f"[red]alert:[/red] {result.alert.message}", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILED)


def _print_report(result) -> None:  # noqa: ANN001 - engine.review.QualityReport
    if not result.batches:
        console.print("no review batches yet: `persona review sample --n 100`")
        return
    table = Table(title="quality per review batch")
    for col in ("batch", "period", "judged", "precision", "recall", "F1", "sentiment macro-F1"):
        table.add_column(col)
    for b in result.batches:
        m = b.metrics
        table.add_row(b.batch_id, b.period, f"{b.judged}/{b.size}",
                      _fmt(m.facts.precision) if m else "—", _fmt(m.facts.recall) if m else "—",
                      _fmt(m.facts.f1) if m else "—", _fmt(m.sentiment.macro_f1) if m else "—")
    console.print(table)
    latest = next((b for b in reversed(result.batches) if b.metrics), None)
    if latest is not None:
        m = latest.metrics
        for title, slices in (("language", m.by_lang), ("predicate", m.by_predicate), ("extractor tier", m.by_tier)):
            t = Table(title=f"{latest.batch_id} by {title}")
            for col in (title, "TP", "FP", "FN", "precision", "recall", "F1"):
                t.add_column(col)
            for s in slices:
                t.add_row(s.key, str(s.tp), str(s.fp), "—" if s.fn is None else str(s.fn), _fmt(s.precision),
                          _fmt(s.recall), _fmt(s.f1))
            console.print(t)
    for b in result.batches:
        if b.note:
            console.print(f"[yellow]{b.batch_id}:[/yellow] {b.note}")
    console.print(f"[dim]{result.note}[/dim]")


@review_app.command("export")
def export(
    ctx: typer.Context,
    fmt: str = typer.Option("train", "--format", help="train: JSONL rows `persona train` reads"),
    out: Path | None = typer.Option(
        None, "--out", help="Output file (default $PERSONA_HOME/review/train-<date>.jsonl)"),
    batch: str | None = typer.Option(None, "--batch", help="Only this batch (default: every judged document)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write judged documents as training examples (facts with spans, sentiment labels)."""
    from engine.export import ExportError, check_writable
    from engine.review import ReviewError, export_training

    if fmt != "train":
        fail(f"--format {fmt!r}: only 'train' is supported", EXIT_USAGE)
    settings = settings_of(ctx)
    if out is None:  # the home's own review directory is made on first use; a given one must exist
        path = Path(settings.home) / "review" / f"train-{datetime.now().strftime('%Y%m%d-%H%M%S')}.jsonl"  # noqa: DTZ005 - a local file name
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        try:
            path = check_writable(out)
        except ExportError as exc:
            fail(str(exc))
    try:
        result = export_training(connect(ctx), path, batch_id=batch)
    except ReviewError as exc:
        fail(exc.message, EXIT_FAILED)
    except OSError as exc:
        fail(f"cannot write {path}: {exc}", EXIT_FAILED)
    if as_json:
        print_json(result.model_dump())
        return
    console.print(f"wrote {result.fact_examples} fact and {result.sentiment_examples} sentiment examples from "
                  f"{result.documents} judged documents to {result.path}")
    if result.skipped_no_span:
        console.print(f"{result.skipped_no_span} document(s) left out of the fact examples: a fact without a span")
