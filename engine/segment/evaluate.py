"""Evaluate a definition against the graph: leaf statements + set algebra + reasons.

`all` intersects, `any` unites, `not` subtracts from the users in scope. Once the candidates of an
`all` are few (≤ RESTRICT_LIMIT), the remaining conditions run in their restricted shape
(`UNWIND $uids`) instead of scanning everyone; incremental refresh starts restricted to the
touched users. Each member keeps the fragments that explain it: the fact edges (with evidence
documents) and behaviour that matched; `not` contributes no reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.segment.compile import (
    HIERARCHY,
    LOCATION,
    closure_level_statement,
    count_statement,
    entities_by_qid_statement,
    entity_labels_statement,
    leaf_statement,
    universe_statement,
    unpack_hit,
)
from engine.segment.model import MAX_DEPTH, EntityMatch, Leaf, Node, SegmentDefinition
from engine.store import GraphStore, StoreError

RESTRICT_LIMIT = 20_000  # above this many candidates an open scan beats shipping the id list
CHUNK = 5_000
MAX_FRAGMENTS = 3
CYPHER_TIMEOUT_MS = 120_000


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


@dataclass
class Selection:
    """Entity keys a condition accepts, and for each the requested ancestor it was reached through."""

    keys: list[str]
    via: dict[str, str]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Evaluator:
    def __init__(self, store: GraphStore, definition: SegmentDefinition, now: datetime) -> None:
        self.store = store
        self.definition = definition
        self.now = now
        self._labels: dict[str, tuple[str | None, str]] = {}
        self._selections: dict[str, Selection] = {}

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

    def _run(self, leaf: Leaf, selection: Selection | None, candidates: set[str] | None) -> list[list[Any]]:
        restricted = candidates is not None and len(candidates) <= RESTRICT_LIMIT
        stmt = leaf_statement(
            leaf, keyed=selection is not None, restricted=restricted, now=self.now,
            min_confidence=self.definition.min_confidence,
        )
        params = dict(stmt.params)
        if selection is not None:
            params["keys"] = selection.keys
        timeout = CYPHER_TIMEOUT_MS if leaf.kind == "cypher" else None
        try:
            if restricted and leaf.kind != "cypher":
                rows: list[list[Any]] = []
                for chunk in _chunks(sorted(candidates or ()), CHUNK):
                    rows += self.store.ro_query(stmt.cypher, {**params, "uids": chunk}, timeout).rows
                return rows
            result = self.store.ro_query(stmt.cypher, params, timeout)
        except StoreError as exc:
            raise SegmentRunError(f"{leaf.path or 'cypher'}: {exc}") from exc
        if leaf.kind == "cypher":
            return self._cypher_rows(leaf, result.columns, result.rows, candidates)
        rows = result.rows
        if candidates is not None:
            rows = [r for r in rows if r[0] in candidates]
        return rows

    @staticmethod
    def _cypher_rows(
        leaf: Leaf, columns: list[str], rows: list[list[Any]], candidates: set[str] | None
    ) -> list[list[Any]]:
        if "user_id" not in columns:
            raise SegmentRunError(f"{leaf.path or 'cypher'}: the statement must return a column named user_id")
        ui = columns.index("user_id")
        ri = columns.index("reason") if "reason" in columns else None
        ci = columns.index("confidence") if "confidence" in columns else None
        out = []
        for r in rows:
            uid = r[ui]
            if uid is None or (candidates is not None and str(uid) not in candidates):
                continue
            conf = r[ci] if ci is not None and isinstance(r[ci], (int, float)) else 1.0
            out.append([str(uid), r[ri] if ri is not None else None, float(conf)])
        return out

    def estimate(self, node: Node) -> float:
        """Users a leaf would match, counted in the database (no rows shipped); inf if unknown."""
        leaf = node.leaf
        if leaf is None or leaf.kind == "cypher":
            return float("inf")
        match = leaf.fact or leaf.behaviour or (leaf.sentiment.toward if leaf.sentiment else None)
        selection = self.select(match) if match is not None else None
        if leaf.kind == "literal" and leaf.literal is not None:
            kind = _literal_kind(leaf.predicate or "")
            selection = Selection(keys=[f"{kind}:{v}" for v in leaf.literal.value], via={})
        if selection is not None and not selection.keys:
            return 0.0
        stmt = count_statement(leaf_statement(leaf, keyed=selection is not None, restricted=False, now=self.now,
                                              min_confidence=self.definition.min_confidence))
        params = {**stmt.params, **({"keys": selection.keys} if selection is not None else {})}
        return float(self.store.ro_query(stmt.cypher, params).scalar() or 0)

    def leaf_hits(self, leaf: Leaf, candidates: set[str] | None) -> dict[str, Hit]:
        if candidates is not None and not candidates:
            return {}
        match = leaf.fact or leaf.behaviour or (leaf.sentiment.toward if leaf.sentiment else None)
        selection = self.select(match) if match is not None else None
        if leaf.kind == "literal" and leaf.literal is not None:
            kind = _literal_kind(leaf.predicate or "")
            selection = Selection(keys=[f"{kind}:{v}" for v in leaf.literal.value], via={})
        if selection is not None and not selection.keys:
            return {}
        rows = self._run(leaf, selection, candidates)
        via = selection.via if selection else {}
        return self._hits(leaf, rows, via)

    def _hits(self, leaf: Leaf, rows: list[list[Any]], via: dict[str, str]) -> dict[str, Hit]:
        out: dict[str, Hit] = {}
        pred = leaf.predicate or ""
        if leaf.kind == "fact":
            unpacked = [(uid, conf, [unpack_hit(h) for h in hits]) for uid, conf, hits in rows]
            self.labels({k for r in unpacked for k, _ in r[2]} | set(via.values()))
            for uid, conf, hits in unpacked:
                out[uid] = Hit(float(conf), [Fragment(f"{pred} {self._entity_text(k, via)}", d) for k, d in hits])
        elif leaf.kind == "literal":
            for uid, conf, hits in rows:
                frags = [Fragment(f"{pred} {k.split(':', 1)[-1]}", d) for k, d in map(unpack_hit, hits)]
                out[uid] = Hit(float(conf), frags)
        elif leaf.kind == "behaviour":
            self.labels({k for r in rows for k in r[3]} | set(via.values()))
            for uid, n, amount, keys in rows:
                items = ", ".join(self._entity_text(k, via) for k in keys)
                money = f", amount {amount:.2f}" if leaf.behaviour and leaf.behaviour.amount else ""
                out[uid] = Hit(1.0, [Fragment(f"{pred} ×{_num(n)}{money}{_window_text(leaf)}: {items}")])
        elif leaf.kind == "sentiment" and leaf.sentiment is not None:
            labels = "/".join(leaf.sentiment.label)
            toward = " toward matching entities" if leaf.sentiment.toward else ""
            for uid, n, docs in rows:
                out[uid] = Hit(1.0, [Fragment(f"{labels} sentiment ×{n}{toward}{_window_text(leaf)}", tuple(docs))])
        elif leaf.kind == "rfm":
            for uid, freq, monetary, last in rows:
                out[uid] = Hit(1.0, [Fragment(
                    f"RFM frequency {_num(freq)}, monetary {float(monetary or 0):.2f}, last purchase {last}"
                )])
        elif leaf.kind == "cypher":
            for uid, reason, conf in rows:
                out[uid] = Hit(conf, [Fragment(str(reason) if reason else "cypher segment")])
        return out

    # -- set algebra -------------------------------------------------------------------------

    def universe(self, candidates: set[str] | None) -> dict[str, Hit]:
        if candidates is not None and len(candidates) <= RESTRICT_LIMIT:
            found: set[str] = set()
            for chunk in _chunks(sorted(candidates), CHUNK):
                rows = self.store.ro_query(universe_statement(restricted=True), {"uids": chunk}).rows
                found.update(r[0] for r in rows)
        else:
            found = {r[0] for r in self.store.ro_query(universe_statement(restricted=False)).rows}
            if candidates is not None:
                found &= candidates
        return {u: Hit(1.0) for u in found}

    def evaluate(self, node: Node, candidates: set[str] | None) -> dict[str, Hit]:
        if node.op == "leaf" and node.leaf is not None:
            return self.leaf_hits(node.leaf, candidates)
        if node.op == "not":
            excluded = self.evaluate(node.children[0], candidates)
            return {u: h for u, h in self.universe(candidates).items() if u not in excluded}
        if node.op == "any":
            out: dict[str, Hit] = {}
            for child in node.children:
                for uid, hit in self.evaluate(child, candidates).items():
                    prev = out.get(uid)
                    out[uid] = hit if prev is None else Hit(
                        max(prev.confidence, hit.confidence), prev.fragments + hit.fragments
                    )
            return out
        return self._all(node, candidates)

    def _all(self, node: Node, candidates: set[str] | None) -> dict[str, Hit]:
        positive = [c for c in node.children if c.op != "not"]
        negative = [c.children[0] for c in node.children if c.op == "not"]
        if len(positive) > 1 and (candidates is None or len(candidates) > RESTRICT_LIMIT):
            # most selective first: the rest then runs restricted to few candidates
            order = {id(c): self.estimate(c) for c in positive}
            positive.sort(key=lambda c: order[id(c)])
        current: dict[str, Hit] | None = None
        scope = candidates
        for child in positive:
            hits = self.evaluate(child, scope)
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
            current = self.universe(candidates)
        for child in negative:
            if not current:
                break
            excluded = self.evaluate(child, set(current))
            current = {u: h for u, h in current.items() if u not in excluded}
        return current


def _num(x: Any) -> str:
    """Counts come back as floats from sum(); print 3 rather than 3.0."""
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
    store: GraphStore, definition: SegmentDefinition, *, now: datetime, candidates: set[str] | None = None
) -> dict[str, Hit]:
    """Members (user id → Hit) of a definition, over everyone or only the given candidates."""
    hits = Evaluator(store, definition, now).evaluate(definition.root, candidates)
    for hit in hits.values():
        del hit.fragments[MAX_FRAGMENTS * 2 :]  # keep reasons short; the graph has the rest
    return hits
