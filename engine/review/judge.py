"""Judging one sampled document: every fact correct / wrong / fixed, facts it missed, its
sentiment. The document is the unit: a judgement is checked whole before anything is written, and
claimed with one compare-and-set on the item's `rev`, so of two reviewers on the same document the
second gets a conflict and has written nothing.

Effects on the graph: wrong (and fixed) facts get status `rejected` (the previous status is kept for
a later re-judgement), correct ones the flag `confirmed`; fixed and missing facts enter through the
normal fusion path (`engine.pipeline.apply_fact_lines`) with the reviewer as their source and are
confirmed; then the consistency rules run on the user.

A document judged again: the latest judgement decides. A fact an earlier judgement added (a fix or a
missing fact) that the new one does not add again is withdrawn: when the document was its only
evidence it becomes `rejected` with the reason; when other documents support it, the document
leaves its evidence and its confidence and confirmation are back to what they were before the
review (kept on the judgement as `prior_*`). A sentiment judged correct again is the engine's again.
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
from engine.review.items import get_item, gone, item_facts, load_item
from engine.review.model import (
    DocumentJudgement,
    ItemFact,
    JudgeResult,
    MissingFact,
    ReviewConflict,
    ReviewInvalid,
)
from engine.review.sample import item_id
from engine.store import GraphStore
from graph_schema import Target, UnknownPredicateError, checked_identifier, get_predicate

REVIEW_CONFIDENCE = 1.0  # a reviewer read the text: the fact is stated

_CLAIM = """
MATCH (i:ReviewItem {batch_id: $batch, doc_id: $doc})
WHERE i.rev = $rev
SET i.rev = i.rev + 1, i.state = 'done', i.judged_by = $who, i.judged_at = $ts
WITH i
OPTIONAL MATCH (old:Judgement {item_id: i.id})
WHERE old.batch_id = i.batch_id AND old.doc_id = i.doc_id
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

# What an earlier judgement of the item added (fixes and missing facts), before it is superseded.
_ADDED_BEFORE = """
MATCH (j:Judgement {item_id: $id})
WHERE j.batch_id = $batch AND j.doc_id = $doc AND (j.kind = 'missing' OR j.verdict = 'fix')
RETURN j AS j
"""

# The edges a judgement is about to add to, as they are before it (None: it creates them).
_EDGES_BEFORE = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[f:{rel}]->(o:{label} {key: r.key})
RETURN o.key AS key, f.confidence AS confidence, coalesce(f.confirmed, false) AS confirmed
"""

# A fact added by a superseded judgement: see the module docstring.
_WITHDRAW = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})-[f:{rel}]->(o:{label} {key: r.key})
WITH f, r, [d IN f.docs WHERE d <> r.doc] AS others
WITH f, r, others, size(others) = 0 AS alone
SET f.status_before_review = CASE WHEN alone AND f.status <> 'rejected' THEN f.status
                                  ELSE f.status_before_review END,
    f.status = CASE WHEN alone THEN 'rejected' ELSE f.status END,
    f.status_reason = CASE WHEN alone THEN r.reason ELSE f.status_reason END,
    f.docs = CASE WHEN alone THEN f.docs ELSE others END,
    f.evidence = CASE WHEN alone THEN f.evidence ELSE [d IN f.evidence WHERE d <> r.doc] END,
    f.evidence_count = CASE WHEN alone THEN f.evidence_count ELSE size(others) END,
    f.confidence = CASE WHEN alone THEN f.confidence ELSE coalesce(r.prior_confidence, f.confidence) END,
    f.confirmed = coalesce(r.prior_confirmed, false),
    f.withdrawn_by = r.who, f.withdrawn_at = r.ts
"""

