"""Spanish silver facts: English labelled sentences translated by the bundled LLM, object marked.

No labelled Spanish persona set exists in reach, so `persona train translate-es` (engine/train/translate.py)
asks the local LLM to translate English sentences whose object spans are marked `[[...]]` and keeps a
translation only when every marked Spanish object is checked against its English one: it links to the
same Wikidata QID, or, for a literal, normalises to the same value. The kept rows are committed as
`data/silver_es.jsonl`; their split is the English sentence's (`key`), so a Spanish test row never
translates an English training sentence.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from engine.corpora.jsonl import read_rows
from engine.corpora.splits import Split, split_of

SILVER_ES = Path(__file__).resolve().parent / "data" / "silver_es.jsonl"


class SilverEsError(ValueError):
    pass


class SilverEsSpan(BaseModel):
    start: int
    end: int
    predicate: str
    text: str  # the Spanish object as written
    en: str  # the English object it translates
    check: str  # how it was checked: "qid:<QID>" or "literal:<value>"


class SilverEsRow(BaseModel):
    es: str
    en: str
    key: str  # the English sentence the split is drawn from
    source: str  # personaext (gold English spans) | silver_en (plus checked pattern facts)
    spans: list[SilverEsSpan] = Field(default_factory=list)

    @property
    def split(self) -> Split:
        return split_of(self.key)


def read_silver_es(path: Path = SILVER_ES) -> list[SilverEsRow]:
    """The committed Spanish silver rows; [] when the file was never built."""
    path = Path(path)
    if not path.is_file():
        return []
    return read_rows(path, SilverEsRow, SilverEsError)
