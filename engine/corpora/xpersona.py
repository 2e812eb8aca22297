"""XPersona (HLTCHKUST/Xpersona, MIT): Chinese persona dialogues translated from English ones.

The human-annotated Chinese test / valid files (222 dialogues each) translate dialogues of
`En_persona_test.json` (1,000 dialogues) persona sentence for persona sentence and turn for turn,
by the index rule below (measured in ../shared/notes/xpersona-alignment.md). `read_pairs` checks the
rule on every dialogue (same persona count, same turn count) before it yields a sentence pair, so a
changed file fails loudly instead of pairing the wrong sentences.

The labelled projection (`engine/train/project.py`) is committed as `data/xpersona_zh.jsonl` (with
XPersona's licence in `data/XPERSONA_LICENSE`), so training needs neither the network nor a checkout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from engine.corpora.jsonl import read_rows
from engine.corpora.splits import Split, split_of

EN_FILE = "En_persona_test.json"
ZH_FILES = {"test": "Zh_persona_split_test_human_annotated.json",
            "valid": "Zh_persona_split_valid_human_annotated.json"}
PROJECTED = Path(__file__).resolve().parent / "data" / "xpersona_zh.jsonl"
ZhFile = Literal["test", "valid"]


class XpersonaError(ValueError):
    pass


def english_index(zh_file: ZhFile, i: int) -> int:
    """The dialogue of En_persona_test.json that Chinese dialogue `i` of `zh_file` translates."""
    if i < 0:
        raise XpersonaError(f"{zh_file}: dialogue index {i} is negative")
    if zh_file == "test":
        if i <= 103:
            return 2 * i
        return 208 if i == 104 else 502 + 2 * (i - 105)
    return 2 * i + 1 if i <= 103 else 501 + 2 * (i - 104)


class SentencePair(BaseModel):
    en: str
    zh: str
    kind: Literal["persona", "turn"]
    zh_file: ZhFile
    dialogue: int  # index in the Chinese file
    en_dialogue: int  # index in En_persona_test.json
    position: int  # persona sentence number, or 2 × turn + speaker


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"XPersona file not found: {path} (a checkout of HLTCHKUST/Xpersona's dataset/)")
    return json.loads(path.read_text(encoding="utf-8"))


def check_dialogue(zh_file: str, i: int, zh: dict, en: dict) -> None:
    """Raise unless the two dialogues have the same persona count and turn count."""
    for key in ("persona", "dialogue"):
        if len(zh.get(key, [])) != len(en.get(key, [])):
            raise XpersonaError(f"{zh_file}[{i}]: {key}: {len(zh.get(key, []))} Chinese vs "
                                f"{len(en.get(key, []))} English; the index rule does not hold")
    for t, (zturn, eturn) in enumerate(zip(zh["dialogue"], en["dialogue"], strict=True)):
        if len(zturn) != len(eturn):
            raise XpersonaError(f"{zh_file}[{i}]: dialogue turn {t}: {len(zturn)} vs {len(eturn)} utterances")


def pairs_of(zh_file: ZhFile, zh_dialogues: list[dict], en_dialogues: list[dict]) -> Iterator[SentencePair]:
    """Every (English, Chinese) persona sentence and utterance of one Chinese file, checked."""
    for i, zh in enumerate(zh_dialogues):
        j = english_index(zh_file, i)
        if j >= len(en_dialogues):
            raise XpersonaError(f"{zh_file}[{i}]: English dialogue {j} does not exist")
        en = en_dialogues[j]
        check_dialogue(zh_file, i, zh, en)
        common = {"zh_file": zh_file, "dialogue": i, "en_dialogue": j}
        for k, (e, z) in enumerate(zip(en["persona"], zh["persona"], strict=True)):
            yield SentencePair(en=e, zh=z, kind="persona", position=k, **common)
        for t, (eturn, zturn) in enumerate(zip(en["dialogue"], zh["dialogue"], strict=True)):
            for s, (e, z) in enumerate(zip(eturn, zturn, strict=True)):
                yield SentencePair(en=e, zh=z, kind="turn", position=2 * t + s, **common)


def read_pairs(dataset_dir: Path) -> list[SentencePair]:
    """All sentence pairs of the two human-annotated Chinese files (index rule checked per dialogue)."""
    en = _load(Path(dataset_dir) / EN_FILE)
    out: list[SentencePair] = []
    for zh_file, name in ZH_FILES.items():
        out += pairs_of(zh_file, _load(Path(dataset_dir) / name), en)  # type: ignore[arg-type]
    return out


class ProjectedSpan(BaseModel):
    start: int
    end: int
    predicate: str
    text: str
    method: str  # how the Chinese span was found: kb (the KB's zh label), align, align+kb


class ProjectedRow(BaseModel):
    """A Chinese sentence with the English labels projected onto it."""

    zh: str
    en: str
    key: str  # the English sentence the split is drawn from (PersonaExt's form when it has one)
    source: str  # personaext (gold English row) | teacher (the English tagger)
    kind: Literal["persona", "turn"]
    en_facts: list[tuple[str, str]] = Field(default_factory=list)  # (predicate, English object)
    spans: list[ProjectedSpan] = Field(default_factory=list)

    @property
    def split(self) -> Split:
        return split_of(self.key)


def read_projected(path: Path = PROJECTED) -> list[ProjectedRow]:
    """The committed projection (engine/corpora/data/xpersona_zh.jsonl)."""
    return read_rows(path, ProjectedRow, XpersonaError)
