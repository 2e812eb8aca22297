"""What the linker produces: grounded entities and their Wikidata context edges."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LinkedEntity(BaseModel):
    """A fact object grounded in Wikidata (qid) or an explicit NIL entity (nil key)."""

    key: str
    qid: str | None = None
    label_en: str | None = None
    label_zh: str | None = None
    label_es: str | None = None
    description: str | None = None
    types: list[str] = Field(default_factory=list)
    score: float = 0.0
    alternatives: list[dict[str, object]] = Field(default_factory=list)

    @property
    def is_nil(self) -> bool:
        return self.qid is None


class ContextEdge(BaseModel):
    """One Wikidata context edge (INSTANCE_OF / SUBCLASS_OF / LOCATED_IN / MANUFACTURER)."""

    model_config = ConfigDict(frozen=True)

    child: str
    rel: str
    parent: str
