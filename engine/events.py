"""Behaviour ingestion: purchase / view / cart / refund events → PURCHASED / VIEWED edges + RFM.

Event lines (JSONL or CSV): `{user_id, type, item, item_qid?, category?, amount?, currency?, ts, event_id?}`.

- purchase → PURCHASED (+1, +amount); refund → PURCHASED (−1, −amount): counts and amounts are net.
- view → VIEWED (+1); cart → VIEWED (+1) as view-like interest, also counted in `cart_count`.
- Each behaviour edge keeps its events as parallel lists `ev_ids, ev_ts, ev_n, ev_amt, ev_k`, which
  makes ingestion idempotent per event (event_id, or a content hash when absent) and lets segments
  count exactly inside a time window. Aggregates on the edge: count, amount, refund_count,
  cart_count, first_ts, last_ts, first_purchase_ts, last_purchase_ts, currency, category.
- User aggregates are recomputed from the user's edges after each batch (so they are idempotent
  and self-healing): purchase_count, purchase_amount, first/last_purchase_ts, view_count,
  last_view_ts, updated_at (wall clock). Recency is not stored: it is computed at query time.
- Items are grounded with the linker (`item_qid` wins); a `category` that links to a QID becomes an
  INSTANCE_OF edge of the item, and the Wikidata context closure is written so segments traverse it.
Amounts are summed as given; there is no currency conversion (the last currency is kept on the edge).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import linkers
from engine.contracts import MAX_USER_ID, iso, to_utc
from engine.fuse import TargetRef, write_context, write_entities
from engine.resolve import ResolutionError, context_for, entity_target
from engine.store import GraphStore
from graph_schema import checked_identifier, get_predicate

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")
EVENT_TYPES = ("purchase", "view", "cart", "refund")
RELATION = {"purchase": "PURCHASED", "refund": "PURCHASED", "view": "VIEWED", "cart": "VIEWED"}


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(max_length=MAX_USER_ID)
    type: Literal["purchase", "view", "cart", "refund"]
    item: str = Field(min_length=1, max_length=500)
    item_qid: str | None = None
    category: str | None = Field(default=None, max_length=200)
    amount: float | None = Field(default=None, ge=0, le=1e12)
    currency: str | None = None
    ts: datetime
    event_id: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("user_id", "item")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("item_qid")
    @classmethod
    def _qid(cls, v: str | None) -> str | None:
        if v is not None and not QID.match(v):
            raise ValueError(f"{v!r} is not a Wikidata QID (Q followed by digits)")
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{3}", v.strip()):
            raise ValueError(f"{v!r} is not an ISO 4217 currency code (3 letters)")
        return v.strip().upper()

    @field_validator("ts")
    @classmethod
    def _range(cls, v: datetime) -> datetime:
        if v.year < 1900 or v.year > 2200:
            raise ValueError("timestamp out of range 1900–2200")
        return to_utc(v)

    @property
    def key(self) -> str:
        """Idempotency key: the event id, else a hash of the content."""
        if self.event_id:
            return self.event_id
        body = json.dumps(
            [self.user_id, self.type, self.item, self.item_qid, self.category, self.amount, self.currency,
             iso(self.ts)],
            ensure_ascii=False,
        )
        return "h:" + hashlib.sha256(body.encode()).hexdigest()[:32]


class EventLineError(BaseModel):
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class EventReport(BaseModel):
    lines: int = 0
    events_in: int = 0
    events_applied: int = 0
    edges_written: int = 0
    users: int = 0
    errors: list[EventLineError] = Field(default_factory=list)


# --- reading --------------------------------------------------------------------------------


def _validate(line_no: int, raw: Any) -> Event | EventLineError:
    if not isinstance(raw, dict):
        return EventLineError(line=line_no, field="line", message="expected a JSON object")
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(x) for x in e["loc"]) or "line"
        msg = "unknown field" if e["type"] == "extra_forbidden" else str(e["msg"]).removeprefix("Value error, ")
        return EventLineError(line=line_no, field=field, message=msg)


def read_events(path: Path, fmt: str | None = None) -> Iterator[tuple[int, Event | EventLineError]]:
    """(line number, event or error) for each non-blank line; CSV when fmt/suffix says so."""
    fmt = (fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")).lower()
    with open(path, encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            for row in reader:
                clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
                clean = {k: v for k, v in clean.items() if v not in ("", None)}
                if None in row:
                    error = EventLineError(line=reader.line_num, field="line", message="too many columns")
                    yield reader.line_num, error
                    continue
                yield reader.line_num, _validate(reader.line_num, clean)
            return
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, EventLineError(line=line_no, field="json", message=exc.msg)
                continue
            yield line_no, _validate(line_no, raw)


# --- writing -------------------------------------------------------------------------------

_UPSERT_USERS = """
UNWIND $rows AS r
MERGE (u:User {id: r.id})
ON CREATE SET u.first_seen = r.first, u.last_seen = r.last, u.n_docs = 0, u.langs = []
SET u.first_seen = CASE WHEN r.first < u.first_seen THEN r.first ELSE u.first_seen END,
    u.last_seen = CASE WHEN r.last > u.last_seen THEN r.last ELSE u.last_seen END
