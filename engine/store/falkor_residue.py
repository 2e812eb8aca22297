"""Ask a FalkorDB (Redis) server whether anything of a user is still in it.

Forget checks the server itself, not only its files: every key of every logical database (its
name and its value, by type: strings, hashes, lists, sets, sorted sets, streams; queued Celery
messages decoded), and every graph for a node or relationship property holding one of the values.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence

import redis
from pydantic import BaseModel

from engine.store.embedded import databases_with_keys, on_database
from engine.store.falkor import _with_params

# A graph property equal to a needle, or a list property holding one (evidence lists of doc ids).
_GRAPH_NODES = """
MATCH (n)
WITH n, [k IN keys(n) WHERE n[k] IN $needles OR any(x IN CASE WHEN typeOf(n[k]) = 'List' THEN n[k] ELSE [] END
                                                     WHERE x IN $needles)] AS props
WHERE size(props) > 0
RETURN labels(n)[0], props LIMIT 20
"""
_GRAPH_EDGES = """
MATCH ()-[r]->()
WITH r, [k IN keys(r) WHERE r[k] IN $needles OR any(x IN CASE WHEN typeOf(r[k]) = 'List' THEN r[k] ELSE [] END
                                                     WHERE x IN $needles)] AS props
WHERE size(props) > 0
RETURN type(r), props LIMIT 20
"""


class ServerHit(BaseModel):
    db: int
    key: str
    kind: str  # the Redis type, or "graph node" / "graph edge"
    detail: str = ""

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"server db{self.db} {self.kind} {self.key!r}{extra}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _queued_body(value: str) -> str:
    """A kombu message on a Redis list (or in its unacked hash) carries its body base64-encoded."""
    try:
        message = json.loads(value)
    except ValueError:
        return ""
    if isinstance(message, list) and message:
        message = message[0]  # unacked: [message, exchange, routing key]
    if not isinstance(message, dict) or not isinstance(message.get("body"), str):
        return ""
    if (message.get("properties") or {}).get("body_encoding") != "base64":
        return ""
    try:
        return base64.b64decode(message["body"]).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


def _values(client: redis.Redis, key: bytes, kind: str) -> Iterator[str]:
    if kind == "string":
        raw = client.get(key)
        items: list[bytes] = [raw] if raw is not None else []
    elif kind == "hash":
        items = [x for pair in client.hscan_iter(key, count=1000) for x in pair]
    elif kind == "list":
        items = client.lrange(key, 0, -1)
    elif kind == "set":
        items = list(client.sscan_iter(key, count=1000))
    elif kind == "zset":
        items = [member for member, _ in client.zscan_iter(key, count=1000)]
    elif kind == "stream":
        items = [x for _, fields in client.xrange(key, "-", "+") for pair in fields.items() for x in pair]
    else:
        items = []
    for item in items:
        text = _text(item)
        yield text
        body = _queued_body(text)
        if body:
            yield body


def _graph_hits(client: redis.Redis, db: int, key: str, needles: Sequence[str]) -> list[ServerHit]:
    hits = []
    for kind, query in (("graph node", _GRAPH_NODES), ("graph edge", _GRAPH_EDGES)):
        reply = client.execute_command("GRAPH.RO_QUERY", key, query_with_needles(query, needles))
        for label, props in reply[1]:
            hits.append(ServerHit(db=db, key=key, kind=kind, detail=f"{_text(label)} {_text(props)}"))
    return hits


def query_with_needles(query: str, needles: Sequence[str]) -> str:
    return _with_params(query, {"needles": list(needles)})


def server_residue(
    client: redis.Redis, graph: str, contains: Sequence[str], equals: Sequence[str] = ()
) -> list[ServerHit]:
    """Every key (in every database) whose name or value contains one of `contains` as a whole token
    (a user id, a document text) or equals one of `equals` (document ids, often short), and every node or
    relationship of `graph` with a property equal to any of them (or a list property holding one).
    Other graphs on the server are other data sets, with their own forget."""
    wanted, exact = [n for n in contains if n], {n for n in equals if n}
    if not wanted and not exact:
        return []
    # Whole tokens: the id "ann" is not found in "joann"; inside JSON, keys and text it still is.
    alternatives = "|".join(rf"(?<![0-9A-Za-z_]){re.escape(n)}(?![0-9A-Za-z_])" for n in wanted)
    token = re.compile(alternatives) if wanted else None

    def holds(value: str) -> bool:
        return value in exact or (token is not None and token.search(value) is not None)

    hits: list[ServerHit] = []
    for db in databases_with_keys(client):
        per_db = on_database(client, db)
        try:
            for raw_key in per_db.scan_iter(count=1000):
                key, kind = _text(raw_key), _text(per_db.type(raw_key))
                if kind == "graphdata":
                    if key == graph:
                        hits.extend(_graph_hits(per_db, db, key, [*wanted, *sorted(exact)]))
                    continue
                if holds(key):
                    hits.append(ServerHit(db=db, key=key, kind=kind, detail="key name"))
                    continue
                if any(holds(value) for value in _values(per_db, raw_key, kind)):
                    hits.append(ServerHit(db=db, key=key, kind=kind))
        finally:
            if per_db is not client:
                per_db.close()
    return hits
