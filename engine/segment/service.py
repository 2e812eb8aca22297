"""Segments in the graph: definitions on `(:Segment)`, memberships on `MEMBER_OF` edges.

Membership model (chosen so that only whitelisted types are needed):
`(u:User)-[:MEMBER_OF {since, reason, reason_public, confidence, updated_at, left_at}]->(s:Segment)`.
A current member has `left_at = null`. A leaver keeps the edge with `left_at` set (so exports with
`--since` can report who left); a re-joiner gets a fresh `since` and `left_at = null`.
`reason_public` is the same explanation without evidence document ids (used for hashed exports).

Incremental refresh re-evaluates only users touched since the segment's last run: users whose
`updated_at` (wall clock, stamped by event ingestion and — once wired — by fusion) is at or after
`last_run_at`, or whose `last_seen` (data time) is past the `watermark` recorded at the last run.

Writes go by internal node id (seeks, no index lookups). Each membership keeps a fingerprint of its
reason and confidence (`fp1`, `fp2`: two 31-bit halves of a BLAKE2b digest). A full run compares, page
by page (see `engine.segment.evaluate.Page`), the count and fingerprint sums of the new members with
those the database computes for the current ones in one aggregate; only a page that differs reads its
old memberships (node id and fingerprint, not the reasons) to find joiners, leavers and updates, so a
re-run with no change ships no membership to the client.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import linkers
from engine.contracts import iso, to_utc
from engine.gc_pause import cyclic_gc_paused
from engine.segment.compile import known_qids_statement, nodes_of_users_statement
from engine.segment.evaluate import (
    MAX_USER_NODE,
    PAGE_ROWS,
    RESTRICT_LIMIT,
    Evaluator,
    Hit,
    Hits,
    pages,
    read_rows,
)
from engine.segment.model import SegmentDefinition, SegmentDefinitionError, load_definition, parse_definition
from engine.store import GraphStore

WRITE_BATCH = 20_000
DELETE_SLICE = 100_000  # memberships deleted per statement


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
    mode: str  # full | incremental | users (refresh_users)
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
# Memberships go first in slices: one statement deleting a million edges would exceed the query memory cap.
_DELETE_MEMBERSHIPS = """
MATCH (:Segment {id: $id})<-[m:MEMBER_OF]-(:User)
WITH m LIMIT $limit
DELETE m
RETURN count(m) AS n
"""


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
    while store.query(_DELETE_MEMBERSHIPS, {"id": segment_id, "limit": DELETE_SLICE}).scalar():
        pass
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

# Users touched since the last run (node ids) and the new data-time watermark, in one scan of the users.
_TOUCHED = """
MATCH (u:User)
WITH max(u.last_seen) AS watermark,
     collect(CASE WHEN u.updated_at >= $last_run OR u.last_seen > $watermark THEN id(u) END) AS touched
