"""`persona demo`: the whole pipeline on the embedded default, with the example data shipped in
`engine/examples` — texts through redaction and the LLM, facts, behaviour, rules, segments."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path

from pydantic import BaseModel, Field

from engine.config import Settings
from engine.ingest import LineError, read_events, read_fact_lines, read_records
from engine.pipeline import ingest_events, ingest_facts, ingest_records
from engine.segment import apply_definition, run_segment
from engine.store import GraphStore

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
    """Example texts through redaction and the configured extractor tier (Settings.extractor)."""
    users: set[str] = set()
    from engine.extract import ExtractionCache, make_tier

    extractor = make_tier(settings.extractor, settings.llm, allow_sensitive=settings.allow_sensitive,
                          model_cache=settings.model_cache)
    cache = ExtractionCache(settings.extraction_cache_path)
    try:
        result = ingest_records(store, settings, read_records(example_path("demo_records.jsonl")),
                                extractor=extractor, cache=cache, on_document=lambda d: users.add(d.user_id))
    finally:
        cache.close()
    report.documents += result.documents
    report.facts += result.applied
    report.users = sorted(set(report.users) | users)


def load_facts(store: GraphStore, settings: Settings, report: DemoReport) -> None:
    lines = list(read_fact_lines(example_path("demo_facts.jsonl")))
    result = ingest_facts(store, settings, lines)
    report.facts += result.applied
    report.documents += result.documents
    report.users = sorted(set(report.users) | {f.user_id for _, f in lines if not isinstance(f, LineError)})


def load_events(store: GraphStore, settings: Settings, report: DemoReport) -> None:
    report.events = ingest_events(store, settings, read_events(example_path("demo_events.jsonl"))).applied


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
    load_events(store, settings, report)
    build_segments(store, report)
    return report
