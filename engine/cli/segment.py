"""`persona segment …`: define, run, inspect and discover audience segments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from engine.cli._util import connect, console, fail, print_json

segment_app = typer.Typer(help="Define, run, inspect and discover audience segments.", no_args_is_help=True)


def _parse_now(now: str | None) -> datetime | None:
    if now is None:
        return None
    try:
        return datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{now!r} is not an ISO-8601 timestamp", param_hint="--now") from None


# --- segment ---------------------------------------------------------------------------------


@segment_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Segment definition (YAML or JSON)"),
    run: bool = typer.Option(False, "--run", help="Compute the memberships right away"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate and save a segment definition (errors name the offending key)."""
    from engine.segment import SegmentDefinitionError, apply_definition, run_segment

    store = connect(ctx)
    try:
        info = apply_definition(store, file)
    except SegmentDefinitionError as exc:
        fail(f"{file}: {exc}")
    report = run_segment(store, info.id) if run else None
    if as_json:
        print_json({"segment": info.model_dump(), "run": report.model_dump() if report else None})
        return
    console.print(f"saved segment [bold]{info.id}[/bold] ({info.definition_hash[:19]}…)")
    if report:
        console.print(f"{report.size} members (+{report.joined} −{report.left}) in {report.seconds:.2f}s")


@segment_app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the segments with size and last run."""
    from engine.segment import list_segments

    rows = list_segments(connect(ctx))
    if as_json:
        print_json([s.model_dump() for s in rows])
        return
    table = Table(title="segments")
    for col in ("id", "name", "kind", "size", "last_run_at"):
        table.add_column(col)
    for s in rows:
        table.add_row(s.id, s.name, s.kind, str(s.size), s.last_run_at or "never")
    console.print(table)


@segment_app.command("run")
def run_cmd(
    ctx: typer.Context,
    segment_id: str | None = typer.Argument(None, help="Segment id (default: every segment)"),
    incremental: bool = typer.Option(False, "--incremental", help="Only users touched since the last run"),
    now: str | None = typer.Option(None, "--now", help="Reference time for windows (ISO-8601; default now)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recompute memberships: joiners and leavers are recorded on MEMBER_OF (since / left_at)."""
    from engine.segment import SegmentNotFound, SegmentRunError, run_all, run_segment

    store = connect(ctx)
    when = _parse_now(now)
    try:
        reports = (
            [run_segment(store, segment_id, incremental=incremental, now=when)]
            if segment_id
            else run_all(store, incremental=incremental, now=when)
        )
    except (SegmentNotFound, SegmentRunError) as exc:
        fail(str(exc))
    if as_json:
        print_json([r.model_dump() for r in reports])
        return
    table = Table(title="segment runs")
    for col in ("segment", "mode", "evaluated", "size", "joined", "left", "updated", "seconds"):
        table.add_column(col)
    for r in reports:
        table.add_row(
            r.segment_id, r.mode, "all" if r.evaluated_users is None else str(r.evaluated_users),
            str(r.size), str(r.joined), str(r.left), str(r.updated), f"{r.seconds:.3f}",
        )
    console.print(table)


@segment_app.command("members")
def members_cmd(
    ctx: typer.Context,
    segment_id: str = typer.Argument(..., help="Segment id"),
    limit: int = typer.Option(100, "--limit", min=0),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Current members with the reason (fact edges and evidence documents that matched)."""
    from engine.segment import SegmentNotFound, segment_members

    try:
        rows = segment_members(connect(ctx), segment_id, offset=offset, limit=limit)
    except SegmentNotFound as exc:
        fail(str(exc))
    if as_json:
        print_json([m.model_dump() for m in rows])
        return
    table = Table(title=f"members of {segment_id}")
    for col in ("user", "confidence", "since", "reason"):
        table.add_column(col)
    for m in rows:
        table.add_row(m.user_id, f"{m.confidence:.2f}", m.since, m.reason)
    console.print(table)


@segment_app.command("explain")
def explain_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Segment definition (YAML or JSON)"),
    now: str | None = typer.Option(None, "--now", help="Reference time for windows (ISO-8601)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate a definition (no database needed) and print the Cypher of each condition."""
    from engine.segment import SegmentDefinitionError, load_definition
    from engine.segment.compile import leaf_statement
    from engine.segment.model import utc_now

    try:
        definition = load_definition(file)
        when = _parse_now(now) or utc_now()
        out = []
        for leaf in definition.root.leaves():
            match = leaf.fact or leaf.behaviour or (leaf.sentiment.toward if leaf.sentiment else None)
            keyed = leaf.kind == "literal" or (match is not None and not match.any_entity)
            stmt = leaf_statement(leaf, keyed=keyed, restricted=False, now=when,
                                  min_confidence=definition.min_confidence)
            out.append({"condition": leaf.path or "cypher", "cypher": stmt.cypher, "params": stmt.params})
    except SegmentDefinitionError as exc:
        fail(f"{file}: {exc}")
    if as_json:
        print_json(out)
        return
    for item in out:
        console.print(f"[bold]{item['condition']}[/bold] params={item['params']}")
        console.print(item["cypher"], markup=False, highlight=False)


@segment_app.command("discover")
def discover_cmd(
    ctx: typer.Context,
    max_users: int = typer.Option(50_000, "--max-users", min=1, help="Sample at most this many users"),
    min_size: int = typer.Option(5, "--min-size", min=1, help="Ignore smaller communities"),
    top: int = typer.Option(3, "--top", min=1, help="Characteristic entities per community"),
    resolution: float = typer.Option(1.0, "--resolution", help="Louvain resolution (higher = smaller)"),
    seed: int = typer.Option(42, "--seed"),
    apply: bool = typer.Option(False, "--apply", help="Save (and run) the proposals as segments"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Propose segments from Louvain communities of the user–entity graph (labelled by lift)."""
    from engine.segment import apply_definition, run_segment
    from engine.segment.discover import discover

    store = connect(ctx)
    proposals = discover(
        store, max_users=max_users, min_size=min_size, top=top, resolution=resolution, seed=seed
    )
    applied = []
    if apply:
        for p in proposals:
            info = apply_definition(store, p.definition, kind="discovered")
            applied.append(run_segment(store, info.id).model_dump())
    if as_json:
        print_json({"proposals": [p.model_dump() for p in proposals], "applied": applied})
        return
    table = Table(title="discovered communities")
    for col in ("id", "size", "label", "top entities (lift)"):
        table.add_column(col)
    for p in proposals:
        table.add_row(p.id, str(p.size), p.label,
                      ", ".join(f"{e.label} ×{e.lift:.1f}" for e in p.entities))
    console.print(table)
    if applied:
        console.print(f"applied {len(applied)} segment(s)")
