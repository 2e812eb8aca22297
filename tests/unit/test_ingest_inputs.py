"""Every input reader through the one LineError: a bad line never stops the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine.contracts import Record
from engine.ingest import Event, FactLine, LineError, read_events, read_fact_lines, read_records

TS = "2024-05-01T10:00:00Z"
BOM = b"\xef\xbb\xbf"


def jsonl(path: Path, rows: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def event(**kw: object) -> bytes:
    base = {"user_id": "ana", "type": "purchase", "item": "ball", "ts": TS}
    base.update(kw)
    return json.dumps(base).encode()


def fact(**kw: object) -> bytes:
    base = {"doc_id": "d1", "user_id": "ana", "ts": TS, "predicate": "LIKES", "object": "tea"}
    base.update(kw)
    return json.dumps(base).encode()


def record(**kw: object) -> bytes:
    base = {"user_id": "ana", "text": "I like tea.", "ts": TS}
    base.update(kw)
    return json.dumps(base).encode()


def errors_by_line(items) -> dict[int | None, LineError]:
    return {line: item for line, item in items if isinstance(item, LineError)}


READERS = [(read_events, event, Event), (read_fact_lines, fact, FactLine), (read_records, record, Record)]


@pytest.mark.parametrize(("reader", "make", "kind"), READERS)
def test_a_bom_does_not_fail_line_one(tmp_path: Path, reader, make, kind) -> None:
    items = list(reader(jsonl(tmp_path / "in.jsonl", [BOM + make(), make(user_id="bob")])))
    assert [type(i) for _, i in items] == [kind, kind]


@pytest.mark.parametrize(("reader", "make", "kind"), READERS)
def test_invalid_utf8_fails_its_line_only(tmp_path: Path, reader, make, kind) -> None:
    items = list(reader(jsonl(tmp_path / "in.jsonl", [make(), b'{"user_id": "caf\xe9"}', make(user_id="bob")])))
    bad = errors_by_line(items)
    assert list(bad) == [2] and "UTF-8" in bad[2].message
    assert sum(isinstance(i, kind) for _, i in items) == 2


@pytest.mark.parametrize(("reader", "make", "kind"), READERS)
@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1f", "\x7f"])
def test_control_characters_in_user_id_are_refused_by_field(tmp_path: Path, reader, make, kind, char) -> None:
    items = list(reader(jsonl(tmp_path / "in.jsonl", [make(user_id=f"al{char}ice"), make(user_id="bob")])))
    bad = errors_by_line(items)
    assert bad[1].field == "user_id", bad[1]
    assert [i.user_id for _, i in items if isinstance(i, kind)] == ["bob"]


@pytest.mark.parametrize(("reader", "make", "kind"), READERS)
@pytest.mark.parametrize("ts", [123, 1714557600.0, True, "123", "yesterday"])
def test_timestamps_must_be_iso_strings(tmp_path: Path, reader, make, kind, ts) -> None:
    items = list(reader(jsonl(tmp_path / "in.jsonl", [make(ts=ts)])))
    (line, err), = items
    assert isinstance(err, LineError) and err.field == "ts", err


def test_event_nul_in_item_and_id_fields_fail_alone(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "ev.jsonl", [event(item="ba\x00ll"), event(event_id="e\x00"), event(), event(item="x\x01")])
    items = list(read_events(path))
    bad = errors_by_line(items)
    assert {n: e.field for n, e in bad.items()} == {1: "item", 2: "event_id", 4: "item"}
    assert sum(isinstance(i, Event) for _, i in items) == 1


def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    facts = list(read_fact_lines(jsonl(tmp_path / "f.jsonl", [fact(confidence=True), fact(sentiment=False)])))
    assert [e.field for _, e in facts] == ["confidence", "sentiment"]
    events = list(read_events(jsonl(tmp_path / "e.jsonl", [event(amount=True)])))
    assert events[0][1].field == "amount"
    ok = list(read_fact_lines(jsonl(tmp_path / "ok.jsonl", [fact(confidence=1), fact(confidence=0.5)])))
    assert [i.confidence for _, i in ok] == [1.0, 0.5]


def test_csv_with_bom_and_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "ev.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "type", "item", "ts"])
        writer.writerow(["ana", "purchase", "ball", TS])
        writer.writerow(["bob", "purchase", "ball", "1714557600"])
        writer.writerow(["cy", "view", "hat", TS, "extra"])
        writer.writerow(["dee", "view", "hat", TS])
    items = list(read_events(path))
    bad = errors_by_line(items)
    assert bad[3].field == "ts" and bad[4].field == "record"
    assert [i.user_id for _, i in items if isinstance(i, Event)] == ["ana", "dee"]


def test_line_error_reads_the_same_everywhere(tmp_path: Path) -> None:
    items = [
        *read_events(jsonl(tmp_path / "e.jsonl", [b"{broken", event(colour="red")])),
        *read_fact_lines(jsonl(tmp_path / "f.jsonl", [b"{broken", fact(colour="red")])),
        *read_records(jsonl(tmp_path / "r.jsonl", [b"{broken"])),
    ]
    texts = [str(e) for _, e in items]
    assert texts[0] == texts[2] == texts[4] and texts[0].startswith("line 1: record: not valid JSON")
    assert texts[1] == texts[3] == "line 2: colour: unknown field"


def nested_line(make, depth: int) -> bytes:
    """A valid line with one more field holding lists nested `depth` deep."""
    return make()[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(("reader", "make", "kind"), READERS)
@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deeply_nested_lines_fail_alone(tmp_path: Path, reader, make, kind, depth: int) -> None:
    path = jsonl(tmp_path / "in.jsonl", [make(), nested_line(make, depth), make(user_id="bob")])
    items = list(reader(path))
    bad = errors_by_line(items)
    assert list(bad) == [2] and bad[2].message.startswith("too deeply nested"), bad
    assert [i.user_id for _, i in items if isinstance(i, kind)] == ["ana", "bob"]


def test_nesting_within_the_limit_is_read_and_api_items_are_checked_too() -> None:
    from engine.ingest import facts_from_items
    from engine.ingest.rows import MAX_NESTING, too_deep

    def nest(depth: int) -> dict:
        value: dict = {}
        for _ in range(depth - 1):
            value = {"x": value}
        return value

    assert not too_deep(nest(MAX_NESTING)) and too_deep(nest(MAX_NESTING + 1))
    item = json.loads(fact().decode()) | {"deep": nest(MAX_NESTING)}
    ((line, error),) = list(facts_from_items([item]))
    assert line == 1 and error.message.startswith("too deeply nested")
