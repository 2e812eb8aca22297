"""Wikidata grounding: a compact offline KB (linkers/data/kb.bin), candidates, predicate-aware
disambiguation, NIL keys and the Wikidata context closure written with each linked entity.

The KB loads lazily once per process; `use_kb(path)` points the process at another KB file.
"""

from __future__ import annotations

from collections.abc import Iterable

from linkers import link as _link
from linkers.kb import KBError, get_kb, use_kb
from linkers.link import InvalidMentionError
from linkers.normalise import nil_key, normalise
from linkers.types import ContextEdge, LinkedEntity

__all__ = [
    "ContextEdge",
    "InvalidMentionError",
    "KBError",
    "LinkedEntity",
    "context_edges",
    "describe",
    "get_kb",
    "link_object",
    "nil_key",
    "normalise",
    "use_kb",
]


def link_object(
    mention: str, *, predicate: str | None = None, lang: str | None = None, context: str | None = None
) -> LinkedEntity:
    """Ground a fact object: key = QID when linked, else `nil:<nil_type>:<normalised name>`.

    Raises InvalidMentionError for an empty/blank mention, UnknownPredicateError for an unknown
    predicate and KBError when the KB file is missing or corrupt.
    """
    return _link.link(get_kb(), mention, predicate=predicate, lang=lang, context=context)


def describe(qid: str) -> LinkedEntity | None:
    """Labels, description and types of a QID that arrives already linked (None if not in the KB)."""
    return _link.describe(get_kb(), qid)


def context_edges(qids: Iterable[str]) -> list[ContextEdge]:
    """Ancestor closure (INSTANCE_OF, SUBCLASS_OF, LOCATED_IN, MANUFACTURER) of the given entities."""
    return _link.context_edges(get_kb(), qids)
