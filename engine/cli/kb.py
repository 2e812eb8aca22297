"""`persona kb ...`: build, inspect, query and harvest the Wikidata knowledge base."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli._util import console, settings_of
from linkers.kb import DEFAULT_KB_PATH, KBError, get_kb, kb_path, reset_cache

kb_app = typer.Typer(help="Wikidata knowledge base: build, info, link, harvest.", no_args_is_help=True)


def _steps(progress: Progress, task: int):  # type: ignore[no-untyped-def]
    def step(msg: str) -> None:
        progress.console.log(msg)
        progress.advance(task)

    return step


@kb_app.command()
def build(
    ctx: typer.Context,
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Wikidata inputs (default ../shared/data/wikidata or $PERSONA_WIKIDATA_DIR)"
    ),
    out: Path = typer.Option(DEFAULT_KB_PATH, "--out", help="KB file to write"),
    dump: list[Path] = typer.Option(
        [], "--dump", help="official Wikidata JSON dump (.json/.gz/.bz2); repeatable"
    ),
    ntriples: list[Path] = typer.Option(
        [], "--ntriples", help="Wikidata-shaped N-Triples (e.g. from `kb harvest`); repeatable"
    ),
    root: list[str] = typer.Option(
        [], "--root", help="keep only dump entities under these classes (QIDs); repeatable"
    ),
    no_shared: bool = typer.Option(False, "--no-shared", help="do not read the shared data directory"),
    no_curated: bool = typer.Option(False, "--no-curated", help="skip linkers/curated/*.tsv"),
) -> None:
    """Build the KB file from the shared Wikidata-derived files (+ optional dumps / N-Triples)."""
    from linkers.build import BuildOptions, MissingDataError, build_kb

    opts = BuildOptions(
        data_dir=data_dir or settings_of(ctx).data.wikidata_dir(),
        use_shared=not no_shared,
        dumps=dump,
        ntriples=ntriples,
        roots=root,
        use_curated=not no_curated,
        out=out,
    )
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("building knowledge base", total=None)
        try:
            report = build_kb(opts, _steps(progress, task))
        except (MissingDataError, FileNotFoundError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    reset_cache()
    console.print(
        f"[green]wrote {report.out}[/green]: {report.size_bytes / 1e6:.1f} MB, "
        f"{report.entities:,} entities, {report.alias_keys:,} alias keys in {report.seconds}s"
    )


def _load():  # type: ignore[no-untyped-def]
    try:
        return get_kb()
    except KBError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@kb_app.command()
def info() -> None:
    """Counts per language and per domain, file size and load time."""
    started = time.perf_counter()
    kb = _load()
    load_s = time.perf_counter() - started
    langs = Counter()
    domains: Counter[str] = Counter()
    domain_langs: Counter[tuple[str, str]] = Counter()
    for i in range(len(kb)):
        has = {"en": bool(kb.label_en[i]), "zh": bool(kb.label_zh[i]), "es": bool(kb.label_es[i])}
        for lang, ok in has.items():
            langs[lang] += ok
        langs["any label"] += kb.has_labels(i)
        for d in kb.domain_names(i):
            domains[d] += 1
            for lang, ok in has.items():
                domain_langs[(d, lang)] += ok
            domain_langs[(d, "all three")] += all(has.values())
    path = kb_path()
    head = Table(title=f"KB {path} ({path.stat().st_size / 1e6:.1f} MB, loaded in {load_s:.2f}s)")
    head.add_column("what")
    head.add_column("count", justify="right")
    head.add_row("entities", f"{len(kb):,}")
    head.add_row("alias keys", f"{len(kb.alias_keys):,}")
    for rel, csr in kb.rel.items():
        head.add_row(f"edges {rel}", f"{len(csr.targets):,}")
    for lang, n in langs.items():
        head.add_row(f"label {lang}", f"{n:,}")
    console.print(head)
    dom = Table(title="coverage per domain (through the P31/P279/is-a closure) and language (with a label)")
    for c in ("domain", "entities", "en", "zh", "es", "all three"):
        dom.add_column(c, justify="left" if c == "domain" else "right")
    for d, n in domains.most_common():
        dom.add_row(d, f"{n:,}", *(f"{domain_langs[(d, lang)]:,}" for lang in ("en", "zh", "es", "all three")))
    console.print(dom)
    built = kb.meta.get("inputs", [])
    src = Table(title=f"inputs (built {kb.meta.get('built', '?')})")
    for c in ("input", "rows", "licence"):
        src.add_column(c)
    for row in built:  # type: ignore[union-attr]
        src.add_row(str(row["input"]), f"{row['rows']:,}", str(row["licence"]))
    console.print(src)


@kb_app.command("link")
def link_cmd(
    mention: str = typer.Argument(..., help="surface text of the fact object"),
    lang: str = typer.Option(None, "--lang", help="en | zh | es"),
    predicate: str = typer.Option(None, "--predicate", help="graph_schema predicate, e.g. LIVES_IN"),
    context: str = typer.Option(None, "--context", help="surrounding text"),
    as_json: bool = typer.Option(False, "--json", help="print the LinkedEntity as JSON"),
) -> None:
    """Link one mention and show the winner, its alternatives and scores."""
    from graph_schema.predicates import UnknownPredicateError
    from linkers import InvalidMentionError, link_object

    _load()
    try:
        ent = link_object(mention, predicate=predicate, lang=lang, context=context)
    except (InvalidMentionError, UnknownPredicateError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(ent.model_dump(), ensure_ascii=False, indent=2))
        return
    title = f"{mention!r} → {ent.key} (score {ent.score:.3f})"
    if ent.is_nil:
        title = f"{mention!r} → NIL {ent.key}: no candidate passed" + ("" if ent.alternatives else " (none found)")
    t = Table(title=title)
    for c in ("qid", "label", "score", "match", "range_ok", "rejected because"):
        t.add_column(c)
    if ent.qid:
        t.add_row(
            ent.qid, ent.label_en or ent.label_zh or ent.label_es or "", f"{ent.score:.3f}", "winner", "True", ""
        )
    for alt in ent.alternatives:
        t.add_row(
            str(alt["qid"]), str(alt["label"]), f"{alt['score']:.3f}", str(alt["match"]), str(alt["range_ok"]),
            str(alt.get("rejected", "")),
        )
    console.print(t)
    if ent.qid:
        console.print(
            f"{ent.label_en} | {ent.label_zh} | {ent.label_es} — {ent.description or ''}; types {ent.types}"
        )


@kb_app.command("harvest")
def harvest_cmd(
    endpoint: str = typer.Option(
        ..., "--endpoint", help="SPARQL endpoint URL, e.g. https://query.wikidata.org/sparql"
    ),
    root: list[str] = typer.Option(..., "--root", help="class QID whose subclass tree to pull; repeatable"),
    out: Path = typer.Option(Path("harvest.nt"), "--out", help="N-Triples file to write"),
    max_classes: int = typer.Option(20_000, "--max-classes", help="cap on subclasses per root"),
    max_items: int = typer.Option(100_000, "--max-items", help="cap on instances"),
    timeout: int = typer.Option(120, "--timeout", help="seconds per SPARQL request"),
) -> None:
    """Harvest class trees with labels/aliases via SPARQL into N-Triples (then: kb build --ntriples FILE)."""
    from linkers.harvest import HarvestError, harvest

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(f"harvesting {', '.join(root)}", total=None)
        try:
            report = harvest(
                endpoint,
                root,
                out,
                max_classes=max_classes,
                max_items=max_items,
                timeout=timeout,
                step=_steps(progress, task),
            )
        except HarvestError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(
        f"[green]{report.triples:,} triples[/green] ({report.classes:,} classes, "
        f"{report.items:,} items) → {report.out}"
    )
