"""PersonaExt (PAED): English first-person sentences, one (subject, relation, object) per row, with
the object's token positions. Used to train the fact tagger and to measure fact extraction.

Relations map to graph_schema predicates by the ONE table below; relations with no counterpart in
the schema (names, physical attributes, abilities, past jobs, negations ...) map to None: their
sentences are kept as sentences without a fact (the tagger learns to stay silent on them) and are
left out of extraction scoring, because no extractor is asked to produce them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from engine.corpora.splits import Split, split_of

FILE = Path("persona") / "personaext.jsonl"

# PersonaExt relation → graph_schema predicates that count as correct. None = not in the schema.
RELATION_MAP: dict[str, tuple[str, ...] | None] = {
    # likes / favourites
    "like_activity": ("LIKES",), "like_food": ("LIKES",), "like_general": ("LIKES",),
    "like_animal": ("LIKES",), "like_watching": ("LIKES",), "like_read": ("LIKES",),
    "like_drink": ("LIKES",), "like_color": ("LIKES",), "like_character": ("LIKES",),
    "like_subject": ("LIKES",), "like_sport": ("LIKES",), "like_music": ("LIKES",),
    "favorite_music_artist": ("LIKES",), "favorite_color": ("LIKES",), "favorite_drink": ("LIKES",),
    "favorite_movie": ("LIKES",), "favorite_place": ("LIKES",), "favorite_show": ("LIKES",),
    "favorite_book": ("LIKES",), "favorite_animal": ("LIKES",), "favorite_hobby": ("LIKES",),
    "favorite_sport": ("LIKES",), "favorite_season": ("LIKES",), "favorite_food": ("LIKES",),
    # dislikes / avoidance
    "dislike": ("DISLIKES",), "dislike_food": ("DISLIKES",), "dislike_activity": ("DISLIKES",),
    "dislike_animal": ("DISLIKES",), "dislike_sport": ("DISLIKES",), "dislike_color": ("DISLIKES",),
    "dislike_job": ("DISLIKES",), "dislike_drink": ("DISLIKES",), "dislike_subject": ("DISLIKES",),
    "dislike_music": ("DISLIKES",), "do_not_eat": ("DISLIKES", "DIET"), "do_not_drink": ("DISLIKES",),
    "allergy_to": ("DISLIKES",),
    # possessions, pets, places, work, school, family, literals
    "have_pet": ("HAS_PET",), "own": ("OWNS",), "have_vehicle": ("OWNS",),
    "live_in_citystatecountry": ("LIVES_IN",), "live_in_general": ("LIVES_IN",),
    "employed_by_general": ("WORKS_AT", "WORKS_AS"), "employed_by_company": ("WORKS_AT",),
    "want_job": ("WANTS",), "attend_school": ("STUDIES_AT",),
    "have_chidren": ("HAS_FAMILY",), "have_children": ("HAS_FAMILY",),
    "have_family": ("HAS_FAMILY",), "have_sibling": ("HAS_FAMILY",),
    "marital_status": ("MARITAL_STATUS",), "diet": ("DIET",), "gender": ("GENDER",),
    # not in the schema (or sensitive, refused by default)
    "physical_attribute": None, "has_ability": None, "other": None, "name": None,
    "school_status": None, "job_status": None, "health_status": None, "has_degree": None,
    "weakness": None, "relationship": None, "member_of": None, "belief": None,
    "international_exp": None, "used_to": None, "have_no": None, "have_no_family": None,
    "fall_out": None, "get_along": None, "have_no_sibling": None, "have_no_children": None,
    "race": None, "pre_employed_by_company": None, "doing": None, "want_no": None,
    "do_not_do": None, "work_schedule": None, "scared_of": None, "worry_about": None,
    "never_do": None,
}


class PersonaRow(BaseModel):
    sentence: str
    relation: str
    object: str
    tokens: list[str]
    tail_idx: list[int]

    @property
    def predicates(self) -> tuple[str, ...]:
        return RELATION_MAP.get(self.relation) or ()

    @property
    def split(self) -> Split:
        return split_of(self.sentence)

    def object_span(self) -> tuple[int, int]:
        """Character span of the object in `sentence` (tokens are the sentence split on spaces)."""
        starts, pos = [], 0
        for tok in self.tokens:
            starts.append(pos)
            pos += len(tok) + 1
        first, last = min(self.tail_idx), max(self.tail_idx)
        return starts[first], starts[last] + len(self.tokens[last])


def read_personaext(data_dir: Path) -> Iterator[PersonaRow]:
    """Every row of personaext.jsonl under `data_dir` (the shared data folder)."""
    path = Path(data_dir) / FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"PersonaExt not found at {path}: it lives in ../shared/data/persona/ next to the repository "
            "(see ../shared/data/README.md); pass --data-dir"
        )
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield PersonaRow.model_validate(json.loads(line))
