"""Persona facts as token tagging: BIO tags over the predicates the tagger learns.

A fact is an object span with its predicate ("i love [jazz]LIKES", "我是一名[护士]WORKS_AS"). Gold
spans are character spans; the tokenizer's offsets turn them into sub-word tags and back, so the
scheme works without word boundaries (Chinese) and the object is always text as written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

# The predicates the tagger learns, in a fixed order (the head's output layout depends on it; new
# predicates go at the end, so `persona train facts --resume` keeps the older head's rows).
TAGGED_PREDICATES: tuple[str, ...] = (
    "LIKES", "DISLIKES", "HAS_PET", "OWNS", "LIVES_IN", "WORKS_AT", "WORKS_AS", "WANTS",
    "STUDIES_AT", "HAS_FAMILY", "MARITAL_STATUS", "DIET", "GENDER", "FROM_PLACE", "AGE_BAND", "SPEAKS",
)
TAGS: tuple[str, ...] = ("O", *(f"{p}-{bi}" for p in TAGGED_PREDICATES for bi in ("B", "I")))
TAG_ID = {t: i for i, t in enumerate(TAGS)}
IGNORE = -100  # special tokens: no loss


class Span(BaseModel):
    start: int
    end: int
    predicate: str


class TaggedSpan(Span):
    text: str
    confidence: float  # raw: the least sure of the span's tag probabilities (calibrated later)


def b_tag(predicate: str) -> int:
    return TAG_ID[f"{predicate}-B"]


def i_tag(predicate: str) -> int:
    return TAG_ID[f"{predicate}-I"]


def encode_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[int]:
    """Tag per sub-word token: B on the first token that overlaps a span, I on the rest of it, O
    outside; special tokens (empty offsets) are ignored by the loss."""
    tags: list[int] = []
    previous: int | None = None
    for start, end in offsets:
        if start == end:
            tags.append(IGNORE)
            continue
        hit = next((k for k, s in enumerate(spans) if start < s.end and end > s.start), None)
        if hit is None:
            tags.append(TAG_ID["O"])
        else:
            pred = spans[hit].predicate
            tags.append(i_tag(pred) if hit == previous else b_tag(pred))
        previous = hit
    return tags


# A token the argmax leaves outside a span still continues it when the span's predicate holds at
# least this share of its probability ("software [engineer]": O 0.50, I 0.46). Chosen on the mean F1
# of the four dev splits (PersonaExt, XPersona zh, KvPI zh, es silver): 0.6086 without, 0.6088 at 0.45,
# 0.6070 at 0.40 and below (the weights of 2026-12-02 evening).
CONTINUE_AT = 0.45


def decode_spans(
    text: str, offsets: Sequence[tuple[int, int]], probs: Sequence[Sequence[float]],
    continue_at: float = CONTINUE_AT,
) -> list[TaggedSpan]:
    """Spans from per-token tag probabilities (argmax, then BIO repair: an I without a B starts a span;
    an O token whose B + I probability of the open span's predicate is ≥ `continue_at` extends it).

    A span's confidence is the smallest probability of the tags that make it up, so one unsure token
    makes the whole fact unsure; a token that only extends a span changes where it ends, not its
    confidence.
    """
    spans: list[TaggedSpan] = []
    current: dict | None = None
    if not len(offsets):
        return spans
    table = np.asarray(probs, dtype=np.float64)
    best_tags = table.argmax(axis=1)  # the first of equal maxima, as max() over the row would pick
    best_probs = table[np.arange(len(best_tags)), best_tags].tolist()
    for row, ((start, end), best, prob) in enumerate(zip(offsets, best_tags.tolist(), best_probs, strict=True)):
        if start == end:
            continue
        tag = TAGS[best]
        if tag == "O" and current is not None and _share(table[row], current["predicate"]) >= continue_at:
            current["end"] = end
            continue
        if tag == "O":
            current = _close(text, current, spans)
            continue
        pred, bi = tag.rsplit("-", 1)
        if current is not None and current["predicate"] == pred and bi == "I":
            current["end"], current["conf"] = end, min(current["conf"], prob)
            continue
        _close(text, current, spans)
        current = {"start": start, "end": end, "predicate": pred, "conf": prob}
    _close(text, current, spans)
    return spans


def _share(row: np.ndarray, predicate: str) -> float:
    return float(row[TAG_ID[f"{predicate}-B"]] + row[TAG_ID[f"{predicate}-I"]])


def _in_word(ch: str) -> bool:
    """A letter or digit of a script that separates words with spaces (not CJK)."""
    return ch.isalnum() and not ("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff")


def _close(text: str, current: dict | None, spans: list[TaggedSpan]) -> None:
    if current is None:
        return None
    start, end = current["start"], current["end"]
    while start < end and text[start].isspace():
        start += 1
    # a span ends where its word ends: sub-word pieces ("hun" of "hunting") become the whole word
    while start > 0 and _in_word(text[start - 1]) and _in_word(text[start]):
        start -= 1
    while end < len(text) and end > 0 and _in_word(text[end]) and _in_word(text[end - 1]):
        end += 1
    surface = text[start:end].strip()
    if surface:
        spans.append(TaggedSpan(start=start, end=start + len(surface), predicate=current["predicate"],
                                text=surface, confidence=float(current["conf"])))
    return None
