"""Document sentiment corpora: zh (waimai takeaway + online shopping reviews), en (UCI Amazon/Yelp/IMDb
sentences), es (TASS 2020 tweets, three classes). Each row gets a split by a hash of its text."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from engine.corpora.splits import Split, split_of

FOLDER = Path("sentiment")
FILES: dict[str, tuple[str, ...]] = {
    "zh": ("zh_waimai_10k.jsonl", "zh_online_shopping_10_cats.jsonl.gz"),
    "en": ("en_uci_amazon_yelp.jsonl",),
    "es": ("es_tass2020_train.jsonl",),
}
LABELS = {1: "positive", 0: "negative", "1": "positive", "0": "negative",
          "P": "positive", "N": "negative", "NEU": "neutral"}


class SentimentRow(BaseModel):
    lang: str
    text: str
    gold: str
    source: str

    @property
    def split(self) -> Split:
        return split_of(self.text)


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from handle


def read_sentiment(data_dir: Path, lang: str, *, files: tuple[str, ...] | None = None) -> Iterator[SentimentRow]:
    """Labelled rows of one language (all its files, or the ones named)."""
    for name in files or FILES[lang]:
        path = Path(data_dir) / FOLDER / name
        if not path.is_file():
            raise FileNotFoundError(
                f"sentiment data not found at {path}: it lives in ../shared/data/sentiment/ next to the "
                "repository (see ../shared/data/README.md); pass --data-dir"
            )
        for line in _lines(path):
            if not line.strip():
                continue
            data = json.loads(line)
            label = LABELS.get(data.get("label"))
            text = (data.get("text") or data.get("review") or "").strip()
            if label and text:
                yield SentimentRow(lang=lang, text=text, gold=label, source=name)
