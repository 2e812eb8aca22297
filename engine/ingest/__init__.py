"""Every way data enters the engine: free-text records, fact lines and behaviour events.

Each reader yields `(line, item | LineError)`: a bad line is reported with its line and field and
never stops the file. `engine.pipeline` takes these items through the stages.

    rows.py     JSONL / CSV / Parquet → mappings (UTF-8, BOM, bad JSON, NUL per line)
    records.py  Record validation, oversize chunking, content ids, in-run dedupe
    facts.py    the `ingest-facts` line format (FactLine)
    events.py   behaviour events (Event)
    lang.py     language of a record (en / zh / es / other)
    errors.py   the one LineError
"""

from engine.ingest.errors import LineError, Numbered, from_validation
from engine.ingest.events import Event, event_from_dict, events_from_items, read_events
from engine.ingest.facts import FactLine, fact_from_dict, facts_from_items, parse_fact_line, read_fact_lines
from engine.ingest.lang import detect_language, normalise_lang
from engine.ingest.records import Deduper, content_doc_id, read_records, records_from_dict, records_from_items
from engine.ingest.rows import count_rows, format_of, read_rows

__all__ = [
    "Deduper",
    "Event",
    "FactLine",
    "LineError",
    "Numbered",
    "content_doc_id",
    "count_rows",
    "detect_language",
    "event_from_dict",
    "events_from_items",
    "fact_from_dict",
    "facts_from_items",
    "format_of",
    "from_validation",
    "normalise_lang",
    "parse_fact_line",
    "read_events",
    "read_fact_lines",
    "read_records",
    "read_rows",
    "records_from_dict",
    "records_from_items",
]
