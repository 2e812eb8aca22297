"""Consistency: graph_schema's declarative rules run on the users a batch touched.

Rules never delete. Each resolution changes fact-edge status (superseded / quarantined), is
recorded in a Conflict node with the previous state, and can be reverted.

Reviewers outrank rules (engine/review): a fact a reviewer `confirmed` is never quarantined and
never superseded by a rule decision backed by less confidence than its own; a `rejected` fact is
not active, so no rule looks at it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from engine.store import GraphStore
from graph_schema import (
    DERIVED_CONFLICT_RULES,
    PREDICATES,
    DerivedConflictRule,
    Predicate,
    checked_identifier,
)

MAX_CLASS_DEPTH = 8
# A name shorter than this (one character: "京", "A") is contained in too many labels to mean the same place.
MIN_VARIANT_CHARS = 2
_CJK = re.compile(r"[\u3400-\u9fff]")
_NON_WORD = re.compile(r"[^\w]+")


class FactRef(BaseModel):
    """A fact edge, addressed by what makes it unique: user, type and target."""

    user_id: str
    predicate: str
    target_label: str
    key: str
    label: str | None = None
    status: str = "active"
    confidence: float = 0.0
    valid_from: str | None = None
    valid_to: str | None = None
    last_seen: str | None = None
    confirmed: bool = False  # by a reviewer
    # The target's name per language (an Entity's labels; a NIL entity has its mention's language only).
    label_en: str | None = None
    label_zh: str | None = None
    label_es: str | None = None

    def ref(self) -> str:
        return f"{self.predicate}:{self.key}"

    @property
    def linked(self) -> bool:
        return self.target_label == "Entity" and not self.key.startswith("nil:")

    def names(self) -> dict[str, str]:
        """The target's name in each language it has one in."""
        named = {"en": self.label_en, "zh": self.label_zh, "es": self.label_es}
        return {lang: name for lang, name in named.items() if name}


class Change(BaseModel):
    fact: FactRef
    new_status: str
    valid_to: str | None = None
    reason: str | None = None


class ConflictRecord(BaseModel):
    id: str
    user_id: str
    rule: str
    resolution: str  # superseded | quarantined | flagged
    detail: str
    winner: str | None = None
    changes: list[Change] = Field(default_factory=list)


class CheckReport(BaseModel):
    users: int = 0
    conflicts: list[ConflictRecord] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for c in self.conflicts:
            out[c.resolution] += 1
        return dict(out)


# Rules only look at some predicates: functional and ranged ones are loaded whole (they are
# few per user); exclusive partners are met by the database, which returns only the pairs.
_ACTIVE_FACTS = """
UNWIND $ids AS uid
MATCH (u:User {id: uid})-[f]->(o)
WHERE type(f) IN $types AND f.status = 'active'
RETURN u.id AS user_id, type(f) AS predicate, labels(o)[0] AS target_label, o.key AS key,
       coalesce(o.label_en, o.label_zh, o.label_es, o.value, o.key) AS label,
       o.label_en AS label_en, o.label_zh AS label_zh, o.label_es AS label_es,
       f.confidence AS confidence, f.valid_from AS valid_from, f.valid_to AS valid_to,
       f.last_seen AS last_seen, coalesce(f.confirmed, false) AS confirmed
"""

_EXCLUSIVE_CANDIDATES = """
UNWIND $ids AS uid
MATCH (u:User {id: uid})-[f]->(o)<-[g]-(u)
WHERE type(f) IN $types AND type(g) IN $types AND type(f) <> type(g)
  AND f.status = 'active' AND g.status = 'active'
RETURN u.id AS user_id, type(f) AS predicate, labels(o)[0] AS target_label, o.key AS key,
       coalesce(o.label_en, o.label_zh, o.label_es, o.value, o.key) AS label,
       f.confidence AS confidence, f.valid_from AS valid_from, f.valid_to AS valid_to,
       f.last_seen AS last_seen, coalesce(f.confirmed, false) AS confirmed
"""

_RULED_TYPES = [p.name for p in PREDICATES.values() if not p.behaviour and (p.functional or p.range_classes)]
_EXCLUSIVE_TYPES = [p.name for p in PREDICATES.values() if not p.behaviour and p.exclusive_with]

