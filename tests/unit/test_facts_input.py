"""The ingest-facts line format: every problem is named by line and field."""

from __future__ import annotations

import json
from pathlib import Path

from engine.ingest import FactLine, LineError, parse_fact_line, read_fact_lines


def line(**kw: object) -> str:
    base = {"doc_id": "d", "user_id": "u", "ts": "2024-01-01T00:00:00Z", "predicate": "likes", "object": "tea"}
    base.update(kw)
    return json.dumps(base)


def test_valid_line_normalises_predicate() -> None:
    parsed = parse_fact_line(line(), 3)
    assert isinstance(parsed, FactLine) and parsed.predicate == "LIKES" and parsed.surface == "tea"


def test_errors_name_line_and_field() -> None:
    cases = {
        line(user_id=""): "user_id",
        line(ts="2024-13-45"): "ts",
        line(confidence=1.5): "confidence",
        line(object=None): "record",
        line(predicate="PURCHASED"): "record",
        line(object_types=["Q1", "Paris"]): "object_types",
        line(extra_field=1): "extra_field",
        line(text="a\x00b"): "text",
        "[1, 2]": "record",
    }
    for raw, field in cases.items():
        err = parse_fact_line(raw, 7)
        assert isinstance(err, LineError), raw
        assert err.line == 7 and err.field == field, (raw, err)


def test_file_reader_reports_bad_bytes_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(line().encode() + b"\n\n" + b'{"doc_id": "\xff\xfe"}\n' + line(doc_id="e").encode() + b"\n")
    items = list(read_fact_lines(path))
    assert [n for n, _ in items] == [1, 3, 4]
    assert isinstance(items[1][1], LineError) and "UTF-8" in items[1][1].message
    assert isinstance(items[2][1], FactLine)
