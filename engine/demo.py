"""`persona demo`: the whole pipeline on the embedded default, with the example data shipped in
`engine/examples` — texts through redaction and the LLM, facts, behaviour, rules, segments."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from engine.config import Settings
from engine.events import ingest_event_file
from engine.facts_input import FactLine, read_fact_lines
from engine.persona import get_persona
from engine.pipeline import apply_fact_lines
from engine.segment import apply_definition, run_segment, segment_members
from engine.store import GraphStore
from graph_schema import PREDICATES

EXAMPLES = "engine.examples"


class DemoReport(BaseModel):
    users: list[str] = Field(default_factory=list)
    facts: int = 0
    documents: int = 0
    events: int = 0
    segments: dict[str, int] = Field(default_factory=dict)


def example_path(name: str) -> Path:
    with as_file(files(EXAMPLES).joinpath(name)) as path:
        return Path(path)


def load_texts(store: GraphStore, settings: Settings, report: DemoReport) -> None:
    """Example texts through redaction and the local LLM (the model loads once, ~1 GB)."""
    from engine.contracts import Record
    from engine.extract import ExtractionCache, make_extractor
    from engine.ingest import process_records, read_records
    from engine.pipeline import apply_documents

    extractor = make_extractor(allow_sensitive=settings.allow_sensitive)
    cache = ExtractionCache(Path(settings.home) / "extraction_cache.sqlite")
    records = [r for r in read_records(example_path("demo_records.jsonl")) if isinstance(r, Record)]
    docs = [d for d in process_records(records, extractor, cache=cache, store_text=settings.store_text)
            if d.status == "ok"]
    result = apply_documents(store, settings, docs)
    report.documents += len(docs)
    report.facts += result.facts_applied
    report.users = sorted(set(report.users) | set(result.fuse.users))


def load_facts(store: GraphStore, settings: Settings, report: DemoReport) -> None:
    lines = [f for _, f in read_fact_lines(example_path("demo_facts.jsonl")) if isinstance(f, FactLine)]
    result = apply_fact_lines(store, settings, lines)
    report.facts += result.facts_applied
    report.documents += result.documents
    report.users = sorted(set(report.users) | set(result.fuse.users))


def load_events(store: GraphStore, report: DemoReport) -> None:
    report.events = ingest_event_file(store, example_path("demo_events.jsonl")).events_applied


def build_segments(store: GraphStore, report: DemoReport) -> None:
    folder = example_path("segments")
    for path in sorted(folder.glob("*.yaml")):
        info = apply_definition(store, path)
        run = run_segment(store, info.id)
        report.segments[info.id] = run.size


def run_demo(
    store: GraphStore,
    settings: Settings,
    *,
    texts: Callable[[GraphStore, Settings, DemoReport], None] | None = None,
) -> DemoReport:
    report = DemoReport()
    if texts is not None:
        texts(store, settings, report)
    load_facts(store, settings, report)
    load_events(store, report)
    build_segments(store, report)
    return report


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
