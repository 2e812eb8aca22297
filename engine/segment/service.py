"""Segments in the graph: definitions on `(:Segment)`, memberships on `MEMBER_OF` edges.

Membership model (chosen so that only whitelisted types are needed):
`(u:User)-[:MEMBER_OF {since, reason, reason_public, confidence, updated_at, left_at}]->(s:Segment)`.
A current member has `left_at = null`. A leaver keeps the edge with `left_at` set (so exports with
`--since` can report who left); a re-joiner gets a fresh `since` and `left_at = null`.
`reason_public` is the same explanation without evidence document ids (used for hashed exports).

Incremental refresh re-evaluates only users touched since the segment's last run: users whose
`updated_at` (wall clock, stamped by event ingestion and — once wired — by fusion) is at or after
`last_run_at`, or whose `last_seen` (data time) is past the `watermark` recorded at the last run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import linkers
from engine.contracts import iso, to_utc
from engine.segment.compile import known_qids_statement
from engine.segment.evaluate import Hit, evaluate_definition
from engine.segment.model import SegmentDefinition, SegmentDefinitionError, load_definition, parse_definition
from engine.store import GraphStore

WRITE_BATCH = 20_000


class SegmentNotFound(LookupError):
    pass


class SegmentInfo(BaseModel):
    id: str
    name: str
    description: str = ""
    kind: str = "defined"  # defined | discovered
    definition: dict[str, Any] = Field(default_factory=dict)
    definition_hash: str
    size: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    last_run_at: str | None = None


class Member(BaseModel):
    user_id: str
    reason: str
    confidence: float
    since: str


class RunReport(BaseModel):
    segment_id: str
    mode: str  # full | incremental
    evaluated_users: int | None = None  # None = everyone
    size: int
    joined: int
    left: int
    updated: int
    seconds: float
    run_at: str
    now: str


def wall_clock() -> str:
    return iso(datetime.now(UTC))


# --- definitions ------------------------------------------------------------------------------

_UPSERT_SEGMENT = """
MERGE (s:Segment {id: $id})
ON CREATE SET s.created_at = $at, s.size = 0
WITH s, coalesce(s.definition_hash = $hash, false) AS same
SET s.name = $name, s.description = $description, s.definition = $definition, s.kind = $kind,
    s.updated_at = $at,
    s.last_run_at = CASE WHEN same THEN s.last_run_at ELSE null END,
    s.watermark = CASE WHEN same THEN s.watermark ELSE null END,
    s.definition_hash = $hash
