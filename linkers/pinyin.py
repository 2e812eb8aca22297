"""Chinese transliteration variants by sound: 披萨 (pī sà) and 比萨 (bǐ sà) write one loanword with
different characters. A sound key is the toneless pinyin of each character with the distinctions
transliterators disagree on folded away (aspiration p/b t/d k/g q/j c/z ch/zh, retroflex zh/z sh/s,
nasal -ng/-n). Chinese homophones abound (奶茶 milk tea ~ 奶渣 quark), so the characters that differ
must be phonetic ones, those mostly found in names of people and places (萨, 比, 披), not morphemes
(茶, 奶). Readings come from pypinyin's character table when the KB is built; the KB keeps the folded
readings of its own characters, its phonetic characters and the index sound key → alias keys, so
linking needs no pypinyin and no start-up cost.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

# Transliterations of everyday loanwords are short; longer keys are names the exact index handles.
MIN_CHARS, MAX_CHARS = 2, 4
MAX_KEYS = 8  # reading combinations tried for one mention (polyphonic characters multiply)
# A character spells a sound when at least this share of the alias keys holding it name a person or a
# place. Measured on the KB's own aliases (sound matches between everyday-domain alias keys sharing a
# character): without it 0.53 of matches are the same entity, with 0.3 it is 0.92 (23 of 25).
PHONETIC_SHARE = 0.3

_U_UMLAUT = str.maketrans(dict.fromkeys("üǖǘǚǜ", "v"))
_INITIALS = (("zh", "z"), ("ch", "z"), ("sh", "s"), ("c", "z"), ("p", "b"), ("t", "d"), ("k", "g"), ("q", "j"))


def fold_syllable(syllable: str) -> str:
    """Toneless, ü as v, aspiration/retroflex/nasal distinctions folded: 'pī' → 'bi', 'sháng' → 'san'."""
    # ü first (its diaeresis is a combining mark too): lǜ → lv, not lu.
    syllable = unicodedata.normalize("NFC", syllable).translate(_U_UMLAUT)
    plain = "".join(c for c in unicodedata.normalize("NFD", syllable) if unicodedata.category(c) != "Mn")
    for spelled, folded in _INITIALS:
        if plain.startswith(spelled):
            plain = folded + plain[len(spelled) :]
            break
    return plain[:-1] if plain.endswith("ng") else plain


def char_readings(ch: str) -> str:
    """Folded readings of one character, most common first, comma-joined ('' for a non-Han character)."""
    from pypinyin.pinyin_dict import pinyin_dict

    out: list[str] = []
    for reading in (pinyin_dict.get(ord(ch)) or "").split(","):
        folded = fold_syllable(reading.strip()) if reading.strip() else ""
        if folded and folded not in out:
            out.append(folded)
    return ",".join(out)


def is_short_han(text: str) -> bool:
    return MIN_CHARS <= len(text) <= MAX_CHARS and all("\u3400" <= c <= "\u9fff" for c in text)


def sound_key(text: str, readings: Mapping[str, str]) -> str | None:
    """The key of the most common reading of each character, or None (not 2–4 known Han characters)."""
    if not is_short_han(text):
        return None
    parts = [readings.get(ch, "").partition(",")[0] for ch in text]
    return " ".join(parts) if all(parts) else None


def sound_keys(text: str, readings: Mapping[str, str]) -> list[str]:
    """Every reading combination of the text (at most MAX_KEYS), for looking a mention up."""
    if not is_short_han(text):
        return []
    parts = [readings.get(ch, "").split(",") for ch in text]
    if not all(p[0] for p in parts):
        return []
    return [" ".join(combo) for combo in itertools.islice(itertools.product(*parts), MAX_KEYS)]


def build_index(alias_keys: Sequence[str]) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Readings of the characters of short Han alias keys, and sound key → alias key indices."""
    readings: dict[str, str] = {}
    index: dict[str, list[int]] = {}
    for k, key in enumerate(alias_keys):
        if not is_short_han(key):
            continue
        for ch in key:
            if ch not in readings:
                readings[ch] = char_readings(ch)
        found = sound_key(key, readings)
        if found:
            index.setdefault(found, []).append(k)
    return readings, index


def phonetic_characters(keys: Iterable[tuple[str, bool]]) -> str:
    """Characters that mostly spell sounds: in at least PHONETIC_SHARE of the Han alias keys holding
    them, the key names a person or a place (萨 0.74, 比 0.66, 披 0.46; 茶 0.02, 奶 0.03). `keys`
    yields (alias key, names a person or place)."""
    total: Counter[str] = Counter()
    names: Counter[str] = Counter()
    for key, is_name in keys:
        if all("\u3400" <= c <= "\u9fff" for c in key):
            for c in set(key):
                total[c] += 1
                names[c] += is_name
    return "".join(sorted(c for c, n in total.items() if names[c] / n >= PHONETIC_SHARE))


def spelled_alike(a: str, b: str, phonetic: str) -> bool:
    """A transliteration variant, not a homophone: same length, a character in common in the same
    place, and every character that differs spells a sound on both sides (披萨/比萨, not 奶茶/奶渣)."""
    if len(a) != len(b) or a == b:
        return False
    pairs = list(zip(a, b, strict=True))
    return any(x == y for x, y in pairs) and all(x in phonetic and y in phonetic for x, y in pairs if x != y)