RETURN watermark, touched
"""
_WATERMARK = "MATCH (u:User) RETURN max(u.last_seen) AS watermark"
# Per page, in one pass over the memberships: the count and fingerprint sums of the current members,
# and the memberships of any kind (a page without any needs no read-back).
_PAGE_SUMS = """
MATCH (s:Segment {id: $id})<-[m:MEMBER_OF]-(u:User)
WITH id(u) / $span AS page, m, CASE WHEN m.left_at IS NULL THEN 1 ELSE 0 END AS current
RETURN page, sum(current) AS n, sum(current * m.fp1) AS fp1, sum(current * m.fp2) AS fp2, count(m) AS edges
"""
# Memberships (current or left) of one page's users, or of given users. The users are bound before the
# edge (MATCH + WITH): in one pattern FalkorDB starts from the segment and walks all its members.
_PAGE_MEMBERSHIPS = """
MATCH (s:Segment {id: $id})
MATCH (u:User) WHERE id(u) >= $lo AND id(u) < $hi
WITH s, u
MATCH (u)-[m:MEMBER_OF]->(s)
RETURN id(u) AS node, m.fp1 AS fp1, m.fp2 AS fp2, m.left_at IS NULL AS current
"""
_MEMBERSHIPS_OF = """
MATCH (s:Segment {id: $id})
UNWIND $nodes AS n
MATCH (u:User) WHERE id(u) = n
WITH s, u
MATCH (u)-[m:MEMBER_OF]->(s)
RETURN id(u) AS node, m.fp1 AS fp1, m.fp2 AS fp2, m.left_at IS NULL AS current
"""


def _by_node(tail: str) -> str:
    """`tail` for each row's user. Rows are positional lists [node, reason, public, confidence, fp1, fp2]
    (smaller to send and parse than maps); the node id is projected first (WITH r[0] AS n), which makes
    FalkorDB seek it instead of scanning."""
    return "\nMATCH (s:Segment) WHERE id(s) = $sid\nUNWIND $rows AS r\nWITH s, r, r[0] AS n\n" \
        "MATCH (u:User) WHERE id(u) = n\n" + tail


_JOIN = _by_node("""CREATE (u)-[:MEMBER_OF {since: $at, reason: r[1], reason_public: r[2],
    confidence: r[3], fp1: r[4], fp2: r[5], updated_at: $at}]->(s)
""")
# A re-joiner (its edge has left_at) gets a new `since`; `since` is set before left_at is cleared.
_REFRESH = _by_node("""WITH s, u, r
MATCH (u)-[m:MEMBER_OF]->(s)
SET m.since = CASE WHEN m.left_at IS NULL THEN m.since ELSE $at END, m.left_at = null,
    m.reason = r[1], m.reason_public = r[2], m.confidence = r[3], m.fp1 = r[4], m.fp2 = r[5], m.updated_at = $at
""")
_LEAVE = _by_node("""WITH s, u
MATCH (u)-[m:MEMBER_OF]->(s)
SET m.left_at = $at, m.updated_at = $at
""")
_FINISH_RUN = """
MATCH (s:Segment {id: $id})
SET s.size = $size, s.last_run_at = $run_at, s.watermark = $watermark, s.updated_at = $run_at,
    s.last_joined = $joined, s.last_left = $left