_CLASS_CLOSURE = f"""
UNWIND $keys AS k
MATCH (o:Entity {{key: k}})
OPTIONAL MATCH (o)-[:INSTANCE_OF|SUBCLASS_OF*1..{MAX_CLASS_DEPTH}]->(c:Entity)
RETURN o.key AS key, o.qid AS qid, collect(DISTINCT c.qid) AS classes
"""

_DERIVED = """
UNWIND $ids AS uid
MATCH (u:User {id: uid})-[d:{literal_rel}]->(v:Value)
WHERE d.status = 'active' AND v.value IN $values
MATCH (u)-[f:{rel}]->(e:Entity)-[:INSTANCE_OF|SUBCLASS_OF*0..{depth}]->(c:Entity)
WHERE f.status = 'active' AND c.qid IN $classes
RETURN DISTINCT u.id AS user_id, v.value AS value, e.key AS key,
       coalesce(e.label_en, e.label_zh, e.label_es, e.key) AS label
""".replace("{depth}", str(MAX_CLASS_DEPTH))

_SET_STATUS = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[f:{rel}]->(o:{label} {key: r.key})
SET f.status = r.status, f.valid_to = r.valid_to, f.status_reason = r.reason
"""

# Conflicts already recorded and applied (or reverted); one created by a run that died before
# its status changes were written has applied = false and is applied again.
_EXISTING_CONFLICTS = """
UNWIND $ids AS id
MATCH (c:Conflict {id: id})
WHERE coalesce(c.applied, true)
RETURN c.id AS id
"""

# The record first (applied = false), then the status changes, then applied = true: a crash in
# between leaves a record that the next run finishes, never a change without its record.
_WRITE_CONFLICTS = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})
MERGE (c:Conflict {id: r.id})
ON CREATE SET c.user_id = r.user_id, c.rule = r.rule, c.ts = r.ts, c.resolution = r.resolution,
              c.detail = r.detail, c.winner = r.winner, c.changes = r.changes, c.applied = false
MERGE (u)-[:HAS_CONFLICT]->(c)
"""

