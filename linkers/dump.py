"""Readers for full-Wikidata inputs: the official JSON dump and N-Triples (e.g. a SPARQL harvest).

JSON dump: `latest-all.json.gz|bz2` is one JSON array with one entity per line. It is streamed
twice: pass 1 collects P279 edges to find every descendant class of the configured roots, pass 2
keeps the classes themselves and the items that are P31 of one of them.
"""

from __future__ import annotations

import bz2
import gzip
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from linkers.draft import QID, KBDraft

WD_ENTITY = "http://www.wikidata.org/entity/"
WD_DIRECT = "http://www.wikidata.org/prop/direct/"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS_PREF = "http://www.w3.org/2004/02/skos/core#prefLabel"
SKOS_ALT = "http://www.w3.org/2004/02/skos/core#altLabel"
SCHEMA_DESC = "http://schema.org/description"
EDGE_PROPS = {"P31": "p31", "P279": "isa", "P131": "located", "P17": "located", "P176": "manufacturer"}
KEEP_LANGS = ("en", "zh", "es")


def _open(path: Path):  # type: ignore[no-untyped-def]
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_dump(path: Path) -> Iterator[dict]:
    """Entities of a Wikidata JSON dump, one per line, without loading the array."""
    with _open(path) as fh:
        for line in fh:
            line = line.strip().rstrip(",")
            if not line or line in ("[", "]"):
                continue
            entity = json.loads(line)
            if isinstance(entity, dict) and entity.get("type", "item") == "item":
                yield entity


def claim_ids(entity: dict, pid: str) -> list[str]:
    """Item values of one property (best-rank statements are not singled out: all non-deprecated)."""
    out: list[str] = []
    for claim in (entity.get("claims") or {}).get(pid, []):
        if claim.get("rank") == "deprecated":
            continue
        value = ((claim.get("mainsnak") or {}).get("datavalue") or {}).get("value")
        if isinstance(value, dict) and value.get("id"):
            out.append(value["id"])
    return out


def descendants(edges: dict[str, set[str]], roots: Iterable[str]) -> set[str]:
    """Every class that reaches one of the roots through P279 (roots included)."""
    children: dict[str, set[str]] = defaultdict(set)
    for child, parents in edges.items():
        for p in parents:
            children[p].add(child)
    seen = set(roots)
    queue = deque(seen)
    while queue:
        for c in children.get(queue.popleft(), ()):
            if c not in seen:
                seen.add(c)
                queue.append(c)
    return seen


def read_json_dump(kb: KBDraft, path: Path, roots: Iterable[str] = ()) -> int:
    """Add the entities under `roots` (all entities when no root is given). Returns entities kept."""
    roots = list(roots)
    classes: set[str] | None = None
    if roots:
        p279: dict[str, set[str]] = {}
        for entity in iter_dump(path):
            parents = claim_ids(entity, "P279")
            if parents:
                p279[entity["id"]] = set(parents)
        classes = descendants(p279, roots)
    kept = 0
    for entity in iter_dump(path):
        qid = entity.get("id", "")
        if classes is not None and qid not in classes and not classes.intersection(claim_ids(entity, "P31")):
            continue
        add_dump_entity(kb, entity)
        kept += 1
    return kept


def add_dump_entity(kb: KBDraft, entity: dict) -> None:
    qid = entity.get("id", "")
    if not QID.match(qid):
        return
    for lang_code, value in (entity.get("labels") or {}).items():
        if lang_code.split("-")[0] in KEEP_LANGS:
            kb.label(qid, lang_code, value.get("value"), 0, "wikidata-dump")
    for lang_code, values in (entity.get("aliases") or {}).items():
        if lang_code.split("-")[0] in KEEP_LANGS:
            for value in values:
                kb.alias(qid, lang_code, value.get("value"), "wikidata-dump")
    desc = (entity.get("descriptions") or {}).get("en")
    if desc:
        kb.describe(qid, desc.get("value"), 0)
    for pid, rel in EDGE_PROPS.items():
        for target in claim_ids(entity, pid):
            kb.edge(rel, qid, target, "wikidata")
    kb.evidence(qid, mentions=float(len(entity.get("sitelinks") or {})) * 20)


def read_ntriples(kb: KBDraft, path: Path) -> int:
    """Wikidata-shaped N-Triples (wd:/wdt: URIs, rdfs:label/skos:altLabel/schema:description)."""
    import rdflib

    graph = rdflib.Graph()
    graph.parse(str(path), format="nt")
    n = 0
    for s, p, o in graph:
        subject, pred = str(s), str(p)
        if not subject.startswith(WD_ENTITY):
            continue
        qid = subject[len(WD_ENTITY) :]
        lang = getattr(o, "language", None) or "und"
        if pred in (RDFS_LABEL, SKOS_PREF):
            if lang.split("-")[0] in KEEP_LANGS:
                kb.label(qid, lang, str(o), 0, "wikidata-rdf")
        elif pred == SKOS_ALT:
            if lang.split("-")[0] in KEEP_LANGS:
                kb.alias(qid, lang, str(o), "wikidata-rdf")
        elif pred == SCHEMA_DESC:
            if lang.startswith("en"):
                kb.describe(qid, str(o), 0)
        elif (
            pred.startswith(WD_DIRECT)
            and pred[len(WD_DIRECT) :] in EDGE_PROPS
            and str(o).startswith(WD_ENTITY)
        ):
            kb.edge(EDGE_PROPS[pred[len(WD_DIRECT) :]], qid, str(o)[len(WD_ENTITY) :], "wikidata")
        else:
            continue
        n += 1
    return n
