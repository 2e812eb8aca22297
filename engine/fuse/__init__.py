"""Fusion: the only graph writers of facts and behaviour, grouped by the graph object they write.

    facts.py      users, documents and fact edges (noisy-OR confidence, evidence, time)
    behaviour.py  PURCHASED / VIEWED edges with their events, users' RFM aggregates
    entities.py   Entity / Value nodes and their Wikidata context edges
"""

from engine.fuse.behaviour import (
    RELATION,
    BehaviourReport,
    EntityNodes,
    PreparedEvents,
    known_users_statement,
    new_users_statement,
    prepare_events,
    stored_events_statement,
    write_events,
)
from engine.fuse.entities import chunks, context_edge_statement, write_context, write_entities
from engine.fuse.facts import FuseReport, fact_edge_statements, fuse

__all__ = [
    "RELATION",
    "BehaviourReport",
    "EntityNodes",
    "FuseReport",
    "PreparedEvents",
    "chunks",
    "context_edge_statement",
    "fact_edge_statements",
    "fuse",
    "known_users_statement",
    "new_users_statement",
    "prepare_events",
    "stored_events_statement",
    "write_context",
    "write_entities",
    "write_events",
]
