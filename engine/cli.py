"""The `persona` command line (Typer + Rich)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.api.cli import serve
from engine.cli_support import connect, err, print_json, settings_of
from engine.config import Settings
from engine.eval.cli import eval_app
from engine.ingest import ingest as ingest_command
from engine.segment.cli import export as export_command
from engine.segment.cli import ingest_events as ingest_events_command
from engine.segment.cli import segment_app
from engine.store import EmbeddedFalkorDB, GraphNode, ReadOnlyViolation, StoreError
from linkers.cli import kb_app

app = typer.Typer(
    help="Persona Engine: text and behaviour → Wikidata-grounded persona graphs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Start, stop and inspect the embedded FalkorDB.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(kb_app, name="kb", help="Build, inspect and query the Wikidata knowledge base.")
app.add_typer(eval_app, name="eval")
app.command("serve")(serve)
app.command("ingest")(ingest_command)
app.add_typer(segment_app, name="segment")
app.command("ingest-events")(ingest_events_command)
app.command("export")(export_command)

console = Console()


@app.callback()
def main(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", envvar="PERSONA_HOME", help="Persona home (data dir); default ./.persona"
    ),
    graph_uri: str | None = typer.Option(
        None,
        "--graph-uri",
        envvar="PERSONA_GRAPH_URI",
        help="'embedded' (default), falkordb://host:port or neo4j://host:7687",
    ),
) -> None:
    # Exported too, so commands that read Settings.from_env() see the same choice.
    if home is not None:
        os.environ["PERSONA_HOME"] = str(home)
    if graph_uri is not None:
        os.environ["PERSONA_GRAPH_URI"] = graph_uri
    ctx.obj = Settings.from_env(home=home, graph_uri=graph_uri)


# --- db -------------------------------------------------------------------------------------


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded FalkorDB for this home (or reuse the running one)."""
    server = EmbeddedFalkorDB(settings_of(ctx).home)
    try:
        status = server.start()
    except StoreError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"FalkorDB running: pid {status.pid}, port {status.port}, data {status.data_dir}")


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded FalkorDB cleanly (data is kept)."""
    stopped = EmbeddedFalkorDB(settings_of(ctx).home).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show whether the embedded FalkorDB is running, its pid, port and data dir."""
    status = EmbeddedFalkorDB(settings_of(ctx).home).status()
    if as_json:
        print_json(status.model_dump())
        return
    state = "[green]running[/green]" if status.running else "[yellow]stopped[/yellow]"
    console.print(f"{state} pid={status.pid} port={status.port} data={status.data_dir}")


