"""The segment language: definitions (YAML / JSON) parsed into a typed condition tree.

Parsing is hand-rolled around small pydantic models so that every error names the offending key
by its path (`where.all[1].lives_in.withn: unknown key`) instead of pydantic's union noise.
Time windows are resolved later, against an injectable `now` (see `Window.bounds`).

A definition is bounded before it is parsed: YAML is read by a safe loader that stops at
MAX_NESTING levels and MAX_ALIASES aliases, and the value tree (aliases counted every time they are
used, measured without expanding them) may hold MAX_VALUES values and MAX_CONDITIONS conditions —
a hostile file (an alias bomb, thousands of clauses, deep nesting) is refused with a message.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.contracts import iso, to_utc
from graph_schema import PREDICATES, LiteralError, Target, normalise_literal

QID = re.compile(r"^Q[1-9][0-9]{0,11}$")
SEGMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_DEPTH = 8  # hierarchy hops followed by descendant_of / within (Wikidata chains are short)
MAX_NESTING = 32  # levels of mappings and lists in a definition
MAX_ALIASES = 100  # YAML aliases (*name) in one definition
MAX_VALUES = 100_000  # values in a definition, an alias counted each time it is used
MAX_CONDITIONS = 200  # conditions (leaves) in one definition; each is a graph lookup per run


class SegmentDefinitionError(ValueError):
    """A definition is invalid; `path` names the offending key."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


# --- leaf bodies (pydantic, extra keys refused) --------------------------------------------


class Range(BaseModel):
    """A numeric comparison: {gte: 2}, {gt: 0, lte: 10}, {eq: 3}."""

    model_config = ConfigDict(extra="forbid")

    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    eq: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Range:
        if all(v is None for v in (self.gte, self.gt, self.lte, self.lt, self.eq)):
            raise ValueError("give at least one of gte, gt, lte, lt, eq")
        if self.eq is not None and any(v is not None for v in (self.gte, self.gt, self.lte, self.lt)):
            raise ValueError("eq cannot be combined with gte/gt/lte/lt")
        lows = [v for v in (self.gte, self.gt) if v is not None]
        highs = [v for v in (self.lte, self.lt) if v is not None]
        if lows and highs:
            lo, hi = max(lows), min(highs)
            strict = (self.gt is not None and self.gt == lo) or (self.lt is not None and self.lt == hi)
            if lo > hi or (lo == hi and strict):
                raise ValueError(f"contradictory range: nothing is ≥{lo} and ≤{hi}")
        return self

    def comparisons(self) -> list[tuple[str, float]]:
        ops = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "="}
        return [(ops[k], v) for k, v in self.model_dump().items() if v is not None]

    def test(self, x: float) -> bool:
        checks = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq}
        return all(checks[op](x, v) for op, v in self.comparisons())


class Window(BaseModel):
    """A time window: `within_days` back from now, or explicit `since` / `until` (ISO-8601)."""

    model_config = ConfigDict(extra="forbid")

    within_days: float | None = None
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("within_days")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"within_days must be > 0 (got {v:g})")
        return v

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return to_utc(v) if v is not None else None

    @model_validator(mode="after")
    def _not_contradictory(self) -> Window:
        if self.within_days is not None and self.since is not None:
            raise ValueError("give within_days or since, not both")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({iso(self.since)}) must be before until ({iso(self.until)})")
        return self

    @property
    def active(self) -> bool:
        return self.within_days is not None or self.since is not None or self.until is not None

    def bounds(self, now: datetime) -> tuple[str | None, str | None]:
        """(since, until) as stored-timestamp strings (until exclusive); None = open end.

        `within_days` means [now − N days, now]: what lies after the injected `now` is not in it.
        """
        since, until = self.since, self.until
        if self.within_days is not None:
            since = to_utc(now) - timedelta(days=self.within_days)
            until = until or to_utc(now) + timedelta(seconds=1)
        if until is not None and since is not None and since >= until:
            raise SegmentDefinitionError("", "time window is empty: since is not before until")
        return (iso(since) if since else None, iso(until) if until else None)


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    return [v] if isinstance(v, str) else v