# A sentiment judged correct: the engine's label again, if an earlier judgement had replaced it.
_SENTIMENT_RESTORE = """
MATCH (d:Document {id: $doc})
WHERE d.sentiment_engine IS NOT NULL
SET d.sentiment = d.sentiment_engine, d.sentiment_reviewed_by = $who, d.sentiment_reviewed_at = $ts
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
        self.added: list[dict[str, Any]] = []  # the rows of fixes and missing facts, with their resolved keys
        self.sentiment: str | None = None
        self.sentiment_correct = False

    def add_row(self, **row: Any) -> dict[str, Any]:
        self.rows.append({k: v for k, v in row.items() if v is not None})
        return self.rows[-1]

    def add_fact(self, line: FactLine, key: tuple[str, str, str], **row: Any) -> None:
        """A fix or missing fact: its line to fuse and its row, which keeps the key it resolved to."""
        self.lines.append(line)
        predicate, label, resolved = key
        self.added.append(self.add_row(**row, added_predicate=predicate, added_label=label, added_key=resolved))


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
            key = _resolved_key(line, settings, where)
            if key[::2] == (fact.predicate, fact.key):
                raise ReviewInvalid(f"{where}: {predicate} {obj!r} is the same fact: judge it correct instead")
            plan.reject.append(fact)
            plan.add_fact(line, key, **row, fix_predicate=predicate, fix_object=obj,
                          span=list(j.span) if j.span else None)
            continue
        plan.add_row(**row)
    unjudged = [ref for ref in facts if ref not in seen]
    if unjudged:
        raise ReviewInvalid(f"facts: {', '.join(unjudged)} of document {doc!r} have no verdict: judge every fact")
    for k, m in enumerate(judgement.missing):
        _missing(plan, base, m, k, props, text, settings, who)
    s = judgement.sentiment
    engine_label = props.get("engine_sentiment")
    if s.verdict == "correct":
        if engine_label is None:
            raise ReviewInvalid(f"sentiment: the engine stored no sentiment for {doc!r}: give the label (wrong)")
        gold = engine_label
        plan.sentiment_correct = True
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
             settings: Settings, who: str) -> None:
    where = f"missing[{k}]"
    predicate = _predicate(m.predicate, where + ": predicate")
    start, end = _span(text, m.span, m.evidence, where + ": span")
    line = _fact_line(props, predicate, m.object.strip(), who, where)
    plan.add_fact(line, _resolved_key(line, settings, where), **base, seq=len(plan.rows), kind="missing",
                  verdict="added", predicate=predicate, object=m.object.strip(), span=[start, end])


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    """(predicate, target label, key) of a fix or missing fact, as resolved when it was judged."""
    return row["added_predicate"], row["added_label"], row["added_key"]


def _added_key(row: dict[str, Any], props: dict[str, Any], settings: Settings) -> tuple[str, str, str] | None:
    """(predicate, target label, key) a stored judgement row added; judgements stored before the
    key was kept on them are linked again (None: no longer linkable, nothing to withdraw)."""
    if row.get("added_key"):
        return _key(row)
    fix = row.get("kind") == "fact"
    predicate, obj = (row.get("fix_predicate"), row.get("fix_object")) if fix else (row.get("predicate"),
                                                                                   row.get("object"))
    try:
        return _resolved_key(_fact_line(props, predicate or "", obj or "", "", "stored"), settings, "stored")
    except (ReviewInvalid, UnknownPredicateError):
        return None


def previously_added(store: GraphStore, props: dict[str, Any], settings: Settings) -> dict[tuple[str, str, str],
                                                                                            dict[str, Any]]:
    """Key → the row of what the item's current judgement added (what a new judgement supersedes)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    key = {"id": props["id"], "batch": props["batch_id"], "doc": props["doc_id"]}
    for r in store.ro_query(_ADDED_BEFORE, key).records():
        row = dict(r["j"].properties) if hasattr(r["j"], "properties") else dict(r["j"])
        added = _added_key(row, props, settings)
        if added is not None:
            out[added] = row
    return out


def note_priors(store: GraphStore, plan: _Plan, previous: dict[tuple[str, str, str], dict[str, Any]],
                user: str) -> None:
    """Each added row keeps the edge's confidence and confirmation before any review added to it:
    inherited from the superseded judgement when it added the same fact, else read now."""
    fresh: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in plan.added:
        key = _key(row)
        if key in previous:
            row.update({k: v for k, v in previous[key].items() if k.startswith("prior_")})
        else:
            fresh[key[:2]].append(row)
    for (predicate, label), rows in fresh.items():
        found = {r["key"]: r for r in store.ro_query(
            edge_statement(_EDGES_BEFORE, predicate, label),
            {"rows": [{"user_id": user, "key": row["added_key"]} for row in rows]}).records()}
        for row in rows:
            if row["added_key"] in found:
                row.update(prior_confidence=found[row["added_key"]]["confidence"],
                           prior_confirmed=found[row["added_key"]]["confirmed"])


