"""Training and evaluation examples for the encoder's tasks, built from the shared corpora."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from engine.corpora import RELATION_MAP, Split, read_kvpi_facts, read_personaext, read_sentiment
from engine.extract.encoder.tagging import TAGGED_PREDICATES, Span
from engine.extract.encoder.tasks import SENTIMENT_LABELS

# employed_by_general objects are workplaces ("army", "bookstore"), not occupations
TRAIN_PREDICATE = {"employed_by_general": "WORKS_AT"}


class FactExample(BaseModel):
    text: str
    lang: str
    split: Split
    spans: list[Span] = Field(default_factory=list)
    source: str = "personaext"


class SentimentExample(BaseModel):
    text: str
    lang: str
    split: Split
    label: int  # index into SENTIMENT_LABELS
    source: str


def personaext_examples(data_dir: Path) -> list[FactExample]:
    """One example per sentence with all its rows' spans (PersonaExt repeats a sentence once per
    relation); relations outside the schema give sentences without a fact."""
    by_text: dict[str, FactExample] = {}
    for row in read_personaext(data_dir):
        example = by_text.setdefault(row.sentence, FactExample(text=row.sentence, lang="en", split=row.split))
        predicates = RELATION_MAP.get(row.relation)
        if predicates:
            predicate = TRAIN_PREDICATE.get(row.relation, predicates[0])
            start, end = row.object_span()
            if predicate in TAGGED_PREDICATES and not any(s.start < end and s.end > start for s in example.spans):
                example.spans.append(Span(start=start, end=end, predicate=predicate))
    for example in by_text.values():
        example.spans.sort(key=lambda s: s.start)
    return list(by_text.values())


def es_silver_examples() -> list[FactExample]:
    """Spanish silver sentences (translated English ones, every object checked; committed file)."""
    from engine.corpora.es_silver import read_silver_es

    return [FactExample(text=r.es, lang="es", split=r.split, source="silver_es",
                        spans=[Span(start=s.start, end=s.end, predicate=s.predicate) for s in r.spans])
            for r in read_silver_es()]


def xpersona_examples(path: Path | None = None) -> list[FactExample]:
    """XPersona's Chinese sentences with the English labels projected onto them (committed file)."""
    from engine.corpora.xpersona import PROJECTED, read_projected

    return [FactExample(text=r.zh, lang="zh", split=r.split, source=f"xpersona-{r.source}",
                        spans=[Span(start=s.start, end=s.end, predicate=s.predicate) for s in r.spans])
            for r in read_projected(path or PROJECTED)]


def kvpi_examples(data_dir: Path) -> list[FactExample]:
    """KvPI's gold LIVES_IN / GENDER statements, the stated word as the span."""
    out = []
    for fact in read_kvpi_facts(data_dir):
        where = fact.span()
        if where is not None:
            out.append(FactExample(text=fact.text, lang="zh", split=fact.split, source="kvpi",
                                   spans=[Span(start=where[0], end=where[1], predicate=fact.predicate)]))
    return out


def sentiment_examples(
    data_dir: Path, langs: Iterable[str], *, per_language: int, seed: int
) -> list[SentimentExample]:
    """Labelled rows per language: all of dev and test, at most `per_language` training rows
    (balanced over labels, seeded) so one big corpus does not drown the others."""
    out: list[SentimentExample] = []
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    for lang in langs:
        rows = list(read_sentiment(data_dir, lang))
        train = [r for r in rows if r.split == "train"]
        rng.shuffle(train)
        by_label: dict[str, list] = {}
        for r in train:
            by_label.setdefault(r.gold, []).append(r)
        quota = per_language // max(len(by_label), 1)
        kept = [r for label in sorted(by_label) for r in by_label[label][:quota]]
        kept += [r for r in rows if r.split != "train"]
        out += [SentimentExample(text=r.text, lang=lang, split=r.split, label=SENTIMENT_LABELS.index(r.gold),
                                 source=r.source) for r in kept]
    return out


def split(examples: Iterable, name: Split) -> list:
    return [e for e in examples if e.split == name]


def review_examples(path: Path) -> tuple[list[FactExample], list[SentimentExample]]:
    """Examples from `persona review export --format train` (JSONL): reviewers' judgements, so
    training can mix corrections in. A row with `spans` is a fact example, one with `label` a
    sentiment example."""
    import json

    facts: list[FactExample] = []
    sentiments: list[SentimentExample] = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "spans" in row:
                facts.append(FactExample(**row))
            elif "label" in row:
                sentiments.append(SentimentExample(**row))
            else:
                raise ValueError(f"{path}: line {n}: neither a fact example (spans) nor a sentiment example (label)")
    return facts, sentiments