_MARK_APPLIED = """
UNWIND $ids AS id
MATCH (c:Conflict {id: id})
SET c.applied = true
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conflict_id(rule: str, user_id: str, refs: Iterable[str], winner: str | None) -> str:
    raw = "|".join([rule, user_id, *sorted(refs), winner or ""])
    return "c_" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _newest_first(f: FactRef) -> tuple[str, float]:
    return (f.last_seen or f.valid_from or "", f.confidence)


def pick_winner(group: list[FactRef]) -> tuple[FactRef, list[FactRef]]:
    """The newest evidence wins, unless that would supersede a reviewer-confirmed fact with a
    winner that is itself unconfirmed and less confident: then the newest confirmed fact wins."""
    ordered = sorted(group, key=_newest_first, reverse=True)
    winner = ordered[0]
    if not winner.confirmed and any(f.confirmed and f.confidence > winner.confidence for f in ordered[1:]):
        winner = next(f for f in ordered if f.confirmed)
    return winner, [f for f in ordered if f is not winner]


def set_statement(predicate: str, label: str) -> str:
    return _SET_STATUS.replace("{rel}", checked_identifier(predicate)).replace(
        "{label}", checked_identifier(label)
    )


def derived_statement(rule: DerivedConflictRule) -> str:
    return _DERIVED.replace("{literal_rel}", checked_identifier(rule.literal_predicate)).replace(
        "{rel}", checked_identifier(rule.predicate)
    )


def load_active_facts(store: GraphStore, user_ids: list[str]) -> list[FactRef]:
    """Active facts of the functional and ranged predicates."""
    res = store.ro_query(_ACTIVE_FACTS, {"ids": user_ids, "types": _RULED_TYPES})
    return [FactRef(**r) for r in res.records()]


def load_exclusive_candidates(store: GraphStore, user_ids: list[str]) -> list[FactRef]:
    """Active facts that share their object with another active fact of an exclusive predicate."""
    res = store.ro_query(_EXCLUSIVE_CANDIDATES, {"ids": user_ids, "types": _EXCLUSIVE_TYPES})
    return [FactRef(**r) for r in res.records()]


def _names_overlap(a: str, b: str) -> bool:
    """One name contains the other: as characters in Chinese, as whole words elsewhere."""
    a, b = a.casefold().strip(), b.casefold().strip()
    if min(len(a), len(b)) < MIN_VARIANT_CHARS:
        return False
    if _CJK.search(a) or _CJK.search(b):
        return a in b or b in a
    wa, wb = f" {_NON_WORD.sub(' ', a).strip()} ", f" {_NON_WORD.sub(' ', b).strip()} "
    return wa.strip() != "" and wb.strip() != "" and (wa in wb or wb in wa)


def is_surface_variant(candidate: FactRef, linked: FactRef) -> bool:
    """`candidate` names the entity of the linked fact `linked` in other words ("在上海" for 上海,
    Q8686): same user and predicate, a NIL target or a link less confident than it, and a name that
    contains or is contained in the linked entity's label in the same language. A reviewer-confirmed
    candidate is never a variant of something else."""
    if (candidate.user_id, candidate.predicate) != (linked.user_id, linked.predicate) or candidate.key == linked.key:
        return False
    if not linked.linked or candidate.confirmed:
        return False
    if candidate.linked and candidate.confidence >= linked.confidence:
        return False
    labels = linked.names()
    return any(lang in labels and _names_overlap(name, labels[lang]) for lang, name in candidate.names().items())


def surface_variants(facts: list[FactRef]) -> list[ConflictRecord]:
    """A surface variant of an active linked value of a functional predicate never supersedes it:
    the variant is superseded as a restatement of the linked value (`with_variant_evidence` then
    lets its date count for the linked one)."""
    groups: dict[tuple[str, str], list[FactRef]] = defaultdict(list)
    for f in facts:
        if PREDICATES[f.predicate].functional:
            groups[(f.user_id, f.predicate)].append(f)
    out = []
    for f in (f for group in groups.values() if len(group) > 1 for f in group):
        hosts = [g for g in groups[(f.user_id, f.predicate)] if is_surface_variant(f, g)]
        if not hosts:
            continue
        host = max(hosts, key=lambda g: (g.confidence, g.last_seen or ""))
        out.append(
            ConflictRecord(
                id=_conflict_id("surface_variant", f.user_id, [f.ref(), host.ref()], host.ref()),
                user_id=f.user_id,
                rule="surface_variant",
                resolution="superseded",
                detail=f"{f.predicate} {f.label} names {host.label} ({host.key}) in other words: "
                f"evidence for it, not a new value",
                winner=host.ref(),
                changes=[Change(fact=f, new_status="superseded",
                                reason=f"surface variant of {host.label} ({host.key})")],
            )
        )
    return out


def with_variant_evidence(facts: list[FactRef], variants: list[ConflictRecord]) -> list[FactRef]:
    """The linked facts dated by their newest variant too: a newer "在上海" keeps 上海 current against
    an older other city."""
    newest: dict[tuple[str, str], str] = {}
    for c in variants:
        for ch in c.changes:
            key = (c.user_id, c.winner or "")
            newest[key] = max(newest.get(key, ""), ch.fact.last_seen or "")
    out = []
    for f in facts:
        seen = newest.get((f.user_id, f.ref()), "")
        out.append(f.model_copy(update={"last_seen": seen}) if seen > (f.last_seen or "") else f)
    return out


def supersede_functional(facts: list[FactRef]) -> list[ConflictRecord]:
    """At most one active object per functional predicate: the newest evidence wins."""
    groups: dict[tuple[str, str], list[FactRef]] = defaultdict(list)
    for f in facts:
        if PREDICATES[f.predicate].functional:
            groups[(f.user_id, f.predicate)].append(f)
    out = []
    for (uid, pred), group in groups.items():
        if len(group) < 2:
            continue
        winner, losers = pick_winner(group)
        changes = [
            Change(fact=f, new_status="superseded", valid_to=winner.valid_from or winner.last_seen,
                   reason=f"superseded by {winner.label} ({winner.key})")
            for f in losers
        ]
        out.append(
            ConflictRecord(
                id=_conflict_id("functional", uid, [f.ref() for f in group], winner.ref()),
                user_id=uid,
                rule="functional",
                resolution="superseded",
                detail=f"{pred} allows one value; {winner.label} is newest, "
                f"superseding {', '.join(str(f.label) for f in losers)}",
                winner=winner.ref(),
                changes=changes,
            )
        )
    return out


def resolve_exclusive(facts: list[FactRef]) -> list[ConflictRecord]:
    """Exclusive partners on the same object (LIKES vs DISLIKES): the newest evidence wins."""
    by_object: dict[tuple[str, str], dict[str, FactRef]] = defaultdict(dict)
    for f in facts:
        by_object[(f.user_id, f.key)][f.predicate] = f
    out = []
    seen: set[str] = set()
    for (uid, _key), preds in by_object.items():
        for name, fact in preds.items():
            for partner in PREDICATES[name].exclusive_with:
                other = preds.get(partner)
                if other is None:
                    continue
                winner, (loser,) = pick_winner([fact, other])
                cid = _conflict_id("exclusive", uid, [fact.ref(), other.ref()], winner.ref())
                if cid in seen:
                    continue
                seen.add(cid)
                out.append(
                    ConflictRecord(
                        id=cid,
                        user_id=uid,
                        rule="exclusive",
                        resolution="superseded",
                        detail=f"{winner.predicate} and {loser.predicate} {winner.label} "
                        f"cannot both hold; the "
                        f"{'reviewer-confirmed' if winner.confirmed and not loser.confirmed else 'newer'} "
                        f"{winner.predicate} wins",
                        winner=winner.ref(),
                        changes=[
                            Change(fact=loser, new_status="superseded",
                                   valid_to=winner.valid_from or winner.last_seen,
                                   reason=f"contradicted by newer {winner.predicate}")
                        ],
                    )
                )
    return out


def class_closure(store: GraphStore, keys: list[str]) -> dict[str, set[str]]:
    """Entity key → its own QID plus every class reachable via INSTANCE_OF/SUBCLASS_OF.

    Entities with no type information at all are left out: the range rule cannot judge them.
    """
    out: dict[str, set[str]] = {}
    for row in store.ro_query(_CLASS_CLOSURE, {"keys": keys}).records():
        classes = {c for c in row["classes"] if c}
        if classes:
            out[row["key"]] = classes | ({row["qid"]} if row["qid"] else set())
    return out


def quarantine_range(store: GraphStore, facts: list[FactRef]) -> list[ConflictRecord]:
    """The object's Wikidata types must reach the predicate's allowed classes."""
    ranged = [  # a reviewer-confirmed fact is right by definition: its range is not second-guessed
        f for f in facts
        if PREDICATES[f.predicate].range_classes and f.target_label == "Entity" and not f.confirmed
    ]
    if not ranged:
        return []
    closure = class_closure(store, sorted({f.key for f in ranged}))
    out = []
    for f in ranged:
        pred: Predicate = PREDICATES[f.predicate]
        classes = closure.get(f.key)
        if classes is None or classes & set(pred.range_classes):
            continue
        reason = (
            f"{f.predicate} needs one of {', '.join(pred.range_classes[:4])}…; "
            f"{f.label} ({f.key}) is a {', '.join(sorted(classes)[:4])}"
        )
        out.append(
            ConflictRecord(
                id=_conflict_id("range", f.user_id, [f.ref()], None),
                user_id=f.user_id,
                rule="range",
                resolution="quarantined",
                detail=reason,
                changes=[Change(fact=f, new_status="quarantined", reason=reason)],
            )
        )
    return out


def flag_derived(store: GraphStore, user_ids: list[str]) -> list[ConflictRecord]:
    """Conflicts through the hierarchy (vegetarian vs likes something under meat): flagged only."""
    out = []
    for rule in DERIVED_CONFLICT_RULES:
        res = store.ro_query(
            derived_statement(rule),
            {"ids": user_ids, "values": list(rule.literal_values), "classes": list(rule.descendant_of)},
        )
        for r in res.records():
            refs = [f"{rule.literal_predicate}:{r['value']}", f"{rule.predicate}:{r['key']}"]
            out.append(
                ConflictRecord(
                    id=_conflict_id(rule.name, r["user_id"], refs, None),
                    user_id=r["user_id"],
                    rule=rule.name,
                    resolution="flagged",
                    detail=f"{rule.literal_predicate} {r['value']} but {rule.predicate} {r['label']}: "
                    f"{rule.description}",
                )
            )
    return out


def apply_changes(store: GraphStore, conflicts: list[ConflictRecord]) -> list[ConflictRecord]:
    """Write status changes and Conflict nodes; conflicts already recorded (e.g. reverted) are skipped."""
    if not conflicts:
        return []
    existing = {
        row[0]
        for row in store.ro_query(_EXISTING_CONFLICTS, {"ids": [c.id for c in conflicts]}).rows
    }
    fresh = [c for c in conflicts if c.id not in existing]
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in fresh:
        for ch in c.changes:
            grouped[(ch.fact.predicate, ch.fact.target_label)].append(
                {
                    "user_id": ch.fact.user_id,
                    "key": ch.fact.key,
                    "status": ch.new_status,
                    "valid_to": ch.valid_to,
                    "reason": ch.reason,
                }
            )
    if fresh:
        store.query(_WRITE_CONFLICTS, {"rows": [_conflict_row(c, _now()) for c in fresh]})
    for (pred, label), rows in grouped.items():
        store.query(set_statement(pred, label), {"rows": rows})
    if fresh:
        store.query(_MARK_APPLIED, {"ids": [c.id for c in fresh]})
    return fresh


def _conflict_row(c: ConflictRecord, ts: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "user_id": c.user_id,
        "rule": c.rule,
        "ts": ts,
        "resolution": c.resolution,
        "detail": c.detail,
        "winner": c.winner,
        "changes": json.dumps([ch.model_dump() for ch in c.changes], ensure_ascii=False),
    }


def check_users(store: GraphStore, user_ids: list[str], *, batch: int = 2000) -> CheckReport:
    """Run every rule on these users, in an order where later rules see earlier resolutions."""
    report = CheckReport(users=len(user_ids))
    for start in range(0, len(user_ids), batch):
        ids = user_ids[start : start + batch]
        facts = load_active_facts(store, ids)
        changed = apply_changes(store, quarantine_range(store, facts))
        changed += apply_changes(store, resolve_exclusive(load_exclusive_candidates(store, ids)))
        facts = _without(facts, changed)
        variants = apply_changes(store, surface_variants(facts))
        facts = with_variant_evidence(_without(facts, variants), variants)
        changed += variants
        changed += apply_changes(store, supersede_functional(facts))
        changed += apply_changes(store, flag_derived(store, ids))
        report.conflicts += changed
    return report


def _without(facts: list[FactRef], conflicts: list[ConflictRecord]) -> list[FactRef]:
    """The facts still active after these resolutions were applied."""
    gone = {(ch.fact.user_id, ch.fact.predicate, ch.fact.key) for c in conflicts for ch in c.changes}
    return [f for f in facts if (f.user_id, f.predicate, f.key) not in gone]


_GET_CONFLICT = """
MATCH (c:Conflict {id: $id})
RETURN c.resolution AS resolution, c.changes AS changes
"""

_MARK_REVERTED = """
MATCH (c:Conflict {id: $id})
SET c.resolution = 'reverted', c.reverted_from = $previous, c.reverted_at = $ts
WITH c
MATCH (u:User {id: c.user_id})
SET u.updated_at = $ts
"""


class ConflictNotFound(LookupError):
    pass


def revert_conflict(store: GraphStore, conflict_id: str) -> int:
    """Put every fact a resolution changed back as it was; the Conflict stays, marked reverted."""
    rows = store.ro_query(_GET_CONFLICT, {"id": conflict_id}).records()
    if not rows:
        raise ConflictNotFound(f"no conflict with id {conflict_id!r}")
    if rows[0]["resolution"] == "reverted":
        return 0
    changes = [Change(**c) for c in json.loads(rows[0]["changes"] or "[]")]
    for ch in changes:
        row = {
            "user_id": ch.fact.user_id,
            "key": ch.fact.key,
            "status": ch.fact.status,
            "valid_to": ch.fact.valid_to,
            "reason": "reverted by review",
        }
        store.query(set_statement(ch.fact.predicate, ch.fact.target_label), {"rows": [row]})
    store.query(_MARK_REVERTED, {"id": conflict_id, "previous": rows[0]["resolution"], "ts": _now()})
    return len(changes)
