"""Index and constraint DDL per backend: the one place where the dialects differ."""

from __future__ import annotations

# (label, property) pairs the engine looks nodes up by.
INDEXED: tuple[tuple[str, str], ...] = (
    ("User", "id"),
    ("Entity", "key"),
    ("Entity", "qid"),
    ("Value", "key"),
    ("Document", "id"),
    ("Segment", "id"),
    ("Conflict", "id"),
    ("ReviewBatch", "id"),
    ("ReviewItem", "id"),
    ("ReviewItem", "batch_id"),
    ("ReviewItem", "user_id"),
    ("Judgement", "id"),
    ("Judgement", "item_id"),
    ("Judgement", "user_id"),
)
UNIQUE: tuple[tuple[str, str], ...] = (
    ("User", "id"),
    ("Entity", "key"),
    ("Value", "key"),
    ("Document", "id"),
    ("Segment", "id"),
    ("Conflict", "id"),
    ("ReviewBatch", "id"),
    ("ReviewItem", "id"),
    ("Judgement", "id"),
)


def falkordb_ddl() -> list[str]:
    """FalkorDB range indexes (unique constraints there need an index first and GRAPH.CONSTRAINT)."""
    return [f"CREATE INDEX FOR (n:{label}) ON (n.{prop})" for label, prop in INDEXED]


def neo4j_ddl() -> list[str]:
    unique = set(UNIQUE)
    out = [
        f"CREATE CONSTRAINT {label.lower()}_{prop}_unique IF NOT EXISTS "
        f"FOR (n:{label}) REQUIRE n.{prop} IS UNIQUE"
        for label, prop in UNIQUE
    ]
    out += [
        f"CREATE INDEX {label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})"
        for label, prop in INDEXED
        if (label, prop) not in unique
    ]
    return out
