"""Segments: definitions (YAML/JSON) → parameterised Cypher → memberships with reasons.

Public API (used by the CLI and the HTTP API; keep the names stable):
`list_segments`, `get_segment`, `segment_members`, `apply_definition`, `run_segment`,
`SegmentInfo`, `Member`, `RunReport`, `SegmentNotFound`, `SegmentDefinitionError`.
"""

from engine.segment.evaluate import SegmentRunError
from engine.segment.model import SegmentDefinition, SegmentDefinitionError, load_definition, parse_definition
from engine.segment.service import (
    Member,
    RunReport,
    SegmentInfo,
    SegmentNotFound,
    apply_definition,
    delete_segment,
    get_segment,
    list_segments,
    refresh_users,
    run_all,
    run_segment,
    segment_members,
)

__all__ = [
    "Member",
    "RunReport",
    "SegmentDefinition",
    "SegmentDefinitionError",
    "SegmentInfo",
    "SegmentNotFound",
    "SegmentRunError",
    "apply_definition",
    "delete_segment",
    "get_segment",
    "list_segments",
    "load_definition",
    "parse_definition",
    "refresh_users",
    "run_all",
    "run_segment",
    "segment_members",
]
