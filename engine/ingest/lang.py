"""Language of a record: en / zh / es / other."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_STOPWORDS_RAW: dict[str, set[str]] = {
    "en": set(
        "the and is are was were i you my to of in it that this with for have has not but so "
        "very at be on they we just what your our would could there their been from an or "
        "if about will can all do don't i'm it's".split()
    ),
    "es": set(
        "el la los las que y es un por para con muy pero lo se del al yo está como más "
        "su sus le les ya fue hay todo pues porque cuando también eso esto ni nos este esta "
        "estoy tengo soy qué gracias".split()
    ),
    "fr": set("le les des et est je pas du avec pour dans ce qui très une sur mais vous nous".split()),
    "de": set("der die das und ist ich nicht ein eine mit für auf zu sehr auch wir sie aber".split()),
    "pt": set("não com você eu muito são ela isso também uma obrigado ele mas foi".split()),
    "it": set("il di che è non sono per molto gli della questo anche ma ho".split()),
}


def _distinct(sets: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Drop words shared by two languages ("una", "no", "de"): they are no cue."""
    counts = Counter(w for words in sets.values() for w in words)
    return {lang: frozenset(w for w in words if counts[w] == 1) for lang, words in sets.items()}


STOPWORDS = _distinct(_STOPWORDS_RAW)
_WORD = re.compile(r"[a-zà-öø-ÿ']+")
_SPANISH_MARKS = re.compile(r"[ñ¿¡]")


def normalise_lang(code: str | None) -> str | None:
    """'zh-CN' → 'zh', 'es_MX' → 'es', 'EN' → 'en', 'fr' → 'other'; None/empty → None."""
    if not code or not code.strip():
        return None
    base = re.split(r"[-_]", code.strip().lower())[0]
    if base in ("zh", "cmn", "yue", "zho", "chi"):
        return "zh"
    if base in ("en", "eng"):
        return "en"
    if base in ("es", "spa"):
        return "es"
    return "other"


def detect_language(text: str) -> str:
    """en / zh / es / other from script ratios and stopword cues (no model, ~20 µs)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "other"
    n = len(letters)
    han = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana_hangul = sum(1 for c in letters if "\u3040" <= c <= "\u30ff" or "\uac00" <= c <= "\ud7af")
    if han / n > 0.3 and kana_hangul / n < 0.1:
        return "zh"
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin / n < 0.5:
        return "other"
    words = _WORD.findall(text.lower())
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in STOPWORDS.items()}
    scores["es"] += 2 * len(_SPANISH_MARKS.findall(text.lower()))
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        # Short texts without cues ("Great value!"): ASCII is most likely English.
        return "en" if text.isascii() else "other"
    return best if best in ("en", "es") else "other"
