"""Silver fact labels from the LLM tier as a checked teacher (`persona train silver`).

PersonaExt labels one fact per sentence and never FROM_PLACE, AGE_BAND, WORKS_AS, GENDER or SPEAKS.
The LLM tier reads first-person training sentences that carry a cue for those (an occupation, an
age, an origin, a language, a gender word) and its facts are kept only when they pass the same
grounding as any fact (object in the text, about the author, literal values normalise) and agree
with the knowledge base: a predicate with a range must link to an entity in that range. A kept
fact becomes a span in the sentence next to PersonaExt's own (never overlapping it), so the tagger
also learns sentences that state two facts. Only training-split sentences are ever labelled.

The output (`engine/corpora/data/silver_en.jsonl`) is committed: labelling takes ~1–2 s a sentence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from engine.corpora import split_of
from engine.extract.encoder.tagging import TAGGED_PREDICATES, Span
from engine.train.examples import FactExample

SILVER = Path(__file__).resolve().parents[1] / "corpora" / "data" / "silver_en.jsonl"
# sentences worth the LLM's time, by what they likely state that PersonaExt never labels
CUES: dict[str, re.Pattern[str]] = {name: re.compile(pattern, re.I) for name, pattern in {
    "WORKS_AS": r"\b(?:i work as|my job is|i am an? \w+er\b|i'm an? \w+er\b|i am an? (?:nurse|doctor|chef|lawyer|"
                r"teacher|student|artist|accountant|engineer|mechanic|pilot|dentist|cashier))",
    "AGE_BAND": r"\b(?:\d+ years old|i am \d+\b|i'm \d+\b|my age)",
    "FROM_PLACE": r"\b(?:i am from|i'm from|grew up in|born in|originally from)",
    "SPEAKS": r"\b(?:i speak|i can speak|fluent in|languages?)\b",
    "GENDER": r"\b(?:i am|i'm) (?:a |an )?(?:girl|guy|man|woman|male|female|boy|mom|dad|mother|father)\b",
}.items()}
WANTED = ("WORKS_AS", "FROM_PLACE", "AGE_BAND", "GENDER", "SPEAKS", "LIVES_IN", "OWNS", "HAS_PET", "LIKES",
          "DISLIKES", "HAS_FAMILY", "MARITAL_STATUS")


class SilverRow(BaseModel):
    text: str
    gold: list[Span] = Field(default_factory=list)  # PersonaExt's spans
    silver: list[Span] = Field(default_factory=list)  # the teacher's checked spans
    rejected: list[tuple[str, str, str]] = Field(default_factory=list)  # (predicate, object, why)


def candidates(data_dir: Path, limit: int) -> list[tuple[str, list[Span]]]:
    """Training-split PersonaExt sentences with a cue and their gold spans, the cue kinds taken in
    turn so a short labelling run covers every predicate."""
    from engine.train.examples import personaext_examples

    by_cue: dict[str, list[tuple[str, list[Span]]]] = {name: [] for name in CUES}
    for ex in personaext_examples(data_dir):
        cue = next((name for name, pattern in CUES.items() if pattern.search(ex.text)), None)
        if ex.split == "train" and cue:
            by_cue[cue].append((ex.text, ex.spans))
    turns = [sorted(items) for items in by_cue.values()]
    mixed = [item for group in zip_longest(*turns) for item in group if item is not None]
    return mixed[:limit]


def in_range(predicate: str, obj: str) -> tuple[bool, str]:
    """A predicate with a range must link to an entity in it; literals were checked by grounding."""
    import linkers
    from graph_schema import get_predicate

    pred = get_predicate(predicate)
    if not pred.range_classes:
        return True, ""
    linked = linkers.link_object(obj, predicate=predicate, lang="en")
    return (linked.qid is not None, "" if linked.qid else "outside the KB range")


def check_fact(text: str, predicate: str, obj: str, gold: Sequence[Span]) -> tuple[Span | None, str]:
    """The fact's span in `text` if it is one the tagger can learn, else why not."""
    where = text.lower().find(obj.lower())
    if where < 0:
        return None, "object not in text"
    span = Span(start=where, end=where + len(obj), predicate=predicate)
    if any(span.start < g.end and span.end > g.start for g in gold):
        return None, "overlaps the gold span"
    ok, why = in_range(predicate, obj)
    return (span, "") if ok else (None, why)


def label(teacher: Any, items: Sequence[tuple[str, list[Span]]], *, seconds: float,
          progress: Callable[[int, int], None] | None = None) -> list[SilverRow]:
    """Teacher facts per sentence until the time budget is spent (bounded: the LLM is slow)."""
    started, out = time.perf_counter(), []
    for n, (text, gold) in enumerate(items, start=1):
        if time.perf_counter() - started > seconds:
            break
        row = SilverRow(text=text, gold=gold)
        for fact in teacher.extract(text, "en").facts:
            if fact.predicate not in WANTED:
                continue
            span, why = check_fact(text, fact.predicate, fact.object, [*gold, *row.silver])
            if span is None:
                row.rejected.append((fact.predicate, fact.object, why))
            elif not any(g.predicate == span.predicate and g.start == span.start for g in gold):
                row.silver.append(span)
        out.append(row)
        if progress is not None:
            progress(n, len(items))
    return out


def read_silver(path: Path = SILVER) -> list[SilverRow]:
    with Path(path).open(encoding="utf-8") as handle:
        return [SilverRow.model_validate_json(line) for line in handle if line.strip()]


def silver_examples(path: Path = SILVER) -> list[FactExample]:
    """Training examples: PersonaExt's spans plus the checked silver ones the tagger learns (train split)."""
    out = []
    for r in read_silver(path):
        silver = [s for s in r.silver if s.predicate in TAGGED_PREDICATES]
        if silver and split_of(r.text) == "train":
            out.append(FactExample(text=r.text, lang="en", split="train", source="silver",
                                   spans=sorted([*r.gold, *silver], key=lambda s: s.start)))
    return out