# --- ingest-facts ---------------------------------------------------------------------------


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@app.command("ingest-facts")
def ingest_facts(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL, one fact per line"),
    batch_size: int = typer.Option(5000, min=1, help="Facts per write batch"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Ingest facts (see README, 'Facts input'); bad lines are reported, the rest goes in.

    Exit code 1 when any line failed.
    """
    from engine.facts_input import FactLine, LineError, read_fact_lines
    from engine.pipeline import apply_fact_lines

    settings = settings_of(ctx)
    store = connect(ctx)
    errors: list[str] = []
    totals = {"lines": 0, "facts_applied": 0, "documents": 0, "edges_written": 0}
    conflicts: dict[str, int] = {}
    pending: list[tuple[int, FactLine]] = []

    def flush() -> None:
        if not pending:
            return
        report = apply_fact_lines(store, settings, [f for _, f in pending])
        for p in report.problems:
            errors.append(f"line {pending[p.index][0]}: {p.field}: {p.message}")
        for doc_id, reason in report.fuse.rejected:
            errors.append(f"doc {doc_id}: doc_id: {reason}")
        totals["facts_applied"] += report.facts_applied
        totals["documents"] += report.documents
        totals["edges_written"] += report.fuse.fact_edges_written
        for k, v in report.check.counts().items():
            conflicts[k] = conflicts.get(k, 0) + v
        pending.clear()

    with progress_bar() as bar:
        task = bar.add_task("ingesting facts", total=_count_lines(file))
        for line_no, item in read_fact_lines(file):
            totals["lines"] += 1
            if isinstance(item, LineError):
                errors.append(str(item))
            else:
                pending.append((line_no, item))
                if len(pending) >= batch_size:
                    flush()
            bar.advance(task)
        flush()

    summary = {**totals, "failed": len(errors), "conflicts": conflicts, "errors": errors}
    if as_json:
        print_json(summary)
    else:
        for e in errors[:50]:
            err.print(f"[red]{e}[/red]")
        if len(errors) > 50:
            err.print(f"… and {len(errors) - 50} more errors")
        table = Table(title="ingest-facts")
        for key in ("lines", "facts_applied", "documents", "edges_written", "failed"):
            table.add_column(key)
        table.add_row(*(str(summary[k]) for k in ("lines", "facts_applied", "documents", "edges_written", "failed")))
        console.print(table)
        if conflicts:
            console.print("conflicts: " + ", ".join(f"{k} {v}" for k, v in conflicts.items()))
    if errors:
        raise typer.Exit(1)


# --- show / conflicts / forget --------------------------------------------------------------


@app.command()
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
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
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


@app.command()
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
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
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


@app.command()
def forget(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Delete a user: its fact edges, documents, conflicts and memberships. Shared entities stay."""
    from engine.persona import forget_user

    if not yes and not typer.confirm(f"Forget user {user!r} and all its data?"):
        raise typer.Exit(1)
    report = forget_user(connect(ctx), user)
    if not report.user_removed:
        err.print(f"[yellow]no user with id {user!r}[/yellow]")
        raise typer.Exit(1)
    console.print(f"forgot {user}")


# --- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    serve_ui: bool = typer.Option(True, "--serve/--no-serve", help="Serve the explorer afterwards"),
    llm: bool = typer.Option(True, "--llm/--no-llm", help="Run the example texts through the local LLM"),
    port: int = typer.Option(8765, help="Port for the explorer"),
) -> None:
    """Run the demo pipeline on the embedded default, then serve the explorer (Ctrl-C stops it)."""
    from engine.demo import load_texts, print_demo, run_demo

    settings = settings_of(ctx)
    store = connect(ctx)
    if llm:
        console.print("extracting the example texts with the local LLM (first run joins the model file)…")
    report = run_demo(store, settings, texts=load_texts if llm else None)
    print_demo(store, report, console)
    url = f"http://127.0.0.1:{port}/"
    if not serve_ui:
        console.print(f"Explore it: persona serve --port {port}  →  {url}")
        return
    console.print("(Ctrl-C stops the explorer; the data stays in the persona home)")
    serve(ctx, host="127.0.0.1", port=port, log_level="warning")


# --- cypher ---------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, GraphNode):
        return {"labels": value.labels, **value.properties}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, list):
        return [_cell(v) for v in value]
    return value


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE (VALUE may be JSON)", param_hint="--param")
        name, raw = item.split("=", 1)
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


@app.command()
def cypher(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="A Cypher statement"),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE (JSON values allowed)"),
    write: bool = typer.Option(False, "--write", help="Allow writes (default: read-only)"),
    timeout_ms: int = typer.Option(30_000, help="Read-only query timeout in milliseconds"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run Cypher; read-only unless --write (the database itself refuses writes on that path)."""
    store = connect(ctx)
    params = _parse_params(param)
    try:
        result = store.query(query, params) if write else store.ro_query(query, params, timeout_ms)
    except ReadOnlyViolation as exc:
        err.print(f"[red]error:[/red] {exc}; add --write to modify the graph")
        raise typer.Exit(1) from None
    except StoreError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    rows = [[_cell(v) for v in row] for row in result.rows]
    if as_json:
        print_json({"columns": result.columns, "rows": rows})
        return
    table = Table()
    for col in result.columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else v for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s)")


if __name__ == "__main__":  # pragma: no cover
    app()
