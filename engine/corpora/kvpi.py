"""KvPI (Chinese): (profile, response) pairs labelled entailed / contradicted / irrelevant over gender,
location and constellation. An *entailed* response that states the profile's location (a place name
of the profile appears in it) or gender (a gender word appears in it) is a gold LIVES_IN / GENDER
fact of real zh text nobody on this project labelled: the zh measure of the fact extractor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from engine.corpora.splits import Split, split_of

FILE = Path("consistency") / "kvpi_test.jsonl"
GENDER_WORDS = {
    "female": ("女生", "女孩", "女人", "女的", "妹子", "姑娘", "女性", "小姐姐", "闺女"),
    "male": ("男生", "男孩", "男人", "男的", "哥们", "小伙", "男性", "爷们", "帅哥"),
}
_FIELD = re.compile(r"'(loc|gender)':\s*'?([^',}]*)'?")


class KvpiFact(BaseModel):
    text: str
    predicate: str  # LIVES_IN | GENDER
    objects: list[str]  # any of these counts as the gold object (place names; or the gender value)

    @property
    def split(self) -> Split:
        return split_of(self.text)

    def span(self) -> tuple[int, int] | None:
        """Where the text states it: the first place name, or the first gender word."""
        if self.predicate == "LIVES_IN":
            words = [w for p in self.objects for w in (p, p.rstrip("市省区县")) if len(w) >= 2]
        else:
            words = list(GENDER_WORDS.get(self.objects[0], ()))
        found = [(self.text.find(w), -len(w), w) for w in words if w in self.text]
        if not found:
            return None
        start, _, word = min(found)
        return start, start + len(word)


def _profile(raw: str) -> dict[str, str]:
    return {k: v.strip() for k, v in _FIELD.findall(raw)}


def _stated_places(loc: str, text: str) -> list[str]:
    parts = [p for p in loc.split() if p and p not in ("其他", "海外")]
    return [p for p in parts if p in text or p.rstrip("市省区县") in text and len(p.rstrip("市省区县")) >= 2]


def read_kvpi_facts(data_dir: Path) -> Iterator[KvpiFact]:
    """Gold facts from entailed responses that state a location or a gender."""
    path = Path(data_dir) / FILE
    if not path.is_file():
        raise FileNotFoundError(f"KvPI not found at {path}: see ../shared/data/README.md; pass --data-dir")
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") != "entailed":
                continue
            profile, text = _profile(row.get("profile_raw", "")), row.get("response", "")
            domain = row.get("domain_inferred")
            if domain == "location" and (places := _stated_places(profile.get("loc", ""), text)):
                yield KvpiFact(text=text, predicate="LIVES_IN", objects=places)
            elif domain == "gender" and profile.get("gender") in GENDER_WORDS:
                if any(w in text for w in GENDER_WORDS[profile["gender"]]):
                    yield KvpiFact(text=text, predicate="GENDER", objects=[profile["gender"]])
