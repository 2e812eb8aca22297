"""`persona show`, `persona conflicts`, `persona forget`: one user's persona."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from engine.cli._util import EXIT_FAILED, connect, console, fail, print_json, settings_of

if TYPE_CHECKING:
    from engine.forget import ForgetEverywhereReport


def show(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a user's persona: facts with status, confidence, validity and evidence."""
    from engine.persona import UserNotFound, get_persona

    store = connect(ctx)
    try:
        persona = get_persona(store, user)
    except UserNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        print_json(persona.model_dump())
        return
    u = persona.user
    console.print(
        f"[bold]{u.get('id')}[/bold]  docs={u.get('n_docs')} langs={u.get('langs')} "
        f"first_seen={u.get('first_seen')} last_seen={u.get('last_seen')}"
    )
    table = Table()
    for col in ("predicate", "object", "key", "status", "conf", "evidence", "valid_from", "valid_to"):
        table.add_column(col)
    for f in persona.facts:
        style = {"superseded": "dim", "quarantined": "red"}.get(f.status or "", "")
        table.add_row(
            f.predicate,
            str(f.label),
            f.key,
            f.status or "",
            f"{f.confidence:.2f}" if f.confidence is not None else "",
            str(f.evidence_count or 0),
            f.valid_from or "",
            f.valid_to or "",
            style=style,
        )
    console.print(table)
    if persona.conflicts:
        console.print(f"{len(persona.conflicts)} conflict(s): see `persona conflicts {user}`")


def conflicts(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id"),
    revert: str | None = typer.Option(None, "--revert", help="Revert the conflict with this id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the consistency resolutions recorded for a user, or revert one."""
    from engine.check import ConflictNotFound, revert_conflict
    from engine.persona import get_conflicts

    store = connect(ctx)
    if revert:
        try:
            n = revert_conflict(store, revert)
        except ConflictNotFound as exc:
            fail(str(exc), EXIT_FAILED)
        console.print(f"reverted {revert}: {n} fact(s) restored")
        return
    rows = get_conflicts(store, user)
    if as_json:
        print_json([c.model_dump() for c in rows])
        return
    table = Table(title=f"conflicts of {user}")
    for col in ("id", "rule", "resolution", "ts", "detail"):
        table.add_column(col)
    for c in rows:
        table.add_row(c.id, c.rule, c.resolution, c.ts or "", c.detail or "")
    console.print(table)


def forget(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    delete_files: bool = typer.Option(
        False, "--delete-exports", help="Also delete the files under the home that hold the user (exports)"),
    salt: list[str] = typer.Option([], "--salt", help="Another salt hashed exports were made with (repeatable)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete a user everywhere: graph (facts, documents, conflicts, memberships), the database's
    files on disk (log rewritten), the extraction cache; list (or delete) export files holding it."""
    from engine.distributed import job_records
    from engine.export import known_salts
    from engine.forget import forget_everywhere

    settings = settings_of(ctx)
    if not yes and not typer.confirm(f"Forget user {user!r} and all its data?"):
        raise typer.Exit(EXIT_FAILED)
    salts = known_salts(settings.home, settings.export.salt, *salt)
    store = connect(ctx)
    report = forget_everywhere(store, user, home=settings.home, cache_path=settings.extraction_cache_path,
                               delete_files=delete_files, salts=salts, jobs=job_records(settings))
    if as_json:
        print_json(report.model_dump())
    if not report.user_id_found:
        fail(f"no user with id {user!r}", EXIT_FAILED)
    if not as_json:
        print_forget(user, report)
    left = report.leftovers()
    if left:
        fail("still found after forget: " + "; ".join(left), EXIT_FAILED)


def print_forget(user: str, report: ForgetEverywhereReport) -> None:
    console.print(f"forgot {user}: {report.graph.model_dump()}")
    console.print(f"database log rewritten: {report.compaction.model_dump()}")
    console.print(f"query logs dropped: {report.query_logs_dropped}; job records changed: {report.job_records}")
    if report.cache is not None:
        console.print(f"extraction cache: {report.cache.model_dump()}")
    for hit in report.files:
        state = "deleted" if hit.deleted else "still there (use --delete-exports)"
        console.print(f"file holding the user ({', '.join(hit.matches)}): {hit.path} — {state}")


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command()(conflicts)
    app.command()(forget)