"""


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


Fingerprint = tuple[int, int]


Row = tuple[int, str, str, float, int, int]  # node, reason, public reason, confidence, fp1, fp2


def _row(node: int, hit: Hit) -> Row:
    reason, public = hit.reason(True), hit.reason(False)
    digest = hashlib.blake2b(f"{reason}\0{public}\0{hit.confidence!r}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return node, reason, public, hit.confidence, value & 0x7FFFFFFF, (value >> 31) & 0x7FFFFFFF


def _sums(rows: list[Row]) -> tuple[int, int, int]:
    return len(rows), sum(r[4] for r in rows), sum(r[5] for r in rows)


def _int(x: Any) -> int | None:
    return None if x is None else int(float(x))


class _Old(dict[int, tuple[Fingerprint | None, bool]]):
    """node → (fingerprint, current) of the existing memberships looked at."""

    @classmethod
    def of(cls, rows: list[list[Any]]) -> _Old:
        old = cls()
        for node, fp1, fp2, current in rows:
            fp = None if fp1 is None or fp2 is None else (_int(fp1) or 0, _int(fp2) or 0)
            old[int(node)] = (fp, current is True or current == "true")
        return old


class _Diff:
    """Joined / left / updated counts over a run, and the write jobs of each piece."""

    def __init__(self, sid: int, at: str) -> None:
        self.sid, self.at = sid, at
        self.joined = self.left = self.updated = 0

    def jobs(self, rows: list[Row], old: _Old) -> Iterator[tuple[str, dict[str, Any]]]:
        new_nodes = {r[0] for r in rows}
        fresh = [r for r in rows if r[0] not in old]
        refresh = []
        for r in rows:
            before = old.get(r[0])
            if before is None:
                continue
            fp, current = before
            if not current:
                self.joined += 1
                refresh.append(r)
            elif fp != (r[4], r[5]):
                self.updated += 1
                refresh.append(r)
        leave = [(n,) for n, (_, current) in old.items() if current and n not in new_nodes]
        self.joined += len(fresh)
        self.left += len(leave)
        for statement, part in ((_JOIN, fresh), (_REFRESH, refresh), (_LEAVE, leave)):
            for chunk in _chunks(part, WRITE_BATCH):
                yield statement, {"sid": self.sid, "rows": chunk, "at": self.at}


def _touched(store: GraphStore, last_run: str, watermark: str | None) -> tuple[set[int], str | None]:
    row = store.ro_query(_TOUCHED, {"last_run": last_run, "watermark": watermark or ""}).rows[0]
    return {int(n) for n in row[1] if n is not None}, row[0]


def _page_sums(store: GraphStore, segment_id: str) -> dict[int, tuple[tuple[int, int, int], int]]:
    """Page index → ((members, fp1 sum, fp2 sum), memberships of any kind)."""
    rows = store.ro_query(_PAGE_SUMS, {"id": segment_id, "span": PAGE_ROWS}).rows
    return {int(p): ((_int(n) or 0, _int(a) or 0, _int(b) or 0), int(e)) for p, n, a, b, e in rows}


def _write_scope(store: GraphStore, segment_id: str, evaluator: Evaluator, scope: set[int], diff: _Diff) -> None:
    """Re-evaluate a few touched users and write what changed for them."""
    hits: Hits = evaluator.members(scope) if scope else {}
    rows = [_row(n, h) for n, h in hits.items()]
    old_rows: list[list[Any]] = []
    for chunk in _chunks(sorted(scope), WRITE_BATCH):
        old_rows += read_rows(store, _MEMBERSHIPS_OF, {"id": segment_id, "nodes": chunk})
    store.write_stream(diff.jobs(rows, _Old.of(old_rows)))


def _write_pages(
    store: GraphStore, segment_id: str, evaluator: Evaluator, scope: set[int] | None, diff: _Diff
) -> int:
    """Evaluate page by page and write what changed; returns the members found (a full run's size).

    In a full run a page whose member count and fingerprint sums equal the stored ones is unchanged:
    nothing of it is read back or written.
    """
    sums = _page_sums(store, segment_id) if scope is None else {}
    size = 0
    for page in pages(store.ro_query(MAX_USER_NODE).scalar()):
        candidates = None if scope is None else {n for n in scope if page.holds(n)}
        if candidates is not None and not candidates:
            continue
        rows = [_row(n, h) for n, h in evaluator.members(candidates, page).items()]
        size += len(rows)
        stored, edges = sums.get(page.index, ((0, 0, 0), 0))
        if scope is None and _sums(rows) == stored:
            continue
        params = {"id": segment_id, "lo": page.lo, "hi": page.hi}
        old = _Old.of(read_rows(store, _PAGE_MEMBERSHIPS, params) if edges or scope is not None else [])
        if candidates is not None:
            old = _Old({n: v for n, v in old.items() if n in candidates})
        store.write_stream(diff.jobs(rows, old))
    return size


def run_segment(
    store: GraphStore, segment_id: str, *, incremental: bool = False, now: datetime | None = None
) -> RunReport:
    """Recompute a segment's memberships (everyone, or only users touched since the last run).

    `now` anchors time windows (`within_days`, RFM recency); it defaults to the wall clock.
    An incremental run of a never-run (or redefined) segment is a full run.
    """
    with cyclic_gc_paused():  # hundreds of thousands of short-lived rows and hits, no cycles
        return _run_segment(store, segment_id, incremental, now)


def _run_segment(store: GraphStore, segment_id: str, incremental: bool, now: datetime | None) -> RunReport:
    started = time.perf_counter()
    run_at = wall_clock()
    now_dt = to_utc(now) if now is not None else datetime.now(UTC)
    node = store.ro_query(_GET_SEGMENT, {"id": segment_id}).scalar()
    if node is None:
        raise SegmentNotFound(f"no segment with id {segment_id!r}")
    info = _info(node)
    evaluator = Evaluator(store, parse_definition(info.definition), now_dt)
    last_run = node.properties.get("last_run_at")
    scope: set[int] | None = None
    if incremental and last_run:
        scope, watermark = _touched(store, last_run, node.properties.get("watermark"))
    else:
        watermark = store.ro_query(_WATERMARK).scalar()
    diff = _Diff(int(node.id), run_at)
    if scope is not None and len(scope) <= RESTRICT_LIMIT:
        _write_scope(store, segment_id, evaluator, scope, diff)
        size = info.size + diff.joined - diff.left
    else:
        found = _write_pages(store, segment_id, evaluator, scope, diff)
        size = found if scope is None else info.size + diff.joined - diff.left
    store.query(
        _FINISH_RUN,
        {"id": segment_id, "size": size, "run_at": run_at, "watermark": watermark, "joined": diff.joined,
         "left": diff.left},
    )
    return RunReport(
        segment_id=segment_id,
        mode="incremental" if scope is not None else "full",
        evaluated_users=None if scope is None else len(scope),
        size=size,
        joined=diff.joined,
        left=diff.left,
        updated=diff.updated,
        seconds=round(time.perf_counter() - started, 4),
        run_at=run_at,
        now=iso(now_dt),
    )


_FINISH_REFRESH = """
MATCH (s:Segment {id: $id})
SET s.size = s.size + $joined - $left, s.updated_at = $at
"""
EVENT_DRIVEN = ("behaviour", "rfm", "cypher")  # leaves whose result events can change


def refresh_users(
    store: GraphStore, user_ids: set[str] | list[str], *, now: datetime | None = None
) -> list[RunReport]:
    """Re-evaluate the given users (e.g. those of a batch of events) in every segment with a
    behaviour, RFM or Cypher condition, and write what changed for them.

    Unlike an incremental run this does not move the segment's last run: users touched otherwise
    (new facts) are still picked up by the next incremental run.
    """
    now_dt = to_utc(now) if now is not None else datetime.now(UTC)
    uids = sorted(set(user_ids))
    nodes: set[int] = set()
    for chunk in _chunks(uids, WRITE_BATCH):
        nodes.update(int(n) for _, n in store.ro_query(nodes_of_users_statement(), {"uids": chunk}).rows)
    reports = []
    for row in store.ro_query(_LIST_SEGMENTS).rows:
        started = time.perf_counter()
        info = _info(row[0])
        definition = parse_definition(info.definition)
        if not nodes or not any(leaf.kind in EVENT_DRIVEN for leaf in definition.root.leaves()):
            continue
        at = wall_clock()
        diff = _Diff(int(row[0].id), at)
        evaluator = Evaluator(store, definition, now_dt)
        with cyclic_gc_paused():
            if len(nodes) <= RESTRICT_LIMIT:
                _write_scope(store, info.id, evaluator, nodes, diff)
            else:
                _write_pages(store, info.id, evaluator, nodes, diff)
        store.query(_FINISH_REFRESH, {"id": info.id, "joined": diff.joined, "left": diff.left, "at": at})
        reports.append(RunReport(
            segment_id=info.id, mode="users", evaluated_users=len(nodes),
            size=info.size + diff.joined - diff.left, joined=diff.joined, left=diff.left, updated=diff.updated,
            seconds=round(time.perf_counter() - started, 4), run_at=at, now=iso(now_dt)))
    return reports


def run_all(store: GraphStore, *, incremental: bool = False, now: datetime | None = None) -> list[RunReport]:
    return [run_segment(store, s.id, incremental=incremental, now=now) for s in list_segments(store)]
