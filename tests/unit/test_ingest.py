"""Reading records: per-record errors with line and field, chunking, dedupe, language detection."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest

from engine.contracts import Record
from engine.extract import ExtractionCache, Extractor
from engine.extract.types import Completion
from engine.ingest import LineError, detect_language, normalise_lang, read_records
from engine.pipeline import extract_documents

TS = "2024-05-01T10:00:00Z"


def write_jsonl(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_jsonl_bad_records_are_reported_and_the_batch_goes_on(tmp_path):
    path = tmp_path / "in.jsonl"
    ok = {"user_id": "u1", "text": "I live in Berlin.", "ts": TS}
    write_jsonl(
        path,
        [
            json.dumps(ok).encode(),
            b'{"user_id": "u2", "text": "broken',  # bad JSON
            json.dumps({"text": "no user", "ts": TS}).encode(),  # missing user_id
            json.dumps({"user_id": "u3", "text": "x", "ts": "yesterday-ish"}).encode(),  # invalid ts
            b'{"user_id": "u4", "text": "caf\xe9", "ts": "2024-01-01"}',  # latin-1 byte: invalid UTF-8
            json.dumps({"user_id": "u5", "text": "\x00\x01\x02binary\x00", "ts": TS}).encode(),
            json.dumps({"user_id": "u6", "text": "", "ts": TS}).encode(),  # empty text: a valid record
            json.dumps({"user_id": "u7", "text": "Vivo en Madrid.", "ts": TS, "lang": "es-MX"}).encode(),
        ],
    )
    items = [i for _, i in read_records(path)]
    errors = [i for i in items if isinstance(i, LineError)]
    records = [i for i in items if isinstance(i, Record)]
    assert [r.user_id for r in records] == ["u1", "u6", "u7"]
    by_line = {e.line: e for e in errors}
    assert "not valid JSON" in by_line[2].message
    assert by_line[3].field == "user_id" and by_line[3].message == "missing"
    assert by_line[4].field == "ts"
    assert "invalid UTF-8" in by_line[5].message
    assert by_line[6].field == "text" and "binary" in by_line[6].message
    assert all(e.fatal for e in errors)
    assert "line 3: user_id: missing" == str(by_line[3])


def test_oversized_text_is_chunked_and_says_so(tmp_path):
    path = tmp_path / "big.jsonl"
    text = ("I live in Berlin and I love long walks. " * 1250)[:50_000]
    write_jsonl(path, [json.dumps({"user_id": "u1", "text": text, "ts": TS, "doc_id": "d1"}).encode()])
    items = [i for _, i in read_records(path)]
    warning, *parts = items
    assert isinstance(warning, LineError) and not warning.fatal
    assert "50000 characters chunked into 3 documents" in warning.message
    assert [p.doc_id for p in parts] == ["d1#part1", "d1#part2", "d1#part3"]
    assert "".join(p.text for p in parts) == text
    assert all(len(p.text) <= 20_000 for p in parts)
    truncated = [i for _, i in read_records(path, oversize="truncate")]
    assert "truncated" in truncated[0].message and len(truncated) == 2


def test_csv_and_parquet(tmp_path):
    csv_path = tmp_path / "in.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["user_id", "text", "ts", "source"])
        writer.writeheader()
        writer.writerow({"user_id": "u1", "text": "我住在上海", "ts": TS, "source": "review"})
        writer.writerow({"user_id": "", "text": "no user", "ts": TS, "source": "review"})
    items = [i for _, i in read_records(csv_path)]
    assert isinstance(items[0], Record) and items[0].source == "review"
    assert isinstance(items[1], LineError) and items[1].line == 3 and items[1].field == "user_id"

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"user_id": ["u1", None], "text": ["Vivo en Madrid", "x"], "ts": [TS, TS]})
    pq.write_table(table, tmp_path / "in.parquet")
    items = [i for _, i in read_records(tmp_path / "in.parquet")]
    assert isinstance(items[0], Record)
    assert isinstance(items[1], LineError) and items[1].line == 2 and items[1].field == "user_id"


def test_unsupported_file_type(tmp_path):
    with pytest.raises(ValueError):
        list(read_records(tmp_path / "x.xlsx"))


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I live in Berlin and I love my dog.", "en"),
        ("Great value!", "en"),
        ("我是一名护士，住在杭州。", "zh"),
        ("送餐太慢了", "zh"),
        ("Vivo en Madrid y me encanta el fútbol.", "es"),
        ("¿Qué tal? Muy bien, gracias.", "es"),
        ("Je suis très content de ce produit, merci pour tout.", "other"),
        ("Ich bin sehr zufrieden und die Lieferung war schnell.", "other"),
        ("Я живу в Москве.", "other"),
        ("東京に住んでいます。", "other"),
        ("12345 !!!", "other"),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_normalise_lang():
    assert normalise_lang("zh-CN") == "zh" and normalise_lang("es_MX") == "es"
    assert normalise_lang("EN") == "en" and normalise_lang("fr") == "other" and normalise_lang("") is None


class FixedBackend:
    """Answers every call with one valid JSON document. The unit tier must not load the
    1 GB model; what is tested here is dedupe, caching and bookkeeping, not the model."""

    name = "fixed"
    model_id = "fixed"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages, schema, *, max_tokens):
        self.calls += 1
        answer = {"facts": [{"predicate": "LIVES_IN", "object": "Berlin"}], "reason": "x", "sentiment": "neutral"}
        return Completion(text=json.dumps(answer), prompt_tokens=50, completion_tokens=10)


def rec(user: str, text: str, doc_id: str | None = None, lang: str | None = None) -> Record:
    return Record(user_id=user, text=text, ts=datetime(2024, 1, 1, tzinfo=UTC), doc_id=doc_id, lang=lang)


def test_process_records_dedupes_caches_and_reports(tmp_path):
    pytest.importorskip("presidio_analyzer")
    backend = FixedBackend()
    extractor = Extractor(backend)
    cache = ExtractionCache(tmp_path / "cache.sqlite")
    records = [
        rec("u1", "I live in Berlin.", doc_id="a"),
        rec("u1", "I live in Berlin.", doc_id="a"),  # same doc_id
        rec("u1", "I live in Berlin."),  # same user + text
        rec("u2", "I live in Berlin."),  # another user: a new document, but a cache hit
        rec("u3", "   "),
        rec("u4", "Je vis à Berlin, j'habite ici depuis longtemps."),
    ]
    docs = list(extract_documents(records, extractor, cache=cache))
    assert [d.status for d in docs] == ["ok", "duplicate", "duplicate", "ok", "empty", "ok"]
    assert docs[0].llm_calls == 1 and not docs[0].cached
    assert docs[3].cached and docs[3].llm_calls == 0
    assert docs[0].facts[0].object == "Berlin" and docs[0].facts[0].evidence == "I live in Berlin."
    assert docs[5].lang == "other" and any("not en/zh/es" in n for n in docs[5].notes)
    assert docs[3].doc_id.startswith("h:")
    assert backend.calls == 2  # u1 once, u4 once; the u2 text came from the cache
    no_text = list(extract_documents([rec("u9", "I live in Berlin.")], extractor, store_text=False))
    assert no_text[0].redacted_text is None


def test_ingest_command_dry_run_prints_summary(tmp_path, monkeypatch):
    pytest.importorskip("presidio_analyzer")
    from typer.testing import CliRunner

    import engine.extract as extract_pkg
    from engine.cli import app

    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(extract_pkg, "make_tier", lambda *a, **k: Extractor(FixedBackend()))
    path = tmp_path / "in.jsonl"
    ok = json.dumps({"user_id": "u1", "text": "I live in Berlin.", "ts": TS}).encode()
    write_jsonl(path, [ok, ok, b"{bad json", json.dumps({"user_id": "u2", "text": "", "ts": TS}).encode()])
    out = tmp_path / "docs.jsonl"
    result = CliRunner().invoke(
        app, ["ingest", str(path), "--dry-run", "--output", str(out), "--errors-out", str(tmp_path / "errors.jsonl")],
        env={"COLUMNS": "200"},
    )
    printed = result.stdout
    assert result.exit_code == 1, result.output  # one record failed
    assert "facts kept" in printed and "LLM calls" in printed
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["status"] for d in docs] == ["ok", "duplicate", "empty"]
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert errors[0]["line"] == 3 and "not valid JSON" in errors[0]["message"]
    assert (tmp_path / "home" / "extraction_cache.sqlite").exists()


def test_ingest_command_exits_zero_when_every_record_went_in(tmp_path, monkeypatch):
    pytest.importorskip("presidio_analyzer")
    from typer.testing import CliRunner

    import engine.extract as extract_pkg
    from engine.cli import app

    monkeypatch.setattr(extract_pkg, "make_tier", lambda *a, **k: Extractor(FixedBackend()))
    path = tmp_path / "in.jsonl"
    write_jsonl(path, [json.dumps({"user_id": "u1", "text": "I live in Berlin.", "ts": TS}).encode()])
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "ingest", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["docs"], report["failed"], report["users"]) == ({"ok": 1}, 0, 1)
