"""Sampling a review batch: a seeded, stratified sample of recent documents with the facts and
sentiment the engine stored for them, saved in the graph as (:ReviewBatch) + (:ReviewItem) nodes
(so a batch travels with the persona home, and `forget` removes a user's items).

Each item freezes the engine's facts for its document at sampling time: quality is measured on
what the engine extracted, not on what reviewers changed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from engine.review.model import STRATA, Batch, ItemFact, ReviewConflict, ReviewInvalid
from engine.store import GraphStore
from graph_schema import PREDICATES

RECENT_DAYS = 30  # default window: the month before the newest document
BATCH_NAME = re.compile(r"[\w.-]{1,128}")  # as the API: no `|`, `/`, space or control character
SEED_RANGE = (-(2**63), 2**63 - 1)  # what the graph stores as an integer: a bigger seed would be clamped
FORGOTTEN = "forgotten"  # the state of an item whose document was forgotten: a tombstone
FACT_TYPES = [name for name, p in PREDICATES.items() if not p.behaviour]


class Candidate(BaseModel):
    """A document that may be sampled, with the keys it can be stratified by."""

    doc_id: str
    user_id: str
    ts: str
    lang: str
    predicate: str  # the document's most frequent fact predicate, NONE without facts
    tier: str  # the most frequent extractor tier of its facts, none without facts

    def stratum(self, keys: Sequence[str]) -> tuple[str, ...]:
        return tuple(getattr(self, k) for k in keys)


_NEWEST_DOCUMENT = "MATCH (d:Document) RETURN max(d.ts) AS newest"

_CANDIDATES = """
MATCH (d:Document)-[:ABOUT]->(u:User)
WHERE d.ts >= $since AND d.text IS NOT NULL AND d.text <> ''
OPTIONAL MATCH (u)-[f]->()
WHERE type(f) IN $types AND d.id IN f.docs
RETURN d.id AS doc_id, u.id AS user_id, d.ts AS ts, coalesce(d.lang, 'unknown') AS lang,
       collect(type(f)) AS predicates,
       collect(CASE WHEN f IS NULL THEN null ELSE coalesce(f.tier, 'unknown') END) AS tiers
"""

_REVIEWED_DOCUMENTS = "MATCH (i:ReviewItem) RETURN DISTINCT i.doc_id AS doc_id"

# The facts of some documents, with every name of the object (to find it in the text).
DOCUMENT_FACTS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})-[:ABOUT]->(u:User)
MATCH (u)-[f]->(o)
WHERE type(f) IN $types AND id IN f.docs
RETURN id AS doc_id, type(f) AS predicate, labels(o)[0] AS target_label, o.key AS key,
       coalesce(o.label_en, o.label_zh, o.label_es, o.value, o.key) AS label,
       [o.label_en, o.label_zh, o.label_es, o.value] AS names, f.confidence AS confidence,
       f.status AS status, coalesce(f.tier, 'unknown') AS tier
"""

_DOCUMENTS = """
UNWIND $ids AS id
MATCH (d:Document {id: id})
RETURN d.id AS doc_id, d.user_id AS user_id, d.ts AS ts, coalesce(d.lang, 'unknown') AS lang,
       d.text AS text, d.sentiment AS sentiment
"""

BATCH_EXISTS = "MATCH (b:ReviewBatch {id: $id}) RETURN b.id"
_BATCHES_IN_PERIOD = "MATCH (b:ReviewBatch) WHERE b.period = $period RETURN count(b) AS n"

