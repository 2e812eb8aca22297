"""`python -m engine.cli`: the same as the `persona` command."""

from engine.cli import app

app(prog_name="persona")
