"""`persona export`: a segment's audience (or its delta) to CSV / Parquet / JSONL with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli._util import connect, console, fail, print_json, progress_bar, settings_of


def export(
    ctx: typer.Context,
    segment_id: str = typer.Argument(..., help="Segment id"),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or jsonl"),
    out: Path = typer.Option(..., "--out", help="Output file (a .manifest.json is written next to it)"),
    hash_ids: bool = typer.Option(False, "--hash-ids", help="Replace user ids by HMAC-SHA256(salt, id)"),
    salt: str | None = typer.Option(
        None, "--salt", help="Salt for --hash-ids (default: PERSONA_EXPORT_SALT, else the home's own salt)"
    ),
    since: str | None = typer.Option(None, "--since", help="Only joined/left since this ISO-8601 time"),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON"),
) -> None:
    """Export a segment's audience (or its delta) with reasons, atomically, plus a manifest."""
    from engine.export import ExportError, export_segment
    from engine.segment import SegmentNotFound

    store = connect(ctx)
    settings = settings_of(ctx)
    salt = salt or settings.export.salt
    with progress_bar(total_known=False) as bar:
        task = bar.add_task(f"exporting {segment_id}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            manifest = export_segment(
                store, segment_id, fmt=fmt, out=out, hash_ids=hash_ids, salt=salt, salt_home=settings.home,
                since=since, progress=progress
            )
        except (ExportError, SegmentNotFound) as exc:
            fail(str(exc))
    if as_json:
        print_json(manifest.model_dump())
        return
    console.print(
        f"wrote {manifest.rows} rows to {out} ({manifest.format}, hashed={manifest.hashed_ids}); "
        f"manifest {out}.manifest.json"
    )