def _qids(v: list[str]) -> list[str]:
    bad = [q for q in v if not isinstance(q, str) or not QID.match(q)]
    if bad:
        raise ValueError(f"not a Wikidata QID: {bad[0]!r} (Q followed by digits)")
    return v


class EntityMatch(BaseModel):
    """Which entities an entity condition accepts; the given selectors all have to hold."""

    model_config = ConfigDict(extra="forbid")

    qid: list[str] = Field(default_factory=list)
    key: list[str] = Field(default_factory=list)  # NIL entities: "nil:<type>:<name>"
    descendant_of: list[str] = Field(default_factory=list)
    within: list[str] = Field(default_factory=list)

    @field_validator("qid", "key", "descendant_of", "within", mode="before")
    @classmethod
    def _entity_lists(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("qid", "descendant_of", "within")
    @classmethod
    def _entity_qids(cls, v: list[str]) -> list[str]:
        return _qids(v)

    @property
    def any_entity(self) -> bool:
        return not (self.qid or self.key or self.descendant_of or self.within)

    def all_qids(self) -> list[str]:
        return [*self.qid, *self.descendant_of, *self.within]


class FactCond(Window, EntityMatch):
    """likes / lives_in / …: an active fact edge to a matching entity."""

    min_confidence: float | None = Field(default=None, ge=0, le=1)


class LiteralCond(Window):
    """age_band / gender / diet / …: an active fact edge to one of the literal values."""

    value: list[str]
    min_confidence: float | None = Field(default=None, ge=0, le=1)

    @field_validator("value", mode="before")
    @classmethod
    def _values(cls, v: Any) -> Any:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            v = [v]
        return [str(x) for x in v] if isinstance(v, list) else v


class SentimentCond(Window):
    """Documents of the user with one of these sentiment labels, overall or toward entities."""

    label: list[Literal["positive", "negative", "neutral"]]
    toward: EntityMatch | None = None
    count: Range = Field(default_factory=lambda: Range(gte=1))

    @field_validator("label", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        return _as_list(v)


class BehaviourCond(Window, EntityMatch):
    """purchased / viewed: net event count (and amount) over matching items, within the window."""

    count: Range = Field(default_factory=lambda: Range(gte=1))
    amount: Range | None = None


class RfmCond(BaseModel):
    """User-level recency (days since last purchase, at query time), frequency, monetary."""

    model_config = ConfigDict(extra="forbid")

    recency_days: Range | None = None
    frequency: Range | None = None
    monetary: Range | None = None

    @model_validator(mode="after")
    def _something(self) -> RfmCond:
        if self.recency_days is None and self.frequency is None and self.monetary is None:
            raise ValueError("give at least one of recency_days, frequency, monetary")
        return self


# --- the condition tree ---------------------------------------------------------------------


class Leaf(BaseModel):
    """One graph lookup; `path` is where it sits in the definition (for reasons and errors)."""

    kind: Literal["fact", "literal", "sentiment", "behaviour", "rfm", "cypher"]
    path: str
    predicate: str | None = None  # relationship type (graph_schema name) for fact/literal/behaviour
    fact: FactCond | None = None
    literal: LiteralCond | None = None
    sentiment: SentimentCond | None = None
    behaviour: BehaviourCond | None = None
    rfm: RfmCond | None = None
    cypher: str | None = None


class Node(BaseModel):
    op: Literal["all", "any", "not", "leaf"]
    children: list[Node] = Field(default_factory=list)
    leaf: Leaf | None = None

    def leaves(self) -> list[Leaf]:
        if self.leaf is not None:
            return [self.leaf]
        return [lf for c in self.children for lf in c.leaves()]


class SegmentDefinition(BaseModel):
    """A validated definition; `raw` is what the user wrote (stored on the Segment node)."""

    id: str
    name: str
    description: str = ""
    min_confidence: float = 0.0
    root: Node
    raw: dict[str, Any]

    @property
    def definition_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True, ensure_ascii=False, default=str)

    @property
    def definition_hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.definition_json.encode()).hexdigest()


BEHAVIOUR_KEYS = {"purchased": "PURCHASED", "viewed": "VIEWED"}
TOP_KEYS = {"id", "name", "description", "where", "cypher", "min_confidence"}


