"""The link stage: a fact or event object as stated → a typed graph target.

Entity objects are grounded through `linkers` (QID or NIL key); literal objects are normalised
through graph_schema; event items are linked once per run (`ItemLinker`). Nothing here touches
the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

import linkers
from engine.contracts import Fact, ResolvedFact, TargetRef
from engine.ingest import FactLine
from graph_schema import Predicate, Target, get_predicate, normalise_literal
from linkers import ContextEdge, LinkedEntity

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")


class ResolutionError(ValueError):
    """The object cannot be turned into a target for this predicate; names the input field."""

    def __init__(self, message: str, field: str = "object") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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


def resolve_target(
    predicate: Predicate,
    surface: str | None,
    *,
    qid: str | None = None,
    types: Iterable[str] = (),
    lang: str | None = None,
    context: str | None = None,
) -> TargetRef:
    """A literal Value for attribute predicates, else a grounded Entity (a given QID wins, else the
    linker decides: QID or NIL). Raises ResolutionError naming the input field."""
    if predicate.target is Target.VALUE:
        if not surface:
            raise ResolutionError(f"{predicate.name} needs a literal value", field="value")
        try:
            return literal_target(predicate, surface)
        except ValueError as exc:
            raise ResolutionError(str(exc), field="value") from exc
    entity = _ground(predicate, surface, qid, lang, context)
    extra = [t for t in types if t not in entity.types]
    if extra:
        entity = entity.model_copy(update={"types": [*entity.types, *extra]})
    return TargetRef(label=Target.ENTITY, key=entity.key, props=entity_props(entity))


def _ground(
    predicate: Predicate, surface: str | None, qid: str | None, lang: str | None, context: str | None
) -> LinkedEntity:
    if qid:
        entity = linkers.describe(qid) or LinkedEntity(key=qid, qid=qid)
        label_field = f"label_{lang}" if lang in ("zh", "es") else "label_en"
        if surface and not getattr(entity, label_field):
            entity = entity.model_copy(update={label_field: surface})
        return entity
    if not surface:
        raise ResolutionError("missing (give `object` or `object_qid`)")
    try:
        return linkers.link_object(surface, predicate=predicate.name, lang=lang, context=context)
    except linkers.InvalidMentionError as exc:
        raise ResolutionError(str(exc)) from None


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


class ItemLinker:
    """Event items → graph targets, cached per (relation, item, qid, category) within a run.

    A `category` that links to a QID (or is one) becomes a declared type of the item, so the
    item's INSTANCE_OF edge lets segments reach it through the hierarchy.
    """

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str, str | None, str | None], TargetRef] = {}
        self._categories: dict[str, str | None] = {}

    def category_qid(self, category: str) -> str | None:
        if category not in self._categories:
            self._categories[category] = category if QID.match(category) else linkers.link_object(category).qid
        return self._categories[category]

    def target(self, relation: str, item: str, *, qid: str | None, category: str | None) -> TargetRef:
        key = (relation, item, qid, category)
        hit = self._targets.get(key)
        if hit is None:
            types = [q for q in [self.category_qid(category)] if q] if category else []
            hit = resolve_target(get_predicate(relation), item, qid=qid, types=types)
            self._targets[key] = hit
        return hit


def ensure_allowed(predicate: Predicate, allow_sensitive: bool) -> None:
    if predicate.sensitive and not allow_sensitive:
        raise ResolutionError(
            f"{predicate.name} is a special category and is refused (set PERSONA_ALLOW_SENSITIVE=1 to allow it)",
            field="predicate",
        )


def link_fact_line(line: FactLine, *, allow_sensitive: bool) -> ResolvedFact:
    """A validated fact line → a fact with a grounded target."""
    pred = get_predicate(line.predicate)
    ensure_allowed(pred, allow_sensitive)
    target = resolve_target(
        pred, line.surface, qid=line.object_qid, types=line.object_types, lang=line.lang, context=line.text
    )
    return ResolvedFact(
        doc_id=line.doc_id, user_id=line.user_id, ts=line.ts, predicate=pred.name, target=target,
        confidence=line.confidence, sentiment=line.sentiment,
    )


def link_fact(
    fact: Fact, doc_id: str, user_id: str, ts: datetime, *, lang: str | None, context: str | None,
    allow_sensitive: bool,
) -> ResolvedFact:
    """An extracted fact of one document → a fact with a grounded target."""
    try:
        pred = get_predicate(fact.predicate)
    except ValueError as exc:
        raise ResolutionError(str(exc), field="predicate") from None
    ensure_allowed(pred, allow_sensitive)
    target = resolve_target(pred, fact.object, lang=lang, context=context)
    return ResolvedFact(
        doc_id=doc_id, user_id=user_id, ts=ts, predicate=pred.name, target=target,
        confidence=fact.confidence, sentiment=fact.sentiment, tier=fact.tier,
    )
