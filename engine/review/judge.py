"""Judging one sampled document: every fact correct / wrong / fixed, facts it missed, its
sentiment. The document is the unit: a judgement is checked whole before anything is written, and
claimed with one compare-and-set on the item's `rev`, so of two reviewers on the same document the
second gets a conflict and has written nothing.

Effects on the graph: wrong (and fixed) facts get status `rejected` (the previous status is kept for
a later re-judgement), correct ones the flag `confirmed`; fixed and missing facts enter through the
normal fusion path (`engine.pipeline.apply_fact_lines`) with the reviewer as their source and are
confirmed; then the consistency rules run on the user.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from engine.check import check_users
from engine.config import Settings
from engine.ingest import FactLine
from engine.link import ResolutionError, link_fact_line
from engine.review.items import get_item, item_facts, load_item
from engine.review.model import (
    DocumentJudgement,
    ItemFact,
    JudgeResult,
    MissingFact,
    ReviewConflict,
    ReviewGone,
    ReviewInvalid,
)
from engine.store import GraphStore
from graph_schema import Target, UnknownPredicateError, checked_identifier, get_predicate

REVIEW_CONFIDENCE = 1.0  # a reviewer read the text: the fact is stated

_CLAIM = """
MATCH (i:ReviewItem {id: $id})
WHERE i.rev = $rev
SET i.rev = i.rev + 1, i.state = 'done', i.judged_by = $who, i.judged_at = $ts
WITH i
OPTIONAL MATCH (old:Judgement {item_id: i.id})
DETACH DELETE old
WITH DISTINCT i
UNWIND $rows AS r
CREATE (j:Judgement)
SET j = r
RETURN count(j) AS n
"""

_REJECT = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[f:{rel}]->(o:{label} {key: r.key})
WITH f, r, CASE WHEN f.status = 'rejected' THEN f.status_before_review ELSE f.status END AS before
SET f.status_before_review = before, f.status = 'rejected', f.status_reason = r.reason,
    f.confirmed = false, f.rejected_by = r.who, f.rejected_at = r.ts
"""

_CONFIRM = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[f:{rel}]->(o:{label} {key: r.key})
WITH f, r, f.status = 'rejected' AS restored
SET f.status = CASE WHEN restored THEN coalesce(f.status_before_review, 'active') ELSE f.status END,
    f.status_reason = CASE WHEN restored THEN r.reason ELSE f.status_reason END,
    f.confirmed = true, f.confirmed_by = r.who, f.confirmed_at = r.ts,
    f.review_source = coalesce(r.source, f.review_source)
"""

_SENTIMENT = """
MATCH (d:Document {id: $doc})
SET d.sentiment_engine = coalesce(d.sentiment_engine, d.sentiment), d.sentiment = $label,
    d.sentiment_reviewed_by = $who, d.sentiment_reviewed_at = $ts
"""


def edge_statement(template: str, predicate: str, label: str) -> str:
    return template.replace("{rel}", checked_identifier(predicate)).replace("{label}", checked_identifier(label))


# In one process (the API's threads) judgements of one item queue up; across processes the
# compare-and-set on rev decides.
_LOCKS: dict[str, threading.Lock] = defaultdict(threading.Lock)
_LOCKS_GUARD = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS[key]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Plan:
    """A checked judgement: what to write, computed before anything is written."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.reject: list[ItemFact] = []
        self.confirm: list[ItemFact] = []
        self.lines: list[FactLine] = []
        self.sentiment: str | None = None

    def add_row(self, **row: Any) -> None:
        self.rows.append({k: v for k, v in row.items() if v is not None})


def _predicate(name: str, where: str) -> str:
    try:
        return get_predicate(name).name
    except UnknownPredicateError as exc:
        raise ReviewInvalid(f"{where}: {exc}") from None


