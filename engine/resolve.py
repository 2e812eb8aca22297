"""Resolution: a fact as stated (predicate + surface object or literal) → a typed graph target.

Entity objects are grounded through `linkers` (QID or NIL key); literal objects are normalised
through graph_schema. Nothing here touches the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

import linkers
from engine.contracts import ContextEdge, LinkedEntity
from engine.fuse import TargetRef
from graph_schema import Predicate, Target, normalise_literal


class ResolutionError(ValueError):
    """The object cannot be turned into a target for this predicate (field named in the message)."""


class ResolvedTargets(BaseModel):
    context: list[ContextEdge] = Field(default_factory=list)
    parents: dict[str, dict[str, Any]] = Field(default_factory=dict)


def literal_target(predicate: Predicate, raw: str) -> TargetRef:
    kind = predicate.literal_kind or "value"
    value = normalise_literal(kind, raw)
    return TargetRef(label=Target.VALUE, key=f"{kind}:{value}", props={"kind": kind, "value": value})


def entity_props(entity: LinkedEntity) -> dict[str, Any]:
    return {
        "qid": entity.qid,
        "label_en": entity.label_en,
        "label_zh": entity.label_zh,
        "label_es": entity.label_es,
        "description": entity.description,
        "types": list(entity.types),
    }


def entity_target(
    predicate: Predicate,
    surface: str | None,
    *,
    qid: str | None = None,
    types: Iterable[str] = (),
    lang: str | None = None,
    context: str | None = None,
) -> TargetRef:
    """Ground an object: a given QID wins, else the linker decides (QID or NIL)."""
    if qid:
        known = linkers.describe(qid)
        entity = known or LinkedEntity(key=qid, qid=qid)
        label_field = f"label_{lang}" if lang in ("zh", "es") else "label_en"
        if surface and not getattr(entity, label_field):
            entity = entity.model_copy(update={label_field: surface})
    elif surface:
        entity = linkers.link_object(surface, predicate=predicate.name, lang=lang, context=context)
    else:
        raise ResolutionError("object: missing (give `object` or `object_qid`)")
    extra = [t for t in types if t not in entity.types]
    if extra:
        entity = entity.model_copy(update={"types": [*entity.types, *extra]})
    return TargetRef(label=Target.ENTITY, key=entity.key, props=entity_props(entity))


def resolve_target(
    predicate: Predicate,
    surface: str | None,
    *,
    qid: str | None = None,
    types: Iterable[str] = (),
    lang: str | None = None,
    context: str | None = None,
) -> TargetRef:
    if predicate.target is Target.VALUE:
        if not surface:
            raise ResolutionError(f"value: {predicate.name} needs a literal value")
        try:
            return literal_target(predicate, surface)
        except ValueError as exc:
            raise ResolutionError(f"value: {exc}") from exc
    return entity_target(predicate, surface, qid=qid, types=types, lang=lang, context=context)


def context_for(targets: Iterable[TargetRef]) -> ResolvedTargets:
    """Wikidata context of the entities: their ancestor closure plus declared types."""
    out = ResolvedTargets()
    seen: set[ContextEdge] = set()
    qids: set[str] = set()
    for t in targets:
        if t.label is not Target.ENTITY:
            continue
        if t.props.get("qid"):
            qids.add(t.props["qid"])
        for type_qid in t.props.get("types", []):
            seen.add(ContextEdge(child=t.key, rel="INSTANCE_OF", parent=type_qid))
            qids.add(type_qid)
    seen.update(linkers.context_edges(sorted(qids)))
    out.context = sorted(seen, key=lambda e: (e.child, e.rel, e.parent))
    for parent in {e.parent for e in out.context}:
        known = linkers.describe(parent)
        out.parents[parent] = entity_props(known) if known else {"qid": parent}
    return out
