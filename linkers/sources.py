"""Readers for the Wikidata-derived files in ../shared/data/wikidata (see its README) and for the
hand-curated supplement in linkers/curated/. Each reader adds to a KBDraft and returns a row count.

Label priorities (lower wins): Wikidata dump/SPARQL 0, CoDEx 1, FB15k/NSI-2021 2, X-FACTR 3,
WordNet/DBpedia/geo 4, mLAMA 5, Open Food Facts 6.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from rapidfuzz import fuzz

from linkers.draft import QID, KBDraft

CURATED_DIR = Path(__file__).resolve().parent / "curated"


def _jsonl(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _tsv(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        yield from csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")


def read_codex_types(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        for lang in ("en", "zh", "es"):
            kb.label(row["qid"], lang, row.get(f"label_{lang}"), 1, "codex")
        kb.describe(row["qid"], row.get("description_en"), 1)
        n += 1
    return n


def read_codex_entity_types(kb: KBDraft, path: Path) -> int:
    # CoDEx entity types are the entities' Wikidata P31 values.
    n = 0
    for row in _tsv(path):
        kb.edge("p31", row["entity_qid"], row["type_qid"], "wikidata")
        kb.label(row["type_qid"], "en", row.get("type_label_en"), 1, "codex")
        n += 1
    return n


def read_xfactr(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        qid = row["qid"]
        kb.label(qid, "en", row.get("label_en_from_facts"), 3, "xfactr")
        for lang, names in (row.get("aliases") or {}).items():
            for name in names:
                kb.alias(qid, lang, name, "xfactr")
        for type_qid, type_label in row.get("instance_of") or []:
            kb.edge("p31", qid, type_qid, "wikidata")
            kb.label(type_qid, "en", type_label, 3, "xfactr")
        n += 1
    return n


_MLAMA_EDGES = {
    "P31": "p31",
    "P279": "isa",
    "P131": "located",
    "P17": "located",
    "P30": "located",
    "P176": "manufacturer",
}


# Type closure from statements: the value of an occupation statement (P106) is an occupation whatever
# its own P31/P279 chain says, a value of P1303 is a musical instrument, and so on. Each typed value
# gets a P31 edge with source "facts" to the class the property's values belong to. Place properties
# (P19, P27 …) are left out: their values are places already, and typing the rest (Chelsea the
# district as a birthplace) moved named-entity links (Chelsea F.C.) to the place.
FACT_VALUE_CLASSES: dict[str, str] = {
    "P106": "Q12737077",  # occupation → occupation
    "P1303": "Q34379",  # instrument → musical instrument
    "P103": "Q34770",  # native language → language
    "P1412": "Q34770",  # languages spoken, written or signed → language
    "P37": "Q34770",  # official language → language
    "P364": "Q34770",  # original language of film or TV show → language
    "P407": "Q34770",  # language of work or name → language
}


def read_mlama(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        sub, obj, pid = row["sub_uri"], row["obj_uri"], row["predicate_id"]
        kb.label(sub, "en", row.get("sub_label"), 5, "mlama")
        kb.label(obj, "en", row.get("obj_label"), 5, "mlama")
        count = float(row.get("count") or 1)
        kb.evidence(sub, mentions=count)
        kb.evidence(obj, mentions=count)
        rel = _MLAMA_EDGES.get(pid)
        if rel:
            kb.edge(rel, sub, obj, "wikidata")
        value_class = FACT_VALUE_CLASSES.get(pid)
        if value_class and obj != value_class:
            kb.edge("p31", obj, value_class, "facts")
        n += 1
    return n


def read_fb15k(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        kb.label(row["qid"], "en", row.get("label"), 2, "fb15k")
        for alias in row.get("aliases") or []:
            kb.alias(row["qid"], "en", alias, "fb15k")
        kb.describe(row["qid"], row.get("description"), 2)
        n += 1
    return n


# geo_places "kind" → the Wikidata class it stands for (a typing derived from the dataset, kept
# with source "geo"): countries, first-level subdivisions ("state:*") and settlements ("city:*").
_GEO_CLASS = {"country": "Q6256", "state": "Q10864048", "city": "Q486972"}


def read_geo(kb: KBDraft, path: Path) -> int:
    """Countries, states and cities. Rows whose QID disagrees with what the other sources call that
    entity are dropped (the dataset has wrong QIDs on some cities, e.g. Q8686 = Shanghai on 'Shangjie')."""
    rows = list(_jsonl(path))
    names_by_qid: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        names_by_qid[row["qid"]].add((row.get("name") or "").strip().lower())
    countries = {r["iso2"]: r["qid"] for r in rows if r["kind"] == "country" and r.get("qid")}
    states = {
        (r.get("country_code"), r.get("iso2")): r["qid"]
        for r in rows
        if r["kind"].startswith("state") and r.get("qid")
    }
    n = 0
    for row in rows:
        qid, name = row.get("qid"), (row.get("name") or "").strip()
        if not qid or not QID.match(qid) or not _geo_row_agrees(kb, qid, row, names_by_qid[qid]):
            continue
        kind = row["kind"].split(":")[0]
        kb.label(qid, "en", name, 4, "geo")
        kb.label(qid, "zh", row.get("name_zh"), 4, "geo")
        kb.label(qid, "es", row.get("name_es"), 4, "geo")
        kb.alias(qid, "und", row.get("native"), "geo")
        kb.edge("p31", qid, _GEO_CLASS[kind], "geo")
        kb.evidence(qid, population=int(row.get("population") or 0))
        country = countries.get(row.get("country_code") or "")
        if kind == "city":
            state = states.get((row.get("country_code"), row.get("state_code")))
            if state and state != qid:
                kb.edge("located", qid, state)
        if kind != "country" and country and country != qid:
            kb.edge("located", qid, country)
        n += 1
    return n


def _geo_row_agrees(kb: KBDraft, qid: str, row: dict, geo_names: set[str]) -> bool:
    known = kb.entities.get(qid)
    name = (row.get("name") or "").strip().lower()
    if known is None or not known.aliases:
        # Unknown elsewhere: trust it unless the dataset itself gives this QID several names.
        return len(geo_names) == 1 or row["kind"] == "country"
    pool = {a.lower() for names in known.aliases.values() for a in names}
    if row.get("name_zh") and row["name_zh"] in pool:
        return True
    return max((fuzz.partial_ratio(name, a) for a in pool), default=0) >= 85


def read_openfoodfacts(kb: KBDraft, path: Path) -> int:
    rows = list(_jsonl(path))
    by_id = {(r["taxonomy"], r["off_id"]): r.get("wikidata") for r in rows}
    n = 0
    for row in rows:
        qid = row.get("wikidata")
        if not qid:
            continue
        names = row.get("names") or {}
        for lang in ("en", "es", "zh"):
            for i, name in enumerate(names.get(lang) or []):
                if i == 0:
                    kb.label(qid, lang, name, 6, "openfoodfacts")
                else:
                    kb.alias(qid, lang, name, "openfoodfacts")
        parents = [by_id.get((row["taxonomy"], p)) for p in row.get("parents") or []]
        parents = [p for p in parents if p and p != qid]
        # A root of the Open Food Facts taxonomies is a food (the taxonomy only holds foods).
        for parent in parents or ["Q2095"]:
            kb.edge("isa", qid, parent, "openfoodfacts")
        n += 1
    return n


def read_wordnet_dbpedia_labels(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        qid = row["qid"]
        if not QID.match(qid):
            continue  # a few rows hold two QIDs glued together
        for lang in ("en", "zh", "es", "und"):
            for i, item in enumerate(row.get(lang) or []):
                srcs = item.get("sources") or ["wordnet"]
                if i == 0 and lang != "und":
                    kb.label(qid, lang, item["label"], 4, srcs[0])
                else:
                    kb.alias(qid, lang, item["label"], srcs[0])
        n += 1
    return n


def read_isa_edges(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _tsv(path):
        source = "dbpedia" if row["source"].startswith("dbpedia") else "wordnet"
        kb.edge("isa", row["child_qid"], row["parent_qid"], source)
        n += 1
    return n


def read_nsi_brands(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        qid = row["qid"]
        for lang, names in (row.get("names") or {}).items():
            if lang in ("match", "short"):
                lang = "und"
            for name in names:
                kb.alias(qid, lang, name, "nsi")
        # Every Name Suggestion Index brand entry names a brand.
        kb.edge("p31", qid, "Q431289", "nsi")
        n += 1
    return n


def read_nsi_labels(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        kb.label(row["qid"], "en", row.get("label_en"), 2, "nsi")
        kb.describe(row["qid"], row.get("description_en"), 2)
        n += 1
    return n


def read_dbpedia_classes(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        for qid in row.get("wikidata_equivalent") or []:
            for lang in ("en", "es", "zh"):
                for name in (row.get("labels") or {}).get(lang) or []:
                    kb.alias(qid, lang, name, "dbpedia")
            n += 1
    return n


def read_languages(kb: KBDraft, path: Path) -> int:
    n = 0
    for row in _jsonl(path):
        qid = row["qid"]
        kb.label(qid, "en", row.get("label_en"), 4, "languages")
        kb.alias(qid, "und", row.get("native_label"), "languages")
        # The wikidata-lang list holds languages only; ISO codes are not aliases ("it", "es" are words).
        kb.edge("p31", qid, "Q34770", "languages")
        n += 1
    return n


def read_curated(kb: KBDraft, directory: Path = CURATED_DIR) -> int:
    """Hand-curated Wikidata P31/P279 statements (CC0) and exclusions of non-Wikidata is-a edges."""
    n = 0
    isa = directory / "wikidata_isa.tsv"
    if isa.exists():
        for row in _tsv(isa):
            rel = {"P31": "p31", "P279": "isa"}[row["property"]]
            kb.edge(rel, row["child"], row["parent"], "curated")
            n += 1
    excl = directory / "isa_exclusions.tsv"
    if excl.exists():
        for row in _tsv(excl):
            kb.drop_edges(row["child"], [row["parent"]], set(row["sources"].split(",")))
            n += 1
    vocab = directory / "vocabulary.tsv"
    if vocab.exists():
        # Everyday concepts (and spellings) the shared inputs lack: "label" rows set the display
        # label, "alias" rows only add a name the linker can reach the concept by.
        for row in _tsv(vocab):
            if row["kind"] == "label":
                kb.label(row["qid"], row["lang"], row["name"], 0, "curated")
            else:
                kb.alias(row["qid"], row["lang"], row["name"], "curated")
            if row.get("description"):
                kb.describe(row["qid"], row["description"], 0)
            n += 1
    labels = directory / "labels.tsv"
    if labels.exists():
        for row in _tsv(labels):
            kb.label(row["qid"], row["lang"], row["label"], 0, "curated")
            n += 1
    return n


Reader = Callable[[KBDraft, Path], int]

# (file, reader, licence) in reading order: geo comes after the sources it is checked against.
SHARED_INPUTS: tuple[tuple[str, Reader, str], ...] = (
    ("codex_types_en_zh_es.jsonl", read_codex_types, "MIT (CoDEx), Wikidata CC0"),
    ("codex_entity2types.tsv.gz", read_codex_entity_types, "MIT (CoDEx), Wikidata CC0"),
    ("xfactr_entities_aliases_p31.jsonl.gz", read_xfactr, "Wikidata-derived (CC0)"),
    ("mlama_facts.jsonl.gz", read_mlama, "Wikidata-derived (CC0)"),
    ("fb15k237_entity2wikidata.jsonl.gz", read_fb15k, "MIT; Wikidata CC0"),
    ("nsi_wikidata_2021_labels.jsonl.gz", read_nsi_labels, "BSD-3-Clause (NSI); Wikidata CC0"),
    ("nsi_brands.jsonl.gz", read_nsi_brands, "BSD-3-Clause (NSI)"),
    (
        "wordnet_dbpedia_nsi_labels_en_zh_es.jsonl.gz",
        read_wordnet_dbpedia_labels,
        "CC BY 4.0 / OMW / CC BY-SA 3.0 / BSD-3",
    ),
    ("isa_edges_wordnet_dbpedia.tsv", read_isa_edges, "CC BY 4.0 (OEWN) / CC BY-SA 3.0 (DBpedia)"),
    ("dbpedia_ontology_classes.jsonl", read_dbpedia_classes, "CC BY-SA 3.0 (DBpedia)"),
    ("wikidata_languages.jsonl.gz", read_languages, "MIT (wikidata-lang)"),
    ("openfoodfacts_with_wikidata.jsonl.gz", read_openfoodfacts, "ODbL 1.0 (Open Food Facts)"),
    ("geo_places.jsonl.gz", read_geo, "ODbL 1.0 (countries-states-cities-database)"),
)