"""

# One row per (user, item) edge; new events are those whose id the edge has not seen. All new
# values are computed in WITH clauses before the single SET (FalkorDB applies SET at the end).
_BEHAVIOUR_EDGES = """
UNWIND $rows AS r
MATCH (u:User {id: r.user_id})
MATCH (e:Entity {key: r.key})
MERGE (u)-[p:{rel}]->(e)
ON CREATE SET p.ev_ids = [], p.ev_ts = [], p.ev_n = [], p.ev_amt = [], p.ev_k = []
WITH p, r, [i IN r.items WHERE NOT i.id IN p.ev_ids] AS new
WHERE size(new) > 0
WITH p, r, size(new) AS added, p.ev_ids + [i IN new | i.id] AS ids, p.ev_ts + [i IN new | i.ts] AS ts,
     p.ev_n + [i IN new | i.n] AS ns, p.ev_amt + [i IN new | i.amt] AS amts, p.ev_k + [i IN new | i.k] AS ks
WITH p, r, added, ids, ts, ns, amts, ks,
     [i IN range(0, size(ts) - 1) WHERE ks[i] = 'purchase' | ts[i]] AS bought
SET p.ev_ids = ids, p.ev_ts = ts, p.ev_n = ns, p.ev_amt = amts, p.ev_k = ks,
    p.count = reduce(s = 0, x IN ns | s + x),
    p.amount = reduce(s = 0.0, x IN amts | s + x),
    p.refund_count = size([k IN ks WHERE k = 'refund']),
    p.cart_count = size([k IN ks WHERE k = 'cart']),
    p.first_ts = reduce(m = ts[0], t IN ts | CASE WHEN t < m THEN t ELSE m END),
    p.last_ts = reduce(m = ts[0], t IN ts | CASE WHEN t > m THEN t ELSE m END),
    p.first_purchase_ts = CASE WHEN size(bought) = 0 THEN null
        ELSE reduce(m = bought[0], t IN bought | CASE WHEN t < m THEN t ELSE m END) END,
    p.last_purchase_ts = CASE WHEN size(bought) = 0 THEN null
        ELSE reduce(m = bought[0], t IN bought | CASE WHEN t > m THEN t ELSE m END) END,
    p.currency = coalesce(r.currency, p.currency),
    p.category = coalesce(r.category, p.category)
RETURN count(p) AS written, sum(added) AS events
"""

# Recomputed from the edges, so a retried or partial batch converges to the right totals.
_USER_AGGREGATES = """
UNWIND $ids AS id
MATCH (u:User {id: id})
OPTIONAL MATCH (u)-[p:PURCHASED]->(:Entity)
WITH u, sum(p.count) AS n, sum(p.amount) AS amount, min(p.first_purchase_ts) AS first,
     max(p.last_purchase_ts) AS last
OPTIONAL MATCH (u)-[v:VIEWED]->(:Entity)
WITH u, n, amount, first, last, sum(v.count) AS views, max(v.last_ts) AS last_view
SET u.purchase_count = n, u.purchase_amount = amount, u.first_purchase_ts = first,
    u.last_purchase_ts = last, u.view_count = views, u.last_view_ts = last_view, u.updated_at = $at
"""


def behaviour_edge_statement(rel: str) -> str:
    if not get_predicate(rel).behaviour:
        raise ValueError(f"{rel} is not a behaviour predicate")
    return _BEHAVIOUR_EDGES.replace("{rel}", checked_identifier(rel))


def user_aggregates_statement() -> str:
    return _USER_AGGREGATES


def upsert_users_statement() -> str:
    return _UPSERT_USERS


class _Linker:
    """Items → graph targets, cached per (relation, item, qid, category) within a run."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str, str | None, str | None], TargetRef] = {}
        self.categories: dict[str, str | None] = {}

    def category_qid(self, category: str) -> str | None:
        if category not in self.categories:
            if QID.match(category):
                self.categories[category] = category
            else:
                entity = linkers.link_object(category)
                self.categories[category] = entity.qid
        return self.categories[category]

    def target(self, ev: Event) -> TargetRef:
        rel = RELATION[ev.type]
        k = (rel, ev.item, ev.item_qid, ev.category)
        hit = self.cache.get(k)
        if hit is None:
            types = [q for q in [self.category_qid(ev.category)] if q] if ev.category else []
            hit = entity_target(get_predicate(rel), ev.item, qid=ev.item_qid, types=types)
            self.cache[k] = hit
        return hit