# One statement: a batch is there with all its items or not at all.
_CREATE_BATCH = """
CREATE (b:ReviewBatch)
SET b = $batch
WITH b
UNWIND $items AS it
CREATE (i:ReviewItem)
SET i = it
RETURN count(i) AS n
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _most_common(values: list[str], default: str) -> str:
    if not values:
        return default
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))  # ties: alphabetical, so the result is stable


def locate(text: str, names: Sequence[str | None]) -> tuple[int, int] | None:
    """Where one of an object's names first appears in the text (case-insensitive), longest name
    first, then without a plural ending (Wikidata labels such as "Teas"); None when none does (a
    literal value such as an age band is often not written as stored). The surface form the
    extractor saw is not kept on the edge, so this is a best effort for highlighting."""
    lowered = text.casefold()
    clean = sorted({n.strip().casefold() for n in names if n and n.strip()}, key=len, reverse=True)
    singular = [n[: -len(end)] for n in clean for end in ("es", "s") if n.endswith(end) and len(n) > len(end) + 2]
    for name in [*clean, *singular]:
        at = lowered.find(name)
        if at >= 0:
            return at, at + len(name)
    return None


def nil_name(key: str) -> str | None:
    """The name inside a NIL key (nil:<type>:<name>)."""
    return key.split(":", 2)[2] if key.startswith("nil:") and key.count(":") >= 2 else None


def candidates(store: GraphStore, since: str, *, exclude: set[str]) -> list[Candidate]:
    rows = store.ro_query(_CANDIDATES, {"since": since, "types": FACT_TYPES}).records()
    return [
        Candidate(doc_id=r["doc_id"], user_id=r["user_id"], ts=r["ts"], lang=r["lang"],
                  predicate=_most_common(r["predicates"], "NONE"), tier=_most_common(r["tiers"], "none"))
        for r in rows if r["doc_id"] not in exclude
    ]


def allocate(sizes: dict[tuple[str, ...], int], n: int) -> dict[tuple[str, ...], int]:
    """Documents per stratum: proportional to its size (largest remainder), at least one per
    stratum when n allows it, never more than the stratum holds."""
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0:
        return {k: 0 for k in sizes}
    keys = sorted(sizes)
    quota = {k: n * sizes[k] / total for k in keys}
    out = {k: min(sizes[k], math.floor(quota[k])) for k in keys}
    if n >= len(keys):
        for k in keys:
            out[k] = max(out[k], 1)
    # too many (the minimum of one): take from the strata most above their quota
    while sum(out.values()) > n:
        k = max((k for k in keys if out[k] > 1), key=lambda k: (out[k] - quota[k], k))
        out[k] -= 1
    # too few: give to the largest remainders that still have documents
    while sum(out.values()) < n:
        k = max((k for k in keys if out[k] < sizes[k]), key=lambda k: (quota[k] - out[k], k))
        out[k] += 1
    return out


def stratified_sample(pool: list[Candidate], n: int, keys: Sequence[str], seed: int) -> list[Candidate]:
    """A seeded sample of n documents, stratified by `keys`; the same pool and seed give the same
    sample. The result is in a seeded random order (the order reviewers see)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sampling, not crypto
    strata: dict[tuple[str, ...], list[Candidate]] = defaultdict(list)
    for c in sorted(pool, key=lambda c: c.doc_id):
        strata[c.stratum(keys)].append(c)
    quota = allocate({k: len(v) for k, v in strata.items()}, n)
    chosen: list[Candidate] = []
    for k in sorted(strata):
        docs = strata[k]
        rng.shuffle(docs)
        chosen += docs[: quota[k]]
    rng.shuffle(chosen)
    return chosen


def document_facts(store: GraphStore, doc_ids: list[str], texts: dict[str, str]) -> dict[str, list[ItemFact]]:
    """Fact edges supported by each document, with the object's span located in its text."""
    out: dict[str, list[ItemFact]] = defaultdict(list)
    for r in store.ro_query(DOCUMENT_FACTS, {"ids": doc_ids, "types": FACT_TYPES}).records():
        names = [*r["names"], nil_name(r["key"])]
        out[r["doc_id"]].append(ItemFact(
            ref=f"{r['predicate']}:{r['key']}", predicate=r["predicate"], target_label=r["target_label"],
            key=r["key"], label=str(r["label"]), confidence=r["confidence"], status=r["status"], tier=r["tier"],
            span=locate(texts.get(r["doc_id"]) or "", names),
        ))
    for facts in out.values():
        facts.sort(key=lambda f: (f.span[0] if f.span else 1 << 30, f.ref))
    return out


