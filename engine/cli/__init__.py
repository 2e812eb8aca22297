"""The `persona` command line (Typer + Rich): one module per command or command group.

Every command gets its Settings from the root context (`_util.settings_of`), prints errors as
`error: …` on stderr, and follows one exit-code convention (0 ok, 1 some records failed, 2 usage
or configuration error). Stage modules never import typer or rich: their functions return reports
that these modules print.
"""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli import (
    cypher,
    db,
    demo,
    eval,
    export,
    ingest,
    kb,
    persona,
    review,
    segment,
    serve,
    setup,
    train,
    worker,
)
from engine.cli._util import EXIT_USAGE, fail
from engine.config import ConfigError, Settings

app = typer.Typer(
    help="Persona Engine: text and behaviour → Wikidata-grounded persona graphs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", help="Persona home (data dir) [env PERSONA_HOME; default ./.persona]"
    ),
    graph_uri: str | None = typer.Option(
        None, "--graph-uri",
        help="'embedded' (default), falkordb://host:port or neo4j://host:7687 [env PERSONA_GRAPH_URI]",
    ),
) -> None:
    try:
        settings = Settings.from_env(home=home, graph_uri=graph_uri)
    except (ConfigError, ValueError) as exc:
        fail(f"configuration: {exc}", EXIT_USAGE)
    import linkers

    linkers.use_kb(settings.kb.path)
    ctx.obj = settings


app.add_typer(db.db_app, name="db")
app.add_typer(kb.kb_app, name="kb", help="Build, inspect and query the Wikidata knowledge base.")
app.add_typer(eval.eval_app, name="eval")
app.add_typer(segment.segment_app, name="segment")
app.add_typer(train.train_app, name="train")
app.add_typer(review.review_app, name="review")
ingest.register(app)
persona.register(app)
worker.register(app)
app.command("cypher")(cypher.cypher)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("setup")(setup.setup)
app.command("export")(export.export)

