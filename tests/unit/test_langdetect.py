"""Language detection: script check for CJK / non-Latin text, lingua for Latin text, en/zh/es/other."""

from __future__ import annotations

import threading

import pytest

from engine.ingest import lang as langdetect
from engine.ingest.lang import detect_language, normalise_lang


@pytest.mark.parametrize(
    "text",
    [
        "I live in Berlin and I love my dog.",
        "Great value!",
        "The battery died after two days and support never answered my emails.",
        "lol i am a student but i am a barista part time",
        "@john_doe check this out https://example.com/x the delivery was really quick",
    ],
)
def test_english(text):
    assert detect_language(text) == "en"


@pytest.mark.parametrize(
    "text",
    [
        "我是一名护士，住在杭州。",
        "送餐太慢了",
        "我買了一支新手機，電池很耐用。",  # traditional Chinese
        "我买了iPhone 15，很好用",  # Chinese with a Latin brand name
        "好",
    ],
)
def test_chinese(text):
    assert detect_language(text) == "zh"


@pytest.mark.parametrize(
    "text",
    [
        "Vivo en Madrid y me encanta el fútbol.",
        "¿Qué tal? Muy bien, gracias.",
        "@franAdrianza No es lo mismo",
        "Me sigo sintiendo re agotada",
        "El pedido llegó tarde y la comida estaba fría #nuncamás",
    ],
)
def test_spanish(text):
    assert detect_language(text) == "es"


@pytest.mark.parametrize(
    "text",
    [
        "Je suis très content de ce produit, merci pour tout.",
        "Ich bin sehr zufrieden und die Lieferung war schnell.",
        "Eu moro em Lisboa e adoro futebol, mas não gosto de chuva.",
        "Abito a Roma e amo il calcio, ma odio la pioggia.",
        "Ik woon in Amsterdam en ik fiets elke dag naar mijn werk.",
        "Я живу в Москве.",
        "東京に住んでいます。",
        "서울에 살고 있어요.",
        "أنا أعيش في القاهرة",
        "Είμαι πολύ ευχαριστημένος.",
    ],
)
def test_other_languages(text):
    assert detect_language(text) == "other"


@pytest.mark.parametrize("text", ["", "   ", "12345 !!!", "😀😀👍", "3.14 + 2 = 5.14", "@@ ## //"])
def test_no_letters_is_other(text):
    assert detect_language(text) == "other"


def test_long_text_is_judged_by_its_opening():
    english = "I really like this phone because the battery lasts all day. "
    spanish = "Me encanta este teléfono porque la batería dura todo el día. "
    text = english * 40 + spanish * 400  # 2,400 chars of English, then 24,000 of Spanish
    assert len(english * 40) > langdetect.MAX_CHARS
    assert detect_language(text) == "en"


def test_long_text_opening_without_letters_uses_first_letters():
    text = "1234567890 " * 200 + "Vivo en Madrid y me encanta el fútbol."
    assert detect_language(text) == "es"


def test_return_values_are_in_the_label_set():
    for text in ("ok", "A+++", "wow", "Nice ambiance.", "iPhone 15", "Gracias", "x"):
        assert detect_language(text) in ("en", "zh", "es", "other")


def test_detector_is_built_once_across_threads():
    langdetect._detector = None  # the lazy build under test; other tests rebuild it as needed
    seen: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            assert detect_language("The delivery was quick and the food was great.") == "en"
            seen.append(id(langdetect._get_detector()))
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 4 and len(set(seen)) == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("zh-CN", "zh"),
        ("zh_TW", "zh"),
        ("cmn", "zh"),
        ("yue", "zh"),
        ("es_MX", "es"),
        ("spa", "es"),
        ("EN", "en"),
        ("en-US", "en"),
        (" eng ", "en"),
        ("fr", "other"),
        ("pt-BR", "other"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_lang(code, expected):
    assert normalise_lang(code) == expected