def _span(text: str, span: tuple[int, int] | None, evidence: str | None, where: str) -> tuple[int, int]:
    if span is None:
        if not evidence or not evidence.strip():
            raise ReviewInvalid(f"{where}: give a span [start, end) or the evidence words from the text")
        at = text.find(evidence)
        if at < 0:
            raise ReviewInvalid(f"{where}: the evidence {evidence[:60]!r} is not in the document's text")
        return at, at + len(evidence)
    start, end = span
    if not 0 <= start < end <= len(text):
        raise ReviewInvalid(f"{where}: span [{start}, {end}) is not in the text (it has {len(text)} characters)")
    if evidence is not None and text[start:end] != evidence:
        raise ReviewInvalid(f"{where}: span [{start}, {end}) is {text[start:end]!r}, not the evidence {evidence!r}")
    return start, end


def _fact_line(props: dict[str, Any], predicate: str, obj: str, who: str, where: str) -> FactLine:
    pred = get_predicate(predicate)
    field = "value" if pred.target is Target.VALUE else "object"
    try:
        return FactLine(doc_id=props["doc_id"], user_id=props["user_id"], ts=props["ts"], predicate=pred.name,
                        confidence=REVIEW_CONFIDENCE, source=f"review:{who}"[:64], lang=props.get("lang"),
                        **{field: obj})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ReviewInvalid(f"{where}: {first.get('msg', 'invalid')}") from None


def _resolved_key(line: FactLine, settings: Settings, where: str) -> tuple[str, str, str]:
    """(predicate, target label, key) the fact will have in the graph; 422 if it cannot be linked."""
    try:
        resolved = link_fact_line(line, allow_sensitive=settings.allow_sensitive)
    except ResolutionError as exc:
        raise ReviewInvalid(f"{where}: {exc.field}: {exc.message}") from None
    return resolved.predicate, resolved.target.label.value, resolved.target.key


def plan_judgement(
    props: dict[str, Any], text: str, current: dict[str, str | None], judgement: DocumentJudgement,
    settings: Settings, who: str, ts: str,
) -> _Plan:
    """Check a document judgement against the item; every refusal names the fact and field."""
    doc = props["doc_id"]
    facts = {f.ref: f for f in item_facts(props)}
    plan = _Plan()
    base = {"batch_id": props["batch_id"], "item_id": props["id"], "doc_id": doc, "user_id": props["user_id"],
            "lang": props.get("lang"), "reviewer": who, "ts": ts}
    seen: set[str] = set()
    for j in judgement.facts:
        fact = facts.get(j.ref)
        if fact is None:
            raise ReviewInvalid(f"facts: {j.ref!r} is not one of document {doc!r}'s facts in this batch")
        if j.ref in seen:
            raise ReviewInvalid(f"facts: {j.ref!r} is judged twice")
        seen.add(j.ref)
        if j.ref not in current:
            raise ReviewConflict(f"fact {j.ref} of document {doc!r} no longer exists in the graph "
                                 "(forgotten or removed since sampling)")
        row = dict(base, seq=len(plan.rows), kind="fact", verdict=j.verdict, ref=j.ref, predicate=fact.predicate,
                   object=fact.label, tier=fact.tier)
        if j.verdict == "correct":
            plan.confirm.append(fact)
        elif j.verdict == "wrong":
            plan.reject.append(fact)
        else:
            where = f"facts: fix of {j.ref}"
            predicate = _predicate(j.predicate or fact.predicate, where + ": predicate")
            obj = (j.object or "").strip() or fact.label
            if j.span is not None:
                _span(text, j.span, None, where + ": span")
            line = _fact_line(props, predicate, obj, who, where)
            if _resolved_key(line, settings, where)[::2] == (fact.predicate, fact.key):
                raise ReviewInvalid(f"{where}: {predicate} {obj!r} is the same fact: judge it correct instead")
            plan.reject.append(fact)
            plan.lines.append(line)
            row.update(fix_predicate=predicate, fix_object=obj, span=list(j.span) if j.span else None)
        plan.add_row(**row)
    unjudged = [ref for ref in facts if ref not in seen]
    if unjudged:
        raise ReviewInvalid(f"facts: {', '.join(unjudged)} of document {doc!r} have no verdict: judge every fact")
    for k, m in enumerate(judgement.missing):
        plan.lines.append(_missing(plan, base, m, k, props, text, settings, who))
    s = judgement.sentiment
    engine_label = props.get("engine_sentiment")
    if s.verdict == "correct":
        if engine_label is None:
            raise ReviewInvalid(f"sentiment: the engine stored no sentiment for {doc!r}: give the label (wrong)")
        gold = engine_label
    else:
        if s.label is None:
            raise ReviewInvalid("sentiment: a wrong sentiment needs the right label")
        if s.label == engine_label:
            raise ReviewInvalid(f"sentiment: {s.label!r} is the engine's label: judge it correct instead")
        gold = plan.sentiment = s.label
    plan.add_row(**base, seq=len(plan.rows), kind="sentiment", verdict=s.verdict, engine_label=engine_label,
                 label=gold)
    return plan