def _chunks(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def apply_events(
    store: GraphStore, events: list[Event], *, batch: int = 5000, linker: _Linker | None = None
) -> tuple[EventReport, list[tuple[int, str, str]]]:
    """Write a batch of valid events; returns the report and (index, field, message) problems."""
    linker = linker or _Linker()
    report = EventReport(events_in=len(events))
    problems: list[tuple[int, str, str]] = []
    resolved: list[tuple[Event, TargetRef]] = []
    for i, ev in enumerate(events):
        try:
            resolved.append((ev, linker.target(ev)))
        except (ResolutionError, linkers.InvalidMentionError, ValueError) as exc:
            problems.append((i, "item", str(exc)))
    if not resolved:
        return report, problems

    users: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    seen: set[tuple[str, str, str, str]] = set()
    targets: dict[str, TargetRef] = {}
    for ev, target in resolved:
        ts = iso(ev.ts)
        row = users.setdefault(ev.user_id, {"id": ev.user_id, "first": ts, "last": ts})
        row["first"], row["last"] = min(row["first"], ts), max(row["last"], ts)
        rel = RELATION[ev.type]
        ident = (rel, ev.user_id, target.key, ev.key)
        if ident in seen:
            continue  # the same event twice in one file: once
        seen.add(ident)
        targets[target.key] = target
        edge = edges.setdefault(
            (rel, ev.user_id, target.key),
            {"user_id": ev.user_id, "key": target.key, "currency": None, "category": None, "items": []},
        )
        sign = -1 if ev.type == "refund" else 1
        amount = float(ev.amount or 0.0) if rel == "PURCHASED" else 0.0
        edge["items"].append({"id": ev.key, "ts": ts, "n": sign, "amt": sign * amount, "k": ev.type})
        edge["currency"] = ev.currency or edge["currency"]
        edge["category"] = ev.category or edge["category"]

    for chunk in _chunks(list(users.values()), batch):
        store.query(_UPSERT_USERS, {"rows": chunk})
    write_entities(store, [_entity_row(t) for t in targets.values()], batch)
    ctx = context_for(targets.values())
    write_context(store, ctx.context, ctx.parents, batch)
    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (rel, _, _), row in edges.items():
        by_rel[rel].append(row)
    for rel, rows in by_rel.items():
        statement = behaviour_edge_statement(rel)
        for chunk in _chunks(rows, batch):
            res = store.query(statement, {"rows": chunk})
            if res.rows:
                report.edges_written += int(res.rows[0][0] or 0)
                report.events_applied += int(res.rows[0][1] or 0)
    at = iso(datetime.now(UTC))
    for chunk in _chunks(sorted(users), batch):
        store.query(_USER_AGGREGATES, {"ids": chunk, "at": at})
    report.users = len(users)
    return report, problems


def _entity_row(t: TargetRef) -> dict[str, Any]:
    p = t.props
    return {
        "key": t.key,
        "qid": p.get("qid"),
        "label_en": p.get("label_en"),
        "label_zh": p.get("label_zh"),
        "label_es": p.get("label_es"),
        "description": p.get("description"),
    }


def ingest_event_file(
    store: GraphStore, path: Path, *, fmt: str | None = None, batch: int = 5000, progress: Any = None
) -> EventReport:
    """Read, validate and apply an event file in batches; bad lines are reported, the rest goes in."""
    total = EventReport()
    linker = _Linker()
    pending: list[tuple[int, Event]] = []

    def flush() -> None:
        if not pending:
            return
        report, problems = apply_events(store, [e for _, e in pending], batch=batch, linker=linker)
        for idx, field, msg in problems:
            total.errors.append(EventLineError(line=pending[idx][0], field=field, message=msg))
        total.events_in += report.events_in
        total.events_applied += report.events_applied
        total.edges_written += report.edges_written
        total.users += report.users
        pending.clear()

    for line_no, item in read_events(path, fmt):
        total.lines += 1
        if isinstance(item, EventLineError):
            total.errors.append(item)
        else:
            pending.append((line_no, item))
            if len(pending) >= batch:
                flush()
        if progress is not None:
            progress()
    flush()
    total.errors.sort(key=lambda e: e.line)
    return total