def documents(store: GraphStore, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {r["doc_id"]: r for r in store.ro_query(_DOCUMENTS, {"ids": doc_ids}).records()}


class SampleReport(BaseModel):
    batch: Batch
    pool: int  # documents that could be sampled
    strata: dict[str, int]  # stratum → documents taken


def sample_batch(
    store: GraphStore,
    n: int,
    *,
    since: str | None = None,
    stratify: Sequence[str] = (),
    seed: int = 0,
    name: str | None = None,
    created_by: str | None = None,
    now: datetime | None = None,
) -> SampleReport:
    """Sample n recent documents not yet in any batch and save them as a new review batch.

    `since` (ISO date or timestamp) defaults to 30 days before the newest document."""
    if n < 1:
        raise ReviewInvalid(f"n: must be at least 1, got {n}")
    if name is not None and not BATCH_NAME.fullmatch(name):
        raise ReviewInvalid(f"name: {name[:60]!r} is not a batch name (1-128 letters, digits, _ . -)")
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ReviewInvalid(f"seed: {seed} is outside the 64-bit range the graph stores (|seed| < 2^63)")
    unknown = [k for k in stratify if k not in STRATA]
    if unknown:
        raise ReviewInvalid(f"stratify: unknown key(s) {unknown}; use {', '.join(STRATA)}")
    now = now or _now()
    if since is None:
        newest = store.ro_query(_NEWEST_DOCUMENT).scalar()
        if not newest:
            raise ReviewInvalid("there are no documents to review yet")
        since = _iso(datetime.fromisoformat(str(newest).replace("Z", "+00:00")) - timedelta(days=RECENT_DAYS))
    else:
        since = _since(since)
    reviewed = {r[0] for r in store.ro_query(_REVIEWED_DOCUMENTS).rows}
    pool = candidates(store, since, exclude=reviewed)
    if not pool:
        raise ReviewInvalid(f"no documents with text since {since} that are not in a batch already")
    chosen = stratified_sample(pool, n, list(stratify), seed)
    period = now.strftime("%Y-%m")
    batch_id = name or f"{period}-{int(store.ro_query(_BATCHES_IN_PERIOD, {'period': period}).scalar() or 0) + 1}"
    if store.ro_query(BATCH_EXISTS, {"id": batch_id}).rows:
        raise ReviewConflict(f"a review batch named {batch_id!r} exists already")
    ids = [c.doc_id for c in chosen]
    docs = documents(store, ids)
    facts = document_facts(store, ids, {d: r["text"] or "" for d, r in docs.items()})
    batch = Batch(id=batch_id, name=batch_id, period=period, created_at=_iso(now), created_by=created_by,
                  since=since, seed=seed, stratify=list(stratify), size=len(chosen))
    items = [
        {k: v for k, v in {
            "id": item_id(batch_id, c.doc_id), "batch_id": batch_id, "doc_id": c.doc_id, "user_id": c.user_id,
            "position": i, "lang": c.lang, "ts": c.ts, "engine_sentiment": docs[c.doc_id].get("sentiment"),
            "facts": json.dumps([f.model_dump() for f in facts.get(c.doc_id, [])], ensure_ascii=False),
            "n_facts": len(facts.get(c.doc_id, [])), "stratum": "|".join(c.stratum(list(stratify))),
            "rev": 0, "state": "pending",
        }.items() if v is not None}  # a null property is no property
        for i, c in enumerate(chosen)
    ]
    props = batch.model_dump(exclude={"judged", "forgotten"}, exclude_none=True)
    store.query(_CREATE_BATCH, {"batch": props, "items": items})
    strata = Counter("|".join(c.stratum(list(stratify))) or "all" for c in chosen)
    return SampleReport(batch=batch, pool=len(pool), strata=dict(sorted(strata.items())))


def item_id(batch_id: str, doc_id: str) -> str:
    """The item's key: a JSON pair, so no batch and document ids can make the same key (items
    are still looked up by the (batch_id, doc_id) pair, so keys stored in an older form read too)."""
    return json.dumps([batch_id, doc_id], ensure_ascii=False)


def tombstone_id(batch_id: str, doc_id: str) -> str:
    """The key a forgotten item keeps: a digest, so the document id itself is not kept, and a
    stale request for the pair can still be told "gone" (410) instead of "never there" (404)."""
    return "forgotten:" + hashlib.sha256(item_id(batch_id, doc_id).encode()).hexdigest()


def _since(raw: str) -> str:
    try:
        ts = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReviewInvalid(f"since: {raw[:40]!r} is not an ISO-8601 date or timestamp") from None
    return _iso(ts if ts.tzinfo else ts.replace(tzinfo=UTC))