def _missing(plan: _Plan, base: dict[str, Any], m: MissingFact, k: int, props: dict[str, Any], text: str,
             settings: Settings, who: str) -> FactLine:
    where = f"missing[{k}]"
    predicate = _predicate(m.predicate, where + ": predicate")
    start, end = _span(text, m.span, m.evidence, where + ": span")
    line = _fact_line(props, predicate, m.object.strip(), who, where)
    _resolved_key(line, settings, where)
    plan.add_row(**base, seq=len(plan.rows), kind="missing", verdict="added", predicate=predicate,
                 object=m.object.strip(), span=[start, end])
    return line


def judge_document(
    store: GraphStore, settings: Settings, batch_id: str, doc_id: str, judgement: DocumentJudgement, who: str,
    *, now: str | None = None,
) -> JudgeResult:
    """Check, claim and apply one document's judgement (see the module docstring)."""
    from engine.pipeline import apply_fact_lines
    from engine.review.items import current_status

    ts = now or _now()
    with _lock(f"{batch_id}|{doc_id}"):
        props, text = load_item(store, batch_id, doc_id)
        if text is None:
            raise ReviewGone(f"document {doc_id!r} was removed after review batch {batch_id!r} was sampled "
                             "(forgotten?): the batch is stale for it")
        if judgement.rev != int(props["rev"]):
            by = f" by {props.get('judged_by')} at {props.get('judged_at')}" if props.get("judged_by") else ""
            raise ReviewConflict(f"document {doc_id!r} was judged{by} (rev {props['rev']}, you sent rev "
                                 f"{judgement.rev}): reload it and judge again")
        current = current_status(store, props["user_id"], item_facts(props))
        plan = plan_judgement(props, text, current, judgement, settings, who, ts)
        claimed = store.query(_CLAIM, {"id": props["id"], "rev": judgement.rev, "who": who, "ts": ts,
                                       "rows": plan.rows}).scalar()
        if not claimed:
            raise ReviewConflict(f"document {doc_id!r} was judged by someone else just now: reload it")
        user = props["user_id"]
        reason = f"judged wrong by {who} in review {batch_id}"
        _write_edges(store, _REJECT, plan.reject, user, who, ts, reason=reason)
        _write_edges(store, _CONFIRM, plan.confirm, user, who, ts, reason=f"confirmed by {who} in review {batch_id}")
        added = 0
        if plan.lines:
            report = apply_fact_lines(store, settings, plan.lines, run_checks=False)
            added = report.facts_applied
            keys = [_resolved_key(line, settings, "fused") for line in plan.lines]
            fused = [ItemFact(ref=f"{p}:{k}", predicate=p, target_label=lab, key=k, label=k) for p, lab, k in keys]
            _write_edges(store, _CONFIRM, fused, user, who, ts, reason=f"added by {who} in review {batch_id}",
                         source=f"review:{who}")
        if plan.sentiment is not None:
            store.query(_SENTIMENT, {"doc": doc_id, "label": plan.sentiment, "who": who, "ts": ts})
        check_users(store, [user])
        return JudgeResult(item=get_item(store, batch_id, doc_id), rejected=len(plan.reject),
                           confirmed=len(plan.confirm), added=added)


def _write_edges(store: GraphStore, template: str, facts: list[ItemFact], user: str, who: str, ts: str, *,
                 reason: str, source: str | None = None) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in facts:
        groups[(f.predicate, f.target_label)].append(
            {"user_id": user, "key": f.key, "who": who, "ts": ts, "reason": reason, "source": source})
    for (pred, label), rows in groups.items():
        store.query(edge_statement(template, pred, label), {"rows": rows})