def judge_document(
    store: GraphStore, settings: Settings, batch_id: str, doc_id: str, judgement: DocumentJudgement, who: str,
    *, now: str | None = None,
) -> JudgeResult:
    """Check, claim and apply one document's judgement (see the module docstring)."""
    from engine.pipeline import apply_fact_lines
    from engine.review.items import current_status

    ts = now or _now()
    with _lock(item_id(batch_id, doc_id)):
        props, text = load_item(store, batch_id, doc_id)
        if text is None:
            raise gone(batch_id, doc_id)
        if judgement.rev != int(props["rev"]):
            by = f" by {props.get('judged_by')} at {props.get('judged_at')}" if props.get("judged_by") else ""
            raise ReviewConflict(f"document {doc_id!r} was judged{by} (rev {props['rev']}, you sent rev "
                                 f"{judgement.rev}): reload it and judge again")
        current = current_status(store, props["user_id"], item_facts(props))
        plan = plan_judgement(props, text, current, judgement, settings, who, ts)
        previous = previously_added(store, props, settings)
        user = props["user_id"]
        note_priors(store, plan, previous, user)
        claimed = store.query(_CLAIM, {"batch": batch_id, "doc": doc_id, "rev": judgement.rev, "who": who,
                                       "ts": ts, "rows": plan.rows}).scalar()
        if not claimed:
            raise ReviewConflict(f"document {doc_id!r} was judged by someone else just now: reload it")
        reason = f"judged wrong by {who} in review {batch_id}"
        _write_edges(store, _REJECT, plan.reject, user, who, ts, reason=reason)
        _write_edges(store, _CONFIRM, plan.confirm, user, who, ts, reason=f"confirmed by {who} in review {batch_id}")
        again = {_key(r) for r in plan.added}
        _withdraw(store, [(key, row) for key, row in previous.items() if key not in again], user, doc_id, who, ts,
                  batch_id)
        added = 0
        if plan.lines:
            report = apply_fact_lines(store, settings, plan.lines, run_checks=False)
            added = report.facts_applied
            fused = [ItemFact(ref=f"{p}:{k}", predicate=p, target_label=lab, key=k, label=k)
                     for p, lab, k in map(_key, plan.added)]
            _write_edges(store, _CONFIRM, fused, user, who, ts, reason=f"added by {who} in review {batch_id}",
                         source=f"review:{who}")
        if plan.sentiment is not None:
            store.query(_SENTIMENT, {"doc": doc_id, "label": plan.sentiment, "who": who, "ts": ts})
        elif plan.sentiment_correct:
            store.query(_SENTIMENT_RESTORE, {"doc": doc_id, "who": who, "ts": ts})
        check_users(store, [user])
        return JudgeResult(item=get_item(store, batch_id, doc_id), rejected=len(plan.reject),
                           confirmed=len(plan.confirm), added=added)


def _withdraw(store: GraphStore, rows: list[tuple[tuple[str, str, str], dict[str, Any]]], user: str, doc: str,
              who: str, ts: str, batch_id: str) -> None:
    """Withdraw what superseded judgement rows added (see the module docstring)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (predicate, label, key), row in rows:
        groups[(predicate, label)].append({
            "user_id": user, "key": key, "doc": doc, "who": who, "ts": ts,
            "prior_confidence": row.get("prior_confidence"), "prior_confirmed": row.get("prior_confirmed"),
            "reason": f"withdrawn: added by {row.get('reviewer')} in review {batch_id}, "
                      f"not in {who}'s later judgement of document {doc!r}"})
    for (predicate, label), group in groups.items():
        store.query(edge_statement(_WITHDRAW, predicate, label), {"rows": group})


def _write_edges(store: GraphStore, template: str, facts: list[ItemFact], user: str, who: str, ts: str, *,
                 reason: str, source: str | None = None) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in facts:
        groups[(f.predicate, f.target_label)].append(
            {"user_id": user, "key": f.key, "who": who, "ts": ts, "reason": reason, "source": source})
    for (pred, label), rows in groups.items():
        store.query(edge_statement(template, pred, label), {"rows": rows})