RETURN s
"""
_GET_SEGMENT = "MATCH (s:Segment {id: $id}) RETURN s"
_LIST_SEGMENTS = "MATCH (s:Segment) RETURN s ORDER BY s.id"
_DELETE_SEGMENT = "MATCH (s:Segment {id: $id}) DETACH DELETE s RETURN count(s) AS n"


def unknown_qids(store: GraphStore, qids: list[str]) -> list[str]:
    """QIDs in neither the graph nor the shipped KB."""
    if not qids:
        return []
    in_graph = {r[0] for r in store.ro_query(known_qids_statement(), {"qids": sorted(set(qids))}).rows}
    return [q for q in dict.fromkeys(qids) if q not in in_graph and linkers.describe(q) is None]


def validate_qids(store: GraphStore, definition: SegmentDefinition) -> None:
    for leaf in definition.root.leaves():
        matches = [m for m in (leaf.fact, leaf.behaviour, leaf.sentiment.toward if leaf.sentiment else None) if m]
        for match in matches:
            for selector in ("qid", "descendant_of", "within"):
                bad = unknown_qids(store, getattr(match, selector))
                if bad:
                    where = f"{leaf.path}.toward" if leaf.sentiment else leaf.path
                    raise SegmentDefinitionError(
                        f"{where}.{selector}", f"unknown QID {bad[0]}: not in the graph nor in the knowledge base"
                    )


def _info(node: Any) -> SegmentInfo:
    p = dict(node.properties)
    try:
        definition = json.loads(p.get("definition") or "{}")
    except json.JSONDecodeError:
        definition = {}
    return SegmentInfo(
        id=p["id"],
        name=p.get("name") or p["id"],
        description=p.get("description") or "",
        kind=p.get("kind") or "defined",
        definition=definition,
        definition_hash=p.get("definition_hash") or "",
        size=int(p.get("size") or 0),
        created_at=p.get("created_at"),
        updated_at=p.get("updated_at"),
        last_run_at=p.get("last_run_at"),
    )


def apply_definition(
    store: GraphStore, definition_or_path: str | Path | dict[str, Any] | SegmentDefinition, *, kind: str = "defined"
) -> SegmentInfo:
    """Validate (keys, values, windows, QIDs, read-only Cypher) and save a definition.

    A changed definition forgets its last run, so the next `run_segment` recomputes in full.
    Raises SegmentDefinitionError naming the offending key.
    """
    definition = (
        definition_or_path if isinstance(definition_or_path, SegmentDefinition) else load_definition(definition_or_path)
    )
    validate_qids(store, definition)
    row = store.query(
        _UPSERT_SEGMENT,
        {
            "id": definition.id,
            "name": definition.name,
            "description": definition.description,
            "definition": definition.definition_json,
            "hash": definition.definition_hash,
            "kind": kind,
            "at": wall_clock(),
        },
    ).scalar()
    return _info(row)


def list_segments(store: GraphStore) -> list[SegmentInfo]:
    return [_info(r[0]) for r in store.ro_query(_LIST_SEGMENTS).rows]


def get_segment(store: GraphStore, segment_id: str) -> SegmentInfo:
    node = store.ro_query(_GET_SEGMENT, {"id": segment_id}).scalar()
    if node is None:
        raise SegmentNotFound(f"no segment with id {segment_id!r}")
    return _info(node)


def delete_segment(store: GraphStore, segment_id: str) -> bool:
    """Remove a segment and its memberships (users stay)."""
    return bool(store.query(_DELETE_SEGMENT, {"id": segment_id}).scalar())


def stored_definition(store: GraphStore, segment_id: str) -> SegmentDefinition:
    info = get_segment(store, segment_id)
    return parse_definition(info.definition)


# --- members ----------------------------------------------------------------------------------

_MEMBERS_PAGE = """
MATCH (s:Segment {id: $id})<-[m:MEMBER_OF]-(u:User)
WHERE m.left_at IS NULL
RETURN u.id AS user_id, m.reason AS reason, m.confidence AS confidence, m.since AS since
ORDER BY user_id
SKIP $offset LIMIT $limit
"""


def segment_members(store: GraphStore, segment_id: str, *, offset: int = 0, limit: int = 100) -> list[Member]:
    """Current members ordered by user id; raises SegmentNotFound."""
    get_segment(store, segment_id)
    rows = store.ro_query(
        _MEMBERS_PAGE, {"id": segment_id, "offset": max(0, int(offset)), "limit": max(0, int(limit))}
    ).rows
    return [Member(user_id=u, reason=r or "", confidence=float(c or 0), since=s or "") for u, r, c, s in rows]


# --- runs ---------------------------------------------------------------------------------

_CURRENT_MEMBERS = """
MATCH (s:Segment {id: $id})<-[m:MEMBER_OF]-(u:User)
WHERE m.left_at IS NULL
RETURN u.id AS user_id, m.reason AS reason, m.confidence AS confidence
"""
# Users are bound before the edge (MATCH + WITH) in the statements below: in one pattern FalkorDB
# starts from the indexed segment and walks all its members for every row.
_CURRENT_MEMBERS_OF = """
MATCH (s:Segment {id: $id})
UNWIND $uids AS uid
MATCH (u:User {id: uid})
WITH s, u
MATCH (u)-[m:MEMBER_OF]->(s)
WHERE m.left_at IS NULL
RETURN u.id AS user_id, m.reason AS reason, m.confidence AS confidence
"""
# Users touched since the last run and the new data-time watermark, in one scan of the users.
_TOUCHED = """
MATCH (u:User)
WITH max(u.last_seen) AS watermark,
     collect(CASE WHEN u.updated_at >= $last_run OR u.last_seen > $watermark THEN u.id END) AS touched
RETURN watermark, touched
"""
_WATERMARK = "MATCH (u:User) RETURN max(u.last_seen) AS watermark"
_JOIN = """
MATCH (s:Segment {id: $id})
UNWIND $rows AS r
MATCH (u:User {id: r.uid})
MERGE (u)-[m:MEMBER_OF]->(s)
SET m.since = $at, m.left_at = null, m.reason = r.reason, m.reason_public = r.public,
    m.confidence = r.confidence, m.updated_at = $at
