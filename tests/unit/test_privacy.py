"""PII redaction: planted identifiers in en/zh/es never reach the prompt, the cache or the logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

pytest.importorskip("presidio_analyzer")

from engine.contracts import Record  # noqa: E402
from engine.extract import ExtractionCache, Extractor  # noqa: E402
from engine.extract.types import Completion  # noqa: E402
from engine.pipeline import extract_documents  # noqa: E402
from engine.privacy import cn_resident_id_ok, get_redactor, luhn_ok, url_is_personal  # noqa: E402

# Valid test identifiers (checksums pass): Visa test card, UnionPay (Luhn), PRC ID (GB 11643).
VISA = "4111 1111 1111 1111"
UNIONPAY = "6222021234567890128"
CN_ID = "11010519491231002X"
CN_MOBILE = "13812345678"

PLANTED: dict[str, tuple[str, list[str]]] = {
    "en": (
        f"Hi, I'm Sarah Miller, call me at (415) 555-0132 or mail sarah.miller@example.com. "
        f"My card {VISA} was charged twice. I live in Berlin.",
        ["555-0132", "sarah.miller@example.com", VISA, "4111111111111111", "Sarah Miller"],
    ),
    "zh": (
        f"我的手机号是{CN_MOBILE}，身份证号{CN_ID}，银行卡{UNIONPAY}，邮箱 wang.li@qq.com，我住在上海。",
        [CN_MOBILE, CN_ID, UNIONPAY, "wang.li@qq.com"],
    ),
    "es": (
        "Mi móvil es +34 612 345 678 y mi correo es ana.garcia@correo.es. "
        "Tarjeta 5500 0000 0000 0004. Vivo en Madrid.",
        ["612 345 678", "ana.garcia@correo.es", "5500 0000 0000 0004"],
    ),
}


@pytest.fixture(scope="module")
def redactor():
    return get_redactor()


@pytest.mark.parametrize("lang", ["en", "zh", "es"])
def test_planted_pii_is_replaced_by_typed_placeholders(redactor, lang):
    text, secrets = PLANTED[lang]
    result = redactor.redact(text, lang)
    for secret in secrets:
        assert secret not in result.text
    assert "<PHONE>" in result.text and "<EMAIL>" in result.text and "<CARD>" in result.text
    # What a persona needs survives.
    assert {"en": "Berlin", "zh": "上海", "es": "Madrid"}[lang] in result.text
    assert result.counts["<PHONE>"] >= 1


def test_chinese_id_and_glued_mobile(redactor):
    result = redactor.redact(f"身份证{CN_ID}电话{CN_MOBILE}", "zh")
    assert "<ID_NUMBER>" in result.text and "<PHONE>" in result.text
    assert CN_ID not in result.text and CN_MOBILE not in result.text


def test_checksums():
    assert luhn_ok(VISA) and luhn_ok(UNIONPAY)
    assert not luhn_ok("4111 1111 1111 1112")
    assert cn_resident_id_ok(CN_ID)
    assert not cn_resident_id_ok("110105194912310021")  # wrong check digit
    assert not cn_resident_id_ok("11010519491331002X")  # month 13


def test_urls_with_personal_tokens_only(redactor):
    assert url_is_personal("https://shop.example.com/orders?token=abc123def456ghi")
    assert url_is_personal("https://example.com/users/jdoe")
    assert not url_is_personal("https://www.amazon.com/")
    text = "See https://shop.example.com/reset?token=9f8e7d6c5b4a3210ff and amazon.com"
    result = redactor.redact(text, "en")
    assert "<URL>" in result.text and "9f8e7d6c5b4a3210ff" not in result.text
    assert "amazon.com" in result.text


def test_ip_and_unknown_language(redactor):
    result = redactor.redact("Mon IP est 192.168.10.20, appelez +33 6 12 34 56 78", "other")
    assert "192.168.10.20" not in result.text
    assert "12 34 56 78" not in result.text


def test_empty_text(redactor):
    assert redactor.redact("", "en").text == ""


class RecordingBackend:
    """Stands in for the LLM: the unit tier must not load the 1 GB model, and this records
    exactly what the extractor would send to it (the real model is used in tests/llm)."""

    name = "recording"
    model_id = "recording"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, messages, schema, *, max_tokens):
        self.prompts.append(json.dumps(messages, ensure_ascii=False))
        answer = {"facts": [{"predicate": "LIVES_IN", "object": "Berlin"}], "reason": "info", "sentiment": "neutral"}
        return Completion(text=json.dumps(answer), prompt_tokens=10, completion_tokens=5)


@pytest.mark.parametrize("lang", ["en", "zh", "es"])
def test_pii_never_reaches_prompt_cache_or_logs(tmp_path, caplog, redactor, lang):
    text, secrets = PLANTED[lang]
    backend = RecordingBackend()
    cache = ExtractionCache(tmp_path / "cache.sqlite")
    record = Record(user_id="u1", text=text, ts=datetime(2024, 1, 1, tzinfo=UTC), lang=lang)
    with caplog.at_level(logging.DEBUG):
        docs = list(extract_documents([record], Extractor(backend), redactor=redactor, cache=cache))
    cache.close()
    assert docs[0].status == "ok"
    stored = (tmp_path / "cache.sqlite").read_bytes().decode("utf-8", errors="ignore")
    wal = tmp_path / "cache.sqlite-wal"
    if wal.exists():
        stored += wal.read_bytes().decode("utf-8", errors="ignore")
    for secret in secrets:
        assert all(secret not in p for p in backend.prompts)
        assert secret not in stored
        assert secret not in caplog.text
        assert secret not in docs[0].model_dump_json()
