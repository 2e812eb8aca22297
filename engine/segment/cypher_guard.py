"""Static refusal of writing Cypher in raw Cypher segments.

This is the first of two locks: the statement also runs through the store's read-only path
(`GRAPH.RO_QUERY` / a READ session), so the database refuses whatever slips past this check.
The static check exists to fail at `segment apply` time with a clear message, not at run time.
"""

from __future__ import annotations

import re

# String literals and comments are blanked first so `RETURN 'CREATE'` is not a false alarm.
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_WRITES = re.compile(
    r"\b(CREATE|MERGE|SET|DELETE|DETACH|REMOVE|DROP|LOAD\s+CSV|FOREACH|IN\s+TRANSACTIONS)\b",
    re.IGNORECASE,
)
# Procedures can write (db.create.*, apoc.*, GDS writes); only a few read-only ones are allowed.
_CALL = re.compile(r"\bCALL\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_READ_PROCEDURES = ("db.labels", "db.relationshiptypes", "db.propertykeys", "db.indexes")


class WritingCypherError(ValueError):
    """A raw Cypher segment contains a clause that writes."""


def _strip(cypher: str) -> str:
    return _STRINGS.sub("''", _COMMENTS.sub(" ", cypher))


def check_read_only(cypher: str, path: str = "cypher") -> None:
    """Raise SegmentDefinitionError (path-addressed) when the statement could write."""
    from engine.segment.model import SegmentDefinitionError

    code = _strip(cypher)
    match = _WRITES.search(code)
    if match:
        raise SegmentDefinitionError(
            path, f"refused: a Cypher segment must be read-only, found {match.group(1).upper()}"
        )
    for call in _CALL.finditer(code):
        if call.group(1).lower() not in _READ_PROCEDURES:
            raise SegmentDefinitionError(path, f"refused: procedure {call.group(1)} is not allowed in a segment")
    if ";" in code.strip().rstrip(";"):
        raise SegmentDefinitionError(path, "refused: one statement only")
    if not re.search(r"\buser_id\b", code):
        raise SegmentDefinitionError(path, "the statement must return a column named user_id")
