"""`persona eval …`: quality measured on ../shared/data (not needed by the product or default tests)."""

from __future__ import annotations

import typer

from engine.eval.extraction import extraction
from engine.eval.linking import linking
from engine.eval.sentiment import sentiment

eval_app = typer.Typer(help="Measure quality on the real data in ../shared/data.", no_args_is_help=True)
eval_app.command("linking")(linking)
eval_app.command("extraction")(extraction)
eval_app.command("sentiment")(sentiment)
