"""`persona demo`: the whole pipeline on the example data, then the explorer."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from engine.cli._util import connect, console, settings_of
from engine.cli.serve import run_server
from engine.demo import DemoReport
from engine.persona import get_persona
from engine.segment import segment_members
from engine.store import GraphStore
from graph_schema import PREDICATES


def demo(
    ctx: typer.Context,
    serve_ui: bool = typer.Option(True, "--serve/--no-serve", help="Serve the explorer afterwards"),
    llm: bool = typer.Option(True, "--llm/--no-llm", help="Let the cascade call the local LLM for unsure texts "
                             "(--no-llm: the encoder tier alone)"),
    texts: bool = typer.Option(True, "--texts/--no-texts", help="Extract the example texts at all"),
    port: int = typer.Option(8765, help="Port for the explorer"),
) -> None:
    """Run the demo pipeline on the embedded default, then serve the explorer (Ctrl-C stops it)."""
    from engine.demo import load_texts, run_demo

    settings = settings_of(ctx)
    if not llm and settings.extractor != "llm":
        settings = settings.model_copy(update={"extractor": "encoder"})
    store = connect(ctx)
    if texts:
        console.print(f"extracting the example texts ({settings.extractor} tier; the first run converts the "
                      "encoder and, when the LLM is needed, joins its model file)…")
    report = run_demo(store, settings, texts=load_texts if texts else None)
    print_demo(store, report, console)
    url = f"http://127.0.0.1:{port}/"
    if not serve_ui:
        console.print(f"Explore it: persona serve --port {port}  →  {url}")
        return
    console.print("(Ctrl-C stops the explorer; the data stays in the persona home)")
    run_server(settings, host="127.0.0.1", port=port, log_level="warning")


def print_demo(store: GraphStore, report: DemoReport, console: Console) -> None:
    console.print(
        f"[bold]demo[/bold]: {report.documents} documents, {report.facts} facts, {report.events} events, "
        f"{len(report.users)} users"
    )
    for user in report.users:
        persona = get_persona(store, user)
        table = Table(title=f"persona of {user}")
        for col in ("predicate", "object", "wikidata", "status", "confidence"):
            table.add_column(col)
        for f in persona.facts:
            if PREDICATES[f.predicate].behaviour:
                continue  # behaviour edges carry counts, not confidence
            table.add_row(f.predicate, str(f.label), f.qid or f.key, f.status or "", f"{f.confidence or 0:.2f}")
        console.print(table)
        for c in persona.conflicts:
            console.print(f"  [yellow]{c.rule}[/yellow] {c.resolution}: {c.detail}")
    for segment_id, size in report.segments.items():
        console.print(f"segment [bold]{segment_id}[/bold]: {size} member(s)")
        for m in segment_members(store, segment_id, limit=5):
            console.print(f"  {m.user_id}: {m.reason}")
