"""`persona kb harvest`: pull class trees (subclasses, their instances, labels, aliases, descriptions,
P31/P279/P131/P17/P176) from a SPARQL endpoint with SPARQLWrapper and write Wikidata-shaped
N-Triples, which `persona kb build --ntriples FILE` reads.

Works against the Wikidata Query Service and local mirrors (QLever, Virtuoso, Oxigraph) as long as
they use Wikidata's URIs (wd:, wdt:, rdfs:label, skos:altLabel, schema:description).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel
from rdflib import Graph, Literal, URIRef
from SPARQLWrapper import JSON, POST, SPARQLWrapper

from linkers.dump import EDGE_PROPS, WD_DIRECT, WD_ENTITY

QID = re.compile(r"^Q[1-9][0-9]*$")
PREFIXES = f"""PREFIX wd: <{WD_ENTITY}>
PREFIX wdt: <{WD_DIRECT}>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX schema: <http://schema.org/>
"""
LANG_FILTER = 'FILTER(LANG(?v) = "en" || LANG(?v) = "es" || STRSTARTS(LANG(?v), "zh"))'
USER_AGENT = "persona-engine-kb-harvest/0.1 (offline knowledge base builder)"


class HarvestReport(BaseModel):
    endpoint: str
    roots: list[str]
    classes: int
    items: int
    triples: int
    out: Path


class HarvestError(RuntimeError):
    pass


def _client(endpoint: str, timeout: int) -> SPARQLWrapper:
    client = SPARQLWrapper(endpoint, agent=USER_AGENT)
    client.setReturnFormat(JSON)
    client.setMethod(POST)  # long VALUES lists exceed GET URL limits
    client.setTimeout(timeout)
    return client


def _select(client: SPARQLWrapper, query: str) -> list[dict[str, dict[str, str]]]:
    client.setQuery(PREFIXES + query)
    try:
        result = client.query().convert()
    except Exception as exc:  # SPARQLWrapper raises many transport/endpoint types
        raise HarvestError(f"SPARQL query failed at {client.endpoint}: {exc}") from exc
    return result["results"]["bindings"]  # type: ignore[index,call-overload]


def _qid(uri: str) -> str | None:
    if uri.startswith(WD_ENTITY):
        q = uri[len(WD_ENTITY) :]
        return q if QID.match(q) else None
    return None


def class_tree(client: SPARQLWrapper, root: str, limit: int) -> set[str]:
    rows = _select(client, f"SELECT DISTINCT ?c WHERE {{ ?c wdt:P279* wd:{root} }} LIMIT {limit}")
    return {q for r in rows if (q := _qid(r["c"]["value"]))} | {root}


def instances(client: SPARQLWrapper, classes: Iterable[str], limit: int, batch: int = 200) -> set[str]:
    found: set[str] = set()
    ordered = sorted(classes)
    for start in range(0, len(ordered), batch):
        values = " ".join(f"wd:{q}" for q in ordered[start : start + batch])
        rows = _select(
            client, f"SELECT DISTINCT ?i WHERE {{ VALUES ?c {{ {values} }} ?i wdt:P31 ?c }} LIMIT {limit}"
        )
        found |= {q for r in rows if (q := _qid(r["i"]["value"]))}
        if len(found) >= limit:
            break
    return set(sorted(found)[:limit])


def describe_items(client: SPARQLWrapper, items: Iterable[str], graph: Graph, batch: int = 200) -> None:
    """Labels/aliases/descriptions (en, es, zh*) and the KB's edge properties of the items."""
    props = " ".join(f"wdt:{p}" for p in EDGE_PROPS)
    ordered = sorted(items)
    for start in range(0, len(ordered), batch):
        values = " ".join(f"wd:{q}" for q in ordered[start : start + batch])
        text_rows = _select(
            client,
            f"""SELECT ?i ?p ?v WHERE {{ VALUES ?i {{ {values} }}
                VALUES ?p {{ rdfs:label skos:altLabel schema:description }} ?i ?p ?v . {LANG_FILTER} }}""",
        )
        for r in text_rows:
            graph.add(
                (
                    URIRef(r["i"]["value"]),
                    URIRef(r["p"]["value"]),
                    Literal(r["v"]["value"], lang=r["v"].get("xml:lang")),
                )
            )
        edge_rows = _select(
            client, f"SELECT ?i ?p ?o WHERE {{ VALUES ?i {{ {values} }} VALUES ?p {{ {props} }} ?i ?p ?o }}"
        )
        for r in edge_rows:
            if _qid(r["o"]["value"]):
                graph.add((URIRef(r["i"]["value"]), URIRef(r["p"]["value"]), URIRef(r["o"]["value"])))


def harvest(
    endpoint: str,
    roots: list[str],
    out: Path,
    *,
    max_classes: int = 20_000,
    max_items: int = 100_000,
    timeout: int = 120,
    step: Callable[[str], None] = print,
) -> HarvestReport:
    bad = [r for r in roots if not QID.match(r)]
    if not roots or bad:
        raise HarvestError(f"--root needs Wikidata class QIDs like Q349; got {bad or roots}")
    client = _client(endpoint, timeout)
    classes: set[str] = set()
    for root in roots:
        classes |= class_tree(client, root, max_classes)
    step(f"{len(classes):,} classes under {', '.join(roots)}")
    items = instances(client, classes, max_items)
    step(f"{len(items):,} instances")
    graph = Graph()
    describe_items(client, classes | items, graph)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph.serialize(destination=str(out), format="nt", encoding="utf-8")
    step(f"{len(graph):,} triples written to {out}")
    return HarvestReport(
        endpoint=endpoint, roots=roots, classes=len(classes), items=len(items), triples=len(graph), out=out
    )
