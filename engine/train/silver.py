"""Silver fact labels for what PersonaExt never labels (`persona train silver`).

PersonaExt labels one fact per sentence and never AGE_BAND, FROM_PLACE, WORKS_AS, GENDER or SPEAKS,
although its sentences state them ("i am a nurse and i love cats", "i am 35 and i live in ohio"). A
pattern teacher proposes those facts in PersonaExt's own sentences and a fact is kept only when it is
checked: a predicate with a range must link to an entity in that range in the knowledge base ("i am a
girl" is no occupation), a literal must normalise ("6 feet" is no age), and the span must not overlap
the gold span. Kept facts join the sentence's gold span, so the tagger learns real sentences that
state two facts. Every split is labelled: training reads the train split's rows, and the test split's
rows are the `silver-en` test set (`persona eval extraction --sets silver-en`). The LLM tier was the
intended teacher; on the shared 2-core machine it labelled 6 sentences in 26 minutes, so the checked
patterns replace it.

The output (`engine/corpora/data/silver_en.jsonl`) is committed; training uses the facts of predicates
the tagger has tags for (TAGGED_PREDICATES).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from engine.corpora import split_of
from engine.extract.encoder.tagging import TAGGED_PREDICATES, Span
from engine.train.examples import FactExample, personaext_examples

SILVER = Path(__file__).resolve().parents[1] / "corpora" / "data" / "silver_en.jsonl"
_END = (r"(?=\s*(?:[.,!?;]|\band\b|\bbut\b|\bso\b|\bwho\b|\bthat\b|\bwith\b|\bin\b|\bat\b|\bfor\b"
        r"|\bwhere\b|\bnow\b|\btoo\b|$))")
_I_AM = r"\b(?:i am|i'm|im|i m)\s+"
_PLACE = r"((?:[a-z]+\s)?[a-z]+)"
_YEARS_OLD = r"(?:\s*-?\s*(?:years?|yrs?)\s*-?\s*old)"
# (predicate, pattern): group 1 is the object as written. An age is its number ("i am [25] years old").
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((p, re.compile(rx, re.I)) for p, rx in (
    ("AGE_BAND", _I_AM + r"(?:only\s+|just\s+|almost\s+|now\s+)?(\d{1,2})" + _YEARS_OLD + "?" + _END),
    ("AGE_BAND", _I_AM + r"(?:a|an)\s+(\d{1,2})" + _YEARS_OLD),
    ("AGE_BAND", r"\bi\s+(?:just\s+)?turned\s+(\d{1,2})\b"),
    ("WORKS_AS", _I_AM + r"(?:a|an)\s+((?:[a-z]+\s)?[a-z]+)" + _END),
    ("WORKS_AS", r"\bi work as\s+(?:a\s+|an\s+)?((?:[a-z]+\s)?[a-z]+)" + _END),
    ("FROM_PLACE", r"\b(?:grew up in|born in|originally from|born and raised in|raised in)\s+(?:the\s+)?"
                   + _PLACE + _END),
    # "i am from X": where PersonaExt's own labels put it (LIVES_IN); FROM_PLACE is derived from "from"
    ("LIVES_IN", _I_AM + r"from\s+(?:the\s+)?" + _PLACE + _END),
    ("LIVES_IN", r"\bi\s+(?:currently\s+|now\s+|still\s+)?live\s+in\s+(?:the\s+)?" + _PLACE + _END),
    ("SPEAKS", r"\bi\s+(?:can\s+)?(?:also\s+)?speak\s+(?:fluent\s+)?"
               r"(?!(?:the|a|an|some|many|several|two|three|it)\b)([a-z]+)"),
    ("SPEAKS", r"\bfluent in\s+([a-z]+)"),
    ("GENDER", _I_AM + r"(?:a|an)\s+(?:\d{1,2}" + _YEARS_OLD + r"\s+)?(?:single\s+|young\s+|old\s+)?"
               r"(girl|guy|man|woman|boy|male|female|lady|gal)\b"),
))


class SilverRow(BaseModel):
    text: str
    gold: list[Span] = Field(default_factory=list)  # PersonaExt's spans
    silver: list[Span] = Field(default_factory=list)  # the teacher's checked spans
    rejected: list[tuple[str, str, str]] = Field(default_factory=list)  # (predicate, object, why)


def checked(predicate: str, obj: str) -> str:
    """Why the fact is not kept ("" when it is): the KB range, or a literal that does not normalise."""
    import linkers
    from engine.eval.extraction import literal_value
    from graph_schema import get_predicate

    pred = get_predicate(predicate)
    if pred.literal_kind is not None:
        return "" if literal_value(predicate, obj) is not None else "not a valid literal"
    if pred.range_classes and linkers.link_object(obj, predicate=predicate, lang="en").qid is None:
        return "outside the KB range"
    return ""


def label_sentence(text: str, gold: Sequence[Span]) -> SilverRow:
    row = SilverRow(text=text, gold=list(gold))
    for predicate, pattern in PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span(1)
            taken = [*row.gold, *row.silver]
            if any(start < s.end and end > s.start for s in taken):
                continue
            why = checked(predicate, m.group(1))
            if why:
                row.rejected.append((predicate, m.group(1), why))
            else:
                row.silver.append(Span(start=start, end=end, predicate=predicate))
    return row


def label(data_dir: Path) -> list[SilverRow]:
    """Every PersonaExt sentence a pattern fires on, with its checked facts. Training reads the train
    split's rows only; the test split's rows are the `silver-en` test set."""
    out = []
    for ex in personaext_examples(data_dir):
        if any(p.search(ex.text) for _, p in PATTERNS):
            out.append(label_sentence(ex.text, ex.spans))
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
