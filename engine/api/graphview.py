"""Turn store results (GraphNode / GraphEdge inside rows) into the explorer's node/edge payload
and into JSON table cells. Backend ids are prefixed because node and edge ids share one namespace
in Cytoscape but not in FalkorDB."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from engine.store import GraphEdge, GraphNode

# Edge properties that only bloat the explorer payload (every supporting doc id).
_HEAVY_EDGE_PROPS = frozenset({"docs"})


class NodeOut(BaseModel):
    id: str
    labels: list[str]
    kind: str
    caption: str
    properties: dict[str, Any] = Field(default_factory=dict)


class EdgeOut(BaseModel):
    id: str
    source: str
    target: str
    type: str
    status: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class GraphPayload(BaseModel):
    nodes: list[NodeOut] = Field(default_factory=list)
    edges: list[EdgeOut] = Field(default_factory=list)


def node_id(raw: str) -> str:
    return f"n{raw}"


def edge_id(raw: str) -> str:
    return f"e{raw}"


def caption(node: GraphNode) -> str:
    p = node.properties
    kind = node.labels[0] if node.labels else ""
    if kind == "Entity":
        return str(p.get("label_en") or p.get("label_zh") or p.get("label_es") or p.get("key") or "?")
    if kind == "Value":
        return f"{p.get('kind', '')}: {p.get('value', '')}".strip(": ")
    if kind == "Segment":
        return str(p.get("name") or p.get("id") or "?")
    if kind == "Conflict":
        return str(p.get("rule") or "conflict")
    return str(p.get("id") or p.get("key") or p.get("name") or node.id)


def node_out(node: GraphNode) -> NodeOut:
    kind = node.labels[0] if node.labels else "Node"
    return NodeOut(id=node_id(node.id), labels=node.labels, kind=kind, caption=caption(node),
                   properties=node.properties)


def edge_out(edge: GraphEdge) -> EdgeOut:
    props = {k: v for k, v in edge.properties.items() if k not in _HEAVY_EDGE_PROPS}
    status = props.get("status")
    return EdgeOut(id=edge_id(edge.id), source=node_id(edge.source), target=node_id(edge.target),
                   type=edge.type, status=str(status) if status is not None else None, properties=props)


def _walk(value: Any) -> Iterable[GraphNode | GraphEdge]:
    if isinstance(value, GraphNode | GraphEdge):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


class GraphBuilder:
    """Collects nodes and edges from any rows, each once; edges whose ends were not returned
    get a stub node so the drawing never references a missing element."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeOut] = {}
        self._edges: dict[str, EdgeOut] = {}

    def add(self, value: Any) -> None:
        for item in _walk(value):
            if isinstance(item, GraphNode):
                self._nodes.setdefault(node_id(item.id), node_out(item))
            else:
                self._edges.setdefault(edge_id(item.id), edge_out(item))

    def add_rows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            for cell in row:
                self.add(cell)

    def payload(self) -> GraphPayload:
        for e in self._edges.values():
            for end in (e.source, e.target):
                if end not in self._nodes:
                    self._nodes[end] = NodeOut(id=end, labels=[], kind="Node", caption=f"#{end[1:]}")
        return GraphPayload(nodes=list(self._nodes.values()), edges=list(self._edges.values()))


def cell(value: Any) -> Any:
    """A result cell as plain JSON: nodes and edges become maps with `_id`/`_labels`/`_type`."""
    if isinstance(value, GraphNode):
        return {"_id": node_id(value.id), "_labels": value.labels, **value.properties}
    if isinstance(value, GraphEdge):
        return {"_id": edge_id(value.id), "_type": value.type, "_source": node_id(value.source),
                "_target": node_id(value.target), **value.properties}
    if isinstance(value, list):
        return [cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): cell(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # points, dates or other driver types: readable, never a serialisation error