"""
_UPDATE = """
MATCH (s:Segment {id: $id})
UNWIND $rows AS r
MATCH (u:User {id: r.uid})
WITH s, u, r
MATCH (u)-[m:MEMBER_OF]->(s)
SET m.reason = r.reason, m.reason_public = r.public, m.confidence = r.confidence, m.updated_at = $at
"""
_LEAVE = """
MATCH (s:Segment {id: $id})
UNWIND $uids AS uid
MATCH (u:User {id: uid})
WITH s, u
MATCH (u)-[m:MEMBER_OF]->(s)
SET m.left_at = $at, m.updated_at = $at
"""
_COUNT_MEMBERS = """
MATCH (s:Segment {id: $id})<-[m:MEMBER_OF]-(:User)
WHERE m.left_at IS NULL
RETURN count(m) AS n
"""
_FINISH_RUN = """
MATCH (s:Segment {id: $id})
SET s.size = $size, s.last_run_at = $run_at, s.watermark = $watermark, s.updated_at = $run_at,
    s.last_joined = $joined, s.last_left = $left
"""


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _current(store: GraphStore, segment_id: str, users: set[str] | None) -> dict[str, tuple[str, float]]:
    if users is None:
        rows = store.ro_query(_CURRENT_MEMBERS, {"id": segment_id}).rows
    else:
        rows = []
        for chunk in _chunks(sorted(users), WRITE_BATCH):
            rows += store.ro_query(_CURRENT_MEMBERS_OF, {"id": segment_id, "uids": chunk}).rows
    return {u: (r or "", float(c or 0)) for u, r, c in rows}


def _row(uid: str, hit: Hit) -> dict[str, Any]:
    return {"uid": uid, "reason": hit.reason(True), "public": hit.reason(False), "confidence": hit.confidence}


def write_memberships(
    store: GraphStore, segment_id: str, hits: dict[str, Hit], scope: set[str] | None, at: str
) -> tuple[int, int, int]:
    """Diff the new members against the current ones (within scope) and write the changes."""
    current = _current(store, segment_id, scope)
    joined = [_row(u, h) for u, h in hits.items() if u not in current]
    left = [u for u in current if u not in hits]
    changed = []
    for uid, hit in hits.items():
        old = current.get(uid)
        if old is not None:
            row = _row(uid, hit)
            if (row["reason"], round(row["confidence"], 9)) != (old[0], round(old[1], 9)):
                changed.append(row)
    for statement, rows, key in ((_JOIN, joined, "rows"), (_UPDATE, changed, "rows"), (_LEAVE, left, "uids")):
        for chunk in _chunks(rows, WRITE_BATCH):
            store.query(statement, {"id": segment_id, key: chunk, "at": at})
    return len(joined), len(left), len(changed)


def _touched(store: GraphStore, last_run: str, watermark: str | None) -> tuple[set[str], str | None]:
    row = store.ro_query(_TOUCHED, {"last_run": last_run, "watermark": watermark or ""}).rows[0]
    return {u for u in row[1] if u is not None}, row[0]


def run_segment(
    store: GraphStore, segment_id: str, *, incremental: bool = False, now: datetime | None = None
) -> RunReport:
    """Recompute a segment's memberships (everyone, or only users touched since the last run).

    `now` anchors time windows (`within_days`, RFM recency); it defaults to the wall clock.
    An incremental run of a never-run (or redefined) segment is a full run.
    """
    started = time.perf_counter()
    run_at = wall_clock()
    now_dt = to_utc(now) if now is not None else datetime.now(UTC)
    node = store.ro_query(_GET_SEGMENT, {"id": segment_id}).scalar()
    if node is None:
        raise SegmentNotFound(f"no segment with id {segment_id!r}")
    info = _info(node)
    definition = parse_definition(info.definition)
    last_run = node.properties.get("last_run_at")
    scope: set[str] | None = None
    if incremental and last_run:
        scope, watermark = _touched(store, last_run, node.properties.get("watermark"))
    else:
        watermark = store.ro_query(_WATERMARK).scalar()
    hits = evaluate_definition(store, definition, now=now_dt, candidates=scope) if scope != set() else {}
    joined, left, changed = write_memberships(store, segment_id, hits, scope, run_at)
    size = len(hits) if scope is None else int(store.ro_query(_COUNT_MEMBERS, {"id": segment_id}).scalar() or 0)
    store.query(
        _FINISH_RUN,
        {"id": segment_id, "size": size, "run_at": run_at, "watermark": watermark, "joined": joined, "left": left},
    )
    return RunReport(
        segment_id=segment_id,
        mode="incremental" if scope is not None else "full",
        evaluated_users=None if scope is None else len(scope),
        size=size,
        joined=joined,
        left=left,
        updated=changed,
        seconds=round(time.perf_counter() - started, 4),
        run_at=run_at,
        now=iso(now_dt),
    )


def run_all(store: GraphStore, *, incremental: bool = False, now: datetime | None = None) -> list[RunReport]:
    return [run_segment(store, s.id, incremental=incremental, now=now) for s in list_segments(store)]