def condition_keys() -> dict[str, str]:
    """Lower-case condition key → predicate, for every non-behaviour, non-sensitive predicate."""
    return {p.name.lower(): p.name for p in PREDICATES.values() if not p.behaviour and not p.sensitive}


def _pydantic_error(path: str, exc: ValidationError) -> SegmentDefinitionError:
    e = exc.errors()[0]
    loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e["loc"])
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = str(e["msg"]).removeprefix("Value error, ")
    return SegmentDefinitionError(f"{path}{loc}", msg)


def _body(path: str, model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise SegmentDefinitionError(path, f"expected a mapping, got {type(body).__name__}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _pydantic_error(path, exc) from None


def _fact_leaf(path: str, key: str, predicate: str, body: Any) -> Leaf:
    pred = PREDICATES[predicate]
    if pred.target is Target.VALUE:
        if isinstance(body, (str, int, float, list)):
            body = {"value": body}
        cond: LiteralCond = _body(path, LiteralCond, body)
        kind = pred.literal_kind or ""
        values = []
        for i, raw in enumerate(cond.value):
            try:
                values.append(normalise_literal(kind, raw))
            except LiteralError as exc:
                raise SegmentDefinitionError(f"{path}.value[{i}]", str(exc)) from None
        if not values:
            raise SegmentDefinitionError(f"{path}.value", "give at least one value")
        return Leaf(kind="literal", path=path, predicate=predicate,
                    literal=cond.model_copy(update={"value": sorted(set(values))}))
    if isinstance(body, (str, list)):
        body = {"qid": body}
    if body is None:
        body = {}
    return Leaf(kind="fact", path=path, predicate=predicate, fact=_body(path, FactCond, body))


def _leaf(path: str, key: str, body: Any) -> Leaf:
    preds = condition_keys()
    if key in preds:
        return _fact_leaf(path, key, preds[key], body)
    if key in BEHAVIOUR_KEYS:
        if isinstance(body, (str, list)):
            body = {"qid": body}
        cond = _body(path, BehaviourCond, body or {})
        return Leaf(kind="behaviour", path=path, predicate=BEHAVIOUR_KEYS[key], behaviour=cond)
    if key == "sentiment":
        if isinstance(body, str):
            body = {"label": body}
        return Leaf(kind="sentiment", path=path, sentiment=_body(path, SentimentCond, body))
    if key == "rfm":
        return Leaf(kind="rfm", path=path, rfm=_body(path, RfmCond, body))
    if key == "cypher":
        if not isinstance(body, str) or not body.strip():
            raise SegmentDefinitionError(path, "expected a Cypher statement (string)")
        from engine.segment.cypher_guard import check_read_only

        check_read_only(body, path)
        return Leaf(kind="cypher", path=path, cypher=body)
    lower = {p.name.lower() for p in PREDICATES.values() if p.sensitive}
    if key.lower() in lower:
        raise SegmentDefinitionError(path, f"{key} is a special category (GDPR art. 9) and cannot define a segment")
    known = sorted([*preds, *BEHAVIOUR_KEYS, "sentiment", "rfm", "cypher", "all", "any", "not"])
    raise SegmentDefinitionError(path, f"unknown condition {key!r}; known: {', '.join(known)}")


def parse_condition(body: Any, path: str) -> Node:
    if not isinstance(body, dict) or len(body) != 1:
        got = f"keys {sorted(body)}" if isinstance(body, dict) else type(body).__name__
        raise SegmentDefinitionError(path, f"a condition is a mapping with exactly one key (got {got})")
    ((key, inner),) = body.items()
    key = str(key)
    here = f"{path}.{key}" if path else key
    if key in ("all", "any"):
        if not isinstance(inner, list) or not inner:
            raise SegmentDefinitionError(here, "expected a non-empty list of conditions")
        if len(inner) > MAX_CONDITIONS:
            raise SegmentDefinitionError(here, f"{len(inner):,} conditions: at most {MAX_CONDITIONS} in a definition")
        return Node(op=key, children=[parse_condition(c, f"{here}[{i}]") for i, c in enumerate(inner)])
    if key == "not":
        return Node(op="not", children=[parse_condition(inner, here)])
    return Node(op="leaf", leaf=_leaf(here, key, inner))


def measure(raw: Any) -> tuple[int, int]:
    """(values, nesting depth) of a definition with every shared part (a YAML alias) counted each
    time it is used — computed once per distinct part, so an alias bomb is measured without being
    expanded — walked without recursion; refuses a self-referencing alias and the limits above."""
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(raw, False)]
    while stack:
        value, finished = stack.pop()
        if not isinstance(value, dict | list):
            continue
        key = id(value)
        children = [c for c in (value.values() if isinstance(value, dict) else value) if isinstance(c, dict | list)]
        if finished:
            on_path.discard(key)
            size = 1 + len(value) - len(children) + sum(sizes[id(c)][0] for c in children)
            depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
            if size > MAX_VALUES:
                raise SegmentDefinitionError("", f"too large: more than {MAX_VALUES:,} values (aliases expanded)")
            if depth > MAX_NESTING:
                raise SegmentDefinitionError("", f"too deeply nested (more than {MAX_NESTING} levels)")
            sizes[key] = (size, depth)
        elif key in on_path:
            raise SegmentDefinitionError("", "a YAML alias refers to a mapping or list that contains it")
        elif key not in sizes:
            on_path.add(key)
            stack.append((value, True))
            stack.extend((c, False) for c in children)
    return sizes.get(id(raw), (1, 0))


def parse_definition(raw: Any) -> SegmentDefinition:
    """Validate a definition mapping; raises SegmentDefinitionError naming the key."""
    if not isinstance(raw, dict):
        raise SegmentDefinitionError("", "a segment definition is a mapping (YAML or JSON object)")
    measure(raw)
    for key in raw:
        if key not in TOP_KEYS:
            raise SegmentDefinitionError(str(key), f"unknown key; known: {', '.join(sorted(TOP_KEYS))}")
    seg_id = raw.get("id")
    if not isinstance(seg_id, str) or not SEGMENT_ID.match(seg_id):
        raise SegmentDefinitionError("id", "required: 1-128 characters of letters, digits, _ . : -")
    name = raw.get("name", seg_id)
    if not isinstance(name, str) or not name.strip():
        raise SegmentDefinitionError("name", "expected a non-empty string")
    min_conf = raw.get("min_confidence", 0.0)
    if not isinstance(min_conf, (int, float)) or isinstance(min_conf, bool) or not 0 <= min_conf <= 1:
        raise SegmentDefinitionError("min_confidence", "expected a number between 0 and 1")
    if ("where" in raw) == ("cypher" in raw):
        raise SegmentDefinitionError("where", "give exactly one of `where` or `cypher`")
    root = parse_condition(raw["where"], "where") if "where" in raw else parse_condition(
        {"cypher": raw["cypher"]}, ""
    )
    conditions = len(root.leaves())
    if conditions > MAX_CONDITIONS:
        raise SegmentDefinitionError("where", f"{conditions:,} conditions: at most {MAX_CONDITIONS} in a definition")
    return SegmentDefinition(
        id=seg_id,
        name=name.strip(),
        description=str(raw.get("description", "")),
        min_confidence=float(min_conf),
        root=root,
        raw=raw,
    )


def load_definition(source: str | Path | dict[str, Any]) -> SegmentDefinition:
    """A definition from a mapping, a YAML/JSON file path, or YAML/JSON text."""
    if isinstance(source, dict):
        return parse_definition(source)
    text: str
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).is_file()):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SegmentDefinitionError("", f"cannot read {path}: {exc}") from None
    else:
        text = str(source)
    loader = _BoundedLoader(text)  # YAML is a superset of JSON
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise SegmentDefinitionError("", f"not valid YAML/JSON: {exc}") from None
    finally:
        loader.dispose()
    return parse_definition(raw)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopped while composing at MAX_NESTING levels (before the composer's
    own recursion runs out) and at MAX_ALIASES aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise SegmentDefinitionError("", f"more than {MAX_ALIASES} YAML aliases")
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise SegmentDefinitionError("", f"too deeply nested (more than {MAX_NESTING} levels)")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def utc_now() -> datetime:
    return datetime.now(UTC)
