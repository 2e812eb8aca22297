"""Name normalisation shared by the KB builder (alias keys) and the linker (mention keys).

Both sides go through the same functions, so whatever a rule does (even an imperfect English
singular) it does symmetrically: a mention reaches an alias when both reduce to the same key.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Longest normalised key kept; longer mentions are not names (the Fact contract caps objects at 200).
MAX_KEY_CHARS = 120

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# Keep + and # so "C++" / "C#" do not collapse into "C"; every other punctuation mark becomes a space.
_KEEP_PUNCT = {"+", "#"}
_POSSESSIVE = re.compile(r"(?<=\w)['’`´]s\b|(?<=s)['’`´](?=\s|$)")
_SPACES = re.compile(r"\s+")
_ASCII_WORDS = re.compile(r"^[a-z0-9 +#]+$")
# English words ending in s that are not plurals (or whose stem would be misleading).
_NOT_PLURAL = frozenset(
    "news series species physics mathematics economics politics athletics gymnastics billiards "
    "aids bus gas yes its this thus plus less has was is us chaos lens bias atlas canvas iris "
    "tennis texas paris lexus mars venus christmas always perhaps sometimes".split()
)


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    """OpenCC Traditional→Simplified converter, built lazily: it costs ~0.4 s and only CJK needs it."""
    from opencc_purepy import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese (phrase-level OpenCC tables); no-op without CJK characters."""
    if not _CJK.search(text):
        return text
    return _t2s().convert(text)


def _char_class(ch: str) -> str:
    """Map one character to itself, a space (punctuation, symbols, separators) or '' (controls)."""
    cat = unicodedata.category(ch)
    if cat[0] in "LN" or cat == "Mn" or cat == "Mc" or ch in _KEEP_PUNCT:
        return ch
    if cat in ("Cc", "Cf", "Co", "Cs", "Cn"):
        return " " if ch in "\t\n\r\x0b\x0c" else ""
    return " "


def _strip_punct(text: str) -> str:
    if text.isascii():
        # Fast path for the common case: translate table instead of a per-character category lookup.
        return text.translate(_ASCII_TABLE)
    return "".join(_char_class(ch) for ch in text)


_ASCII_TABLE = {
    i: (
        " "
        if (not chr(i).isalnum() and chr(i) not in _KEEP_PUNCT and i >= 32) or chr(i) in "\t\n\r\x0b\x0c"
        else (None if i < 32 or i == 127 else chr(i))
    )
    for i in range(128)
}


@lru_cache(maxsize=65536)
def surface_key(name: str) -> str:
    """NFKC (full/half width), case fold, Traditional→Simplified, possessives, punctuation, spaces.

    This is the exact-match key of the alias index. It does not fold plurals (see `normalise`).
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    text = to_simplified(text)
    text = _POSSESSIVE.sub("", text)
    text = _strip_punct(text)
    return _SPACES.sub(" ", text).strip()[:MAX_KEY_CHARS].strip()


def singular(word: str) -> str:
    """Conservative English singular of one lower-case word (rules, not a dictionary)."""
    if len(word) < 4 or word in _NOT_PLURAL or not word.endswith("s") or word.endswith("ss"):
        return word
    if word.endswith(("us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1]


def fold_plural(key: str) -> str:
    """Singularise the last word of an English-looking (ASCII) key: 'running shoes' → 'running shoe'."""
    if not key or not _ASCII_WORDS.match(key):
        return key
    head, _, last = key.rpartition(" ")
    folded = singular(last)
    return f"{head} {folded}" if head else folded


def normalise(name: str) -> str:
    """Canonical form of a name: `surface_key` plus English plural folding of the last word."""
    return fold_plural(surface_key(name))


def nil_key(name: str, nil_type: str) -> str:
    """Key of a NIL entity: repeated unknown objects of the same kind merge on it."""
    kind = surface_key(nil_type).replace(" ", "_") or "thing"
    return f"nil:{kind}:{normalise(name)}"


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))
