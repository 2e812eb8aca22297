"""Persona ontology: predicates, graph model whitelist, consistency rules, DDL, extractor schema."""

from graph_schema.extractor_schema import SENTIMENT_LABELS, extractor_json_schema
from graph_schema.predicates import (
    CONTEXT_RELATIONS,
    DERIVED_CONFLICT_RULES,
    FACT_STATUSES,
    LITERAL_KINDS,
    NODE_LABELS,
    PREDICATES,
    DerivedConflictRule,
    LiteralError,
    Predicate,
    Target,
    UnknownPredicateError,
    checked_identifier,
    fact_predicates,
    get_predicate,
    normalise_literal,
    relationship_types,
)

__all__ = [
    "CONTEXT_RELATIONS",
    "DERIVED_CONFLICT_RULES",
    "FACT_STATUSES",
    "LITERAL_KINDS",
    "NODE_LABELS",
    "PREDICATES",
    "SENTIMENT_LABELS",
    "DerivedConflictRule",
    "LiteralError",
    "Predicate",
    "Target",
    "UnknownPredicateError",
    "checked_identifier",
    "extractor_json_schema",
    "fact_predicates",
    "get_predicate",
    "normalise_literal",
    "relationship_types",
]
