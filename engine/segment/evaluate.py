"""Evaluate a definition against the graph: leaf statements + set algebra + reasons.

`all` intersects, `any` unites, `not` subtracts from the users in scope. Once the candidates of an
`all` are few (≤ RESTRICT_LIMIT), the remaining conditions run in their restricted shape
(`UNWIND $nodes`) instead of scanning everyone; incremental refresh starts restricted to the
touched users. Each member keeps the fragments that explain it: the fact edges (with evidence
documents) and behaviour that matched; `not` contributes no reason.

Users are keyed by their internal node id (seeks instead of index lookups downstream). A full run
goes page by page (`Page`: a range of node ids): every open leaf statement reads only the page's
users, so no statement holds more than a page of rows and each fits the database's per-query
memory cap. A leaf that matches at most a page's worth of users (counted server-side) runs once,
unpaged, and serves every page from that one result. Rows are read through the store's bulk path
(`ro_stream`) where it has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.contracts import iso, to_utc
from engine.gc_pause import cyclic_gc_paused
from engine.segment.compile import (
    HIERARCHY,
    LOCATION,
    closure_level_statement,
    count_statement,
    entities_by_qid_statement,
    entity_labels_statement,
    leaf_statement,
    nodes_of_users_statement,
    universe_statement,
    unpack,
    unpack_hit,
)
from engine.segment.model import MAX_DEPTH, EntityMatch, Leaf, Node, SegmentDefinition
from engine.store import GraphStore, StoreError, bulk_rows

RESTRICT_LIMIT = 20_000  # above this many candidates an open scan beats shipping the id list
CHUNK = 5_000
MAX_FRAGMENTS = 3
CYPHER_TIMEOUT_MS = 120_000
# Node ids per page of a full run (≈ users per page), and the most users a leaf may match to run unpaged:
# half a million rows of scalars are ~100 MB of result, well inside the default 1 GB per-query cap
# (an aggregation with a list per user of that size was not).
PAGE_ROWS = 1 << 19
STREAM_BATCH = 100_000


class SegmentRunError(RuntimeError):
    """A segment could not be evaluated (e.g. a raw Cypher segment failed or wrote)."""


@dataclass(slots=True)
class Fragment:
    text: str
    docs: tuple[str, ...] = ()

    def render(self, with_docs: bool) -> str:
        if with_docs and self.docs:
            return f"{self.text} [docs {','.join(self.docs)}]"
        return self.text


@dataclass(slots=True)
class Hit:
    confidence: float
    fragments: list[Fragment] = field(default_factory=list)

    def reason(self, with_docs: bool = True) -> str:
        return "; ".join(f.render(with_docs) for f in self.fragments)


Hits = dict[int, Hit]  # node id → hit


@dataclass(frozen=True, slots=True)
class Page:
    """The users whose node id is in [lo, hi)."""

    lo: int
    hi: int

    @property
    def index(self) -> int:
        return self.lo // PAGE_ROWS

    def holds(self, node: int) -> bool:
        return self.lo <= node < self.hi


def pages(max_node: int | None) -> list[Page]:
    """Pages of PAGE_ROWS node ids covering 0..max_node."""
    if max_node is None:
        return []
    return [Page(lo, lo + PAGE_ROWS) for lo in range(0, int(max_node) + 1, PAGE_ROWS)]


@dataclass
class Selection:
    """Entity keys a condition accepts, and for each the requested ancestor it was reached through."""

    keys: list[str]
    via: dict[str, str]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def read_rows(
    store: GraphStore, cypher: str, params: dict[str, Any] | None = None, timeout_ms: int | None = None
) -> list[list[Any]]:
    """All rows of a read-only statement, through the bulk path where the store has one (`bulk_rows`)."""
    return bulk_rows(store, cypher, params, timeout_ms=timeout_ms, batch_size=STREAM_BATCH)


def _float(x: Any) -> float:
    return float(x) if x is not None else 0.0


class Evaluator:
    def __init__(self, store: GraphStore, definition: SegmentDefinition, now: datetime) -> None:
        self.store = store
        self.definition = definition
        self.now = now
        self._labels: dict[str, tuple[str | None, str]] = {}
        self._selections: dict[str, Selection] = {}
        self._counts: dict[str, float] = {}  # leaf path → users it matches
        self._whole: dict[str, dict[int, list[list[Any]]]] = {}  # leaf path → its unpaged rows by page index

    # -- entity selection ---------------------------------------------------------------------

    def _keys_of_qids(self, qids: list[str]) -> list[str]:
        rows = self.store.ro_query(entities_by_qid_statement(), {"qids": qids}).rows
        return sorted({r[0] for r in rows})

    def _closure(self, qids: list[str], rels: tuple[str, ...]) -> dict[str, str]:
        """Descendant key → the root key it was reached from (breadth-first, MAX_DEPTH levels)."""
        roots = self._keys_of_qids(qids)
        via = {k: k for k in roots}
        frontier = roots
        statement = closure_level_statement(rels)
        for _ in range(MAX_DEPTH):
            found: list[str] = []
            for chunk in _chunks(frontier, CHUNK):
                for parent, child in self.store.ro_query(statement, {"keys": chunk}).rows:
                    if child not in via:
                        via[child] = via[parent]
                        found.append(child)
            if not found:
                break
            frontier = found
        return via

    def select(self, match: EntityMatch) -> Selection | None:
        """None = any entity; otherwise the keys satisfying every given selector."""
        if match.any_entity:
            return None
        cache_key = match.model_dump_json()
        if cache_key in self._selections:
            return self._selections[cache_key]
        sets: list[set[str]] = []
        via: dict[str, str] = {}
        if match.qid:
            sets.append(set(self._keys_of_qids(match.qid)))
        if match.key:
            sets.append(set(match.key))
        for qids, rels in ((match.descendant_of, HIERARCHY), (match.within, LOCATION)):
            if qids:
                closure = self._closure(qids, rels)
                sets.append(set(closure))
                for k, root in closure.items():
                    via.setdefault(k, root)
        keys = set.intersection(*sets) if sets else set()
        selection = Selection(keys=sorted(keys), via={k: via[k] for k in keys if k in via})
        self._selections[cache_key] = selection
        return selection

    def labels(self, keys: Iterable[str]) -> None:
        missing = sorted({k for k in keys if k not in self._labels})
        for chunk in _chunks(missing, CHUNK):
            for key, qid, label in self.store.ro_query(entity_labels_statement(), {"keys": chunk}).rows:
                self._labels[key] = (qid, label)
        for k in missing:
            self._labels.setdefault(k, (None, k))

    def describe(self, key: str) -> str:
        qid, label = self._labels.get(key, (None, key))
        return f"{label} ({qid})" if qid else str(label)

    def _entity_text(self, key: str, via: dict[str, str]) -> str:
        root = via.get(key)
        text = self.describe(key)
        return f"{text} ⊂ {self.describe(root)}" if root and root != key else text

    # -- leaves ------------------------------------------------------------------------------

    def _leaf_selection(self, leaf: Leaf) -> Selection | None:
        match = leaf.fact or leaf.behaviour or (leaf.sentiment.toward if leaf.sentiment else None)
        if leaf.kind == "literal" and leaf.literal is not None:
            kind = _literal_kind(leaf.predicate or "")
            return Selection(keys=[f"{kind}:{v}" for v in leaf.literal.value], via={})
        return self.select(match) if match is not None else None

    def _statement_params(self, leaf: Leaf, selection: Selection | None, **shape: bool) -> tuple[str, dict[str, Any]]:
        stmt = leaf_statement(leaf, keyed=selection is not None, now=self.now,
                              min_confidence=self.definition.min_confidence, **shape)
        params = dict(stmt.params)
        if selection is not None:
            params["keys"] = selection.keys
        return stmt.cypher, params

    def _run(
        self, leaf: Leaf, selection: Selection | None, candidates: set[int] | None, page: Page | None
    ) -> list[list[Any]]:
        """Rows `[node, ...]` of a leaf for the candidates (or everyone) within the page."""
        if leaf.kind == "cypher":
            rows = self._by_page(leaf, selection, page)
        elif candidates is not None and len(candidates) <= RESTRICT_LIMIT:
            cypher, params = self._statement_params(leaf, selection, restricted=True)
            rows = []
            try:
                for chunk in _chunks(sorted(candidates), CHUNK):
                    rows += read_rows(self.store, cypher, {**params, "nodes": chunk})
            except StoreError as exc:
                raise SegmentRunError(f"{leaf.path}: {exc}") from exc
            return rows
        elif page is None or self.count(leaf) <= PAGE_ROWS:
            rows = self._by_page(leaf, selection, page)
        else:
            cypher, params = self._statement_params(leaf, selection, restricted=False, paged=True)
            try:
                rows = read_rows(self.store, cypher, {**params, "lo": page.lo, "hi": page.hi})
            except StoreError as exc:
                raise SegmentRunError(f"{leaf.path}: {exc}") from exc
        if candidates is not None:
            rows = [r for r in rows if r[0] in candidates]
        return rows

    def _by_page(self, leaf: Leaf, selection: Selection | None, page: Page | None) -> list[list[Any]]:
        """The leaf's rows from one unpaged run (kept for the later pages), within the page."""
        whole = self._whole.get(leaf.path)
        if whole is None:
            if leaf.kind == "cypher":
                rows = self._cypher_rows(leaf)
            else:
                cypher, params = self._statement_params(leaf, selection, restricted=False)
                try:
                    rows = read_rows(self.store, cypher, params)
                except StoreError as exc:
                    raise SegmentRunError(f"{leaf.path}: {exc}") from exc
            whole = {}
            for r in rows:
                whole.setdefault(int(r[0]) // PAGE_ROWS, []).append(r)
            self._whole[leaf.path] = whole
        if page is None:
            return [r for part in whole.values() for r in part]
        return whole.get(page.index, [])

    def _cypher_rows(self, leaf: Leaf) -> list[list[Any]]:
        """[node, reason, confidence] of a raw Cypher leaf (its user ids resolved to nodes)."""
        where = leaf.path or "cypher"
        try:
            result = self.store.ro_query(leaf.cypher or "", {"now": iso(to_utc(self.now))}, CYPHER_TIMEOUT_MS)
        except StoreError as exc:
            raise SegmentRunError(f"{where}: {exc}") from exc
        columns = result.columns
        if "user_id" not in columns:
            raise SegmentRunError(f"{where}: the statement must return a column named user_id")
        ui = columns.index("user_id")
        ri = columns.index("reason") if "reason" in columns else None
        ci = columns.index("confidence") if "confidence" in columns else None
        found: dict[str, tuple[Any, float]] = {}
        for r in result.rows:
            if r[ui] is None:
                continue
            conf = r[ci] if ci is not None and isinstance(r[ci], (int, float)) else 1.0
            found[str(r[ui])] = (r[ri] if ri is not None else None, float(conf))
        rows = []
        for chunk in _chunks(sorted(found), CHUNK):
            for uid, node in self.store.ro_query(nodes_of_users_statement(), {"uids": chunk}).rows:
                rows.append([node, *found[uid]])
        return rows

    def count(self, leaf: Leaf) -> float:
        """Users a leaf matches, counted in the database (no rows shipped; for behaviour an upper bound:
        the users with a matching edge in the window's span); inf if unknown."""
        if leaf.kind == "cypher":
            return float("inf")
        if leaf.path not in self._counts:
            selection = self._leaf_selection(leaf)
            if selection is not None and not selection.keys:
                self._counts[leaf.path] = 0.0
            else:
                head = count_statement(leaf_statement(leaf, keyed=selection is not None, restricted=False,
                                                      now=self.now, min_confidence=self.definition.min_confidence))
                params = {**head.params, **({"keys": selection.keys} if selection is not None else {})}
                self._counts[leaf.path] = float(self.store.ro_query(head.cypher, params).scalar() or 0)
        return self._counts[leaf.path]

    def estimate(self, node: Node) -> float:
        """Users a condition would match if it is a leaf; inf otherwise."""
        return self.count(node.leaf) if node.leaf is not None else float("inf")

    def leaf_hits(self, leaf: Leaf, candidates: set[int] | None, page: Page | None = None) -> Hits:
        if candidates is not None and not candidates:
            return {}
        selection = self._leaf_selection(leaf)
        if selection is not None and not selection.keys:
            return {}
        rows = self._run(leaf, selection, candidates, page)
        via = selection.via if selection else {}
        return self._hits(leaf, rows, via)

    def _hits(self, leaf: Leaf, rows: list[list[Any]], via: dict[str, str]) -> Hits:
        out: Hits = {}
        pred = leaf.predicate or ""
        if leaf.kind in ("fact", "literal"):
            folded = _fold_edges(rows)
            if leaf.kind == "fact":
                self.labels({k for _, hits in folded.values() for k, _ in hits} | set(via.values()))
            texts: dict[str, str] = {}  # entity key → its text, once per key
            for node, (conf, hits) in folded.items():
                frags = []
                for key, docs in hits:
                    text = texts.get(key)
                    if text is None:
                        what = self._entity_text(key, via) if leaf.kind == "fact" else key.split(":", 1)[-1]
                        text = texts[key] = f"{pred} {what}"
                    frags.append(Fragment(text, docs))
                out[node] = Hit(conf, frags)
        elif leaf.kind == "behaviour":
            unpacked = [(node, n, amount, unpack(keys)) for node, n, amount, keys in rows]
            self.labels({k for r in unpacked for k in r[3]} | set(via.values()))
            for node, n, amount, keys in unpacked:
                items = ", ".join(self._entity_text(k, via) for k in keys)
                money = f", amount {_float(amount):.2f}" if leaf.behaviour and leaf.behaviour.amount else ""
                out[int(node)] = Hit(1.0, [Fragment(f"{pred} ×{_num(n)}{money}{_window_text(leaf)}: {items}")])
        elif leaf.kind == "sentiment" and leaf.sentiment is not None:
            labels = "/".join(leaf.sentiment.label)
            toward = " toward matching entities" if leaf.sentiment.toward else ""
            for node, n, docs in rows:
                text = f"{labels} sentiment ×{_num(n)}{toward}{_window_text(leaf)}"
                out[int(node)] = Hit(1.0, [Fragment(text, tuple(unpack(docs)))])
        elif leaf.kind == "rfm":
            for node, freq, monetary, last in rows:
                out[int(node)] = Hit(1.0, [Fragment(
                    f"RFM frequency {_num(freq)}, monetary {_float(monetary):.2f}, last purchase {last}"
                )])
        elif leaf.kind == "cypher":
            for node, reason, conf in rows:
                out[int(node)] = Hit(conf, [Fragment(str(reason) if reason else "cypher segment")])
        return out

    # -- set algebra -------------------------------------------------------------------------

    def universe(self, candidates: set[int] | None, page: Page | None = None) -> Hits:
        if candidates is not None and len(candidates) <= RESTRICT_LIMIT:
            rows = []
            for chunk in _chunks(sorted(candidates), CHUNK):
                rows += read_rows(self.store, universe_statement(restricted=True), {"nodes": chunk})
        elif page is not None:
            statement = universe_statement(restricted=False, paged=True)
            rows = read_rows(self.store, statement, {"lo": page.lo, "hi": page.hi})
        else:
            rows = read_rows(self.store, universe_statement(restricted=False))
        return {int(n): Hit(1.0) for (n,) in rows if candidates is None or n in candidates}

    def evaluate(self, node: Node, candidates: set[int] | None, page: Page | None = None) -> Hits:
        """Members (node id → hit) among the candidates (or everyone), within the page (or all pages)."""
        if node.op == "leaf" and node.leaf is not None:
            return self.leaf_hits(node.leaf, candidates, page)
        if node.op == "not":
            excluded = self.evaluate(node.children[0], candidates, page)
            return {u: h for u, h in self.universe(candidates, page).items() if u not in excluded}
        if node.op == "any":
            out: Hits = {}
            for child in node.children:
                for node_id, hit in self.evaluate(child, candidates, page).items():
                    prev = out.get(node_id)
                    out[node_id] = hit if prev is None else Hit(
                        max(prev.confidence, hit.confidence), prev.fragments + hit.fragments
                    )
            return out
        return self._all(node, candidates, page)

    def _all(self, node: Node, candidates: set[int] | None, page: Page | None) -> Hits:
        positive = [c for c in node.children if c.op != "not"]
        negative = [c.children[0] for c in node.children if c.op == "not"]
        if len(positive) > 1 and (candidates is None or len(candidates) > RESTRICT_LIMIT):
            # most selective first: the rest then runs restricted to few candidates
            order = {id(c): self.estimate(c) for c in positive}
            positive.sort(key=lambda c: order[id(c)])
        current: Hits | None = None
        scope = candidates
        for child in positive:
            hits = self.evaluate(child, scope, page)
            if current is None:
                current = hits
            else:
                current = {
                    u: Hit(min(h.confidence, hits[u].confidence), h.fragments + hits[u].fragments)
                    for u, h in current.items()
                    if u in hits
                }
            if not current:
                return {}
            scope = set(current)
        if current is None:
            current = self.universe(candidates, page)
        for child in negative:
            if not current:
                break
            excluded = self.evaluate(child, set(current), page)
            current = {u: h for u, h in current.items() if u not in excluded}
        return current

    def members(self, candidates: set[int] | None = None, page: Page | None = None) -> Hits:
        """The definition's members among the candidates (or everyone), within the page (or all)."""
        hits = self.evaluate(self.definition.root, candidates, page)
        for hit in hits.values():
            del hit.fragments[MAX_FRAGMENTS * 2 :]  # keep reasons short; the graph has the rest
        return hits


def _fold_edges(rows: list[list[Any]]) -> dict[int, tuple[float, list[tuple[str, tuple[str, ...]]]]]:
    """A fact leaf's rows (one per matching edge) per user: (max confidence, first 3 hits)."""
    out: dict[int, tuple[float, list[tuple[str, tuple[str, ...]]]]] = {}
    for node, conf, hit in rows:
        n, c = int(node), _float(conf)
        prev = out.get(n)
        if prev is None:
            out[n] = (c, [unpack_hit(hit)])
            continue
        hits = prev[1]
        if len(hits) < 3:
            hits.append(unpack_hit(hit))
        if c > prev[0]:
            out[n] = (c, hits)
    return out


def _num(x: Any) -> str:
    """Counts come back as floats from sum() (or as text from the bulk path); print 3 rather than 3.0."""
    if isinstance(x, str):
        x = float(x)
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _literal_kind(predicate: str) -> str:
    from graph_schema import PREDICATES

    return PREDICATES[predicate].literal_kind or "value"


def _window_text(leaf: Leaf) -> str:
    cond = leaf.behaviour or leaf.sentiment
    if cond is None or not cond.active:
        return ""
    if cond.within_days is not None:
        return f" in last {cond.within_days:g}d"
    parts = []
    if cond.since:
        parts.append(f"since {cond.since.date()}")
    if cond.until:
        parts.append(f"until {cond.until.date()}")
    return " " + " ".join(parts)


def evaluate_definition(
    store: GraphStore, definition: SegmentDefinition, *, now: datetime, candidates: set[int] | None = None
) -> Hits:
    """Members (node id → Hit) of a definition, over everyone or only the given candidate nodes,
    page by page."""
    evaluator = Evaluator(store, definition, now)
    with cyclic_gc_paused():
        if candidates is not None and len(candidates) <= RESTRICT_LIMIT:
            return evaluator.members(candidates)
        out: Hits = {}
        for page in pages(store.ro_query(MAX_USER_NODE).scalar()):
            out.update(evaluator.members(candidates, page))
        return out


MAX_USER_NODE = "MATCH (u:User) RETURN max(id(u)) AS max_node"
