"""Persona-vocabulary check: everyday objects (foods, drinks, sports, hobbies, music, instruments,
occupations, animals, family roles, vehicles, devices, brands, places) linked with the predicate a
persona fact would carry, in en / zh / es.

Rows are built from the Open English WordNet + Open Multilingual Wordnet lemmas of the shared file
`wordnet_dbpedia_nsi_labels_en_zh_es.jsonl.gz` (each lemma carries the QID of its synset): a lemma is
kept when WordNet gives it one QID only in its language, and the QID falls in one of the domains
(through the KB's P31/P279/is-a closure). Concepts are split into a tuning half and a held-out half by
a seeded hash of the QID (all languages of a concept land in the same half); numbers are reported on
the held-out half. Scoring: accuracy (NIL counts as a miss) and the wrong-QID rate separately.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from linkers import InvalidMentionError
from linkers.kb import KnowledgeBase
from linkers.link import link
from linkers.normalise import surface_key

WORDNET_FILE = "wordnet_dbpedia_nsi_labels_en_zh_es.jsonl.gz"
WORDNET_SOURCE = "oewn+omw"
SEED = "persona-vocab-1"
LANGS = ("en", "zh", "es")

# Everyday domain → the predicate a persona fact about such an object carries (None: no predicate).
# Order matters: an entity in several domains is counted in the first one listed.
DOMAIN_PREDICATE: dict[str, str | None] = {
    "occupation": "WORKS_AS",
    "animal": "HAS_PET",
    "instrument": "LIKES",
    "drink": "LIKES",
    "food": "LIKES",
    "sport": "LIKES",
    "hobby": "LIKES",
    "music": "LIKES",
    "vehicle": "OWNS",
    "device": "OWNS",
    "brand": "OWNS",
    "family": None,
    "place": "LIVES_IN",
}


@dataclass(frozen=True)
class VocabRow:
    qid: str
    lang: str
    mention: str
    domain: str
    predicate: str | None
    half: str  # "tune" | "heldout"


def half_of(qid: str, seed: str = SEED) -> str:
    digest = hashlib.sha256(f"{seed}:{qid}".encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "heldout"


def wordnet_lemmas(path: Path) -> dict[str, dict[str, list[str]]]:
    """QID → lang → WordNet/OMW lemmas."""
    out: dict[str, dict[str, list[str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            for lang in LANGS:
                for item in row.get(lang) or []:
                    if WORDNET_SOURCE in (item.get("sources") or []):
                        out.setdefault(row["qid"], {}).setdefault(lang, []).append(item["label"])
    return out


def domain_of(kb: KnowledgeBase, qid: str) -> str | None:
    i = kb.idx(qid)
    if i is None:
        return None
    names = set(kb.domain_names(i))
    for domain in DOMAIN_PREDICATE:
        if domain in names:
            return domain
    return None


def build_rows(kb: KnowledgeBase, wikidata_dir: Path, *, per_lang_cap: int | None = None) -> list[VocabRow]:
    """Unambiguous WordNet lemmas of everyday-domain QIDs, one row per (QID, language, lemma)."""
    path = wikidata_dir / WORDNET_FILE
    if not path.exists():
        raise FileNotFoundError(f"vocabulary source {path} not found (shared/data/wikidata, see its README)")
    lemmas = wordnet_lemmas(path)
    qids_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for qid, by_lang in lemmas.items():
        for lang, names in by_lang.items():
            for name in names:
                qids_of[(lang, surface_key(name))].add(qid)
    rows: list[VocabRow] = []
    for qid in sorted(lemmas, key=lambda q: (len(q), q)):
        domain = domain_of(kb, qid)
        if domain is None:
            continue
        for lang, names in lemmas[qid].items():
            for name in sorted(set(names)):
                key = surface_key(name)
                # Lemmas WordNet itself gives to several synsets have no single gold: left out.
                if not key or len(qids_of[(lang, key)]) > 1 or "_" in name:
                    continue
                rows.append(VocabRow(qid, lang, name, domain, DOMAIN_PREDICATE[domain], half_of(qid)))
    return rows


def score_rows(kb: KnowledgeBase, rows: Iterable[VocabRow]) -> dict[str, object]:
    """Accuracy (NIL = miss), wrong-QID rate and NIL rate per language and per domain."""
    total: Counter[tuple[str, str, str]] = Counter()
    wrong_examples: list[dict[str, object]] = []
    for row in rows:
        try:
            pred = link(kb, row.mention, predicate=row.predicate, lang=row.lang).qid
        except InvalidMentionError:
            pred = None
        outcome = "ok" if pred == row.qid else "nil" if pred is None else "wrong"
        for group in (("lang", row.lang), ("domain", row.domain), ("all", "all")):
            total[(*group, outcome)] += 1
        if outcome == "wrong" and len(wrong_examples) < 400:
            wrong_examples.append({"mention": row.mention, "lang": row.lang, "gold": row.qid, "got": pred,
                                   "domain": row.domain})
    return {
        "by_lang": _rates(total, "lang"),
        "by_domain": _rates(total, "domain"),
        "all": _rates(total, "all").get("all", {}),
        "wrong_examples": wrong_examples,
    }


def _rates(total: Counter, kind: str) -> dict[str, dict[str, float | int]]:
    out: dict[str, dict[str, float | int]] = {}
    for name in sorted({k[1] for k in total if k[0] == kind}):
        ok, nil, wrong = (total[(kind, name, o)] for o in ("ok", "nil", "wrong"))
        n = ok + nil + wrong
        out[name] = {"n": n, "accuracy": round(ok / n, 4), "wrong_qid": round(wrong / n, 4),
                     "nil": round(nil / n, 4)}
    return out


def cross_language(kb: KnowledgeBase, rows: Iterable[VocabRow]) -> dict[str, object]:
    """Concepts with a lemma in en, zh and es: do en / zh-Hans / zh-Hant / es land on one QID?

    Every form is linked with the domain's predicate; a concept counts as same-QID when all four
    forms give the same QID (NIL included: a split is any disagreement)."""
    from opencc_purepy import OpenCC

    s2t = OpenCC("s2t")
    first: dict[str, dict[str, VocabRow]] = defaultdict(dict)
    for row in rows:
        first[row.qid].setdefault(row.lang, row)
    same = n = 0
    splits: list[dict[str, object]] = []
    for qid, by_lang in first.items():
        if len(by_lang) < 3:
            continue
        forms = {
            "en": by_lang["en"].mention,
            "zh-Hans": by_lang["zh"].mention,
            "zh-Hant": s2t.convert(by_lang["zh"].mention),
            "es": by_lang["es"].mention,
        }
        pred = by_lang["en"].predicate
        got: dict[str, str | None] = {}
        for form, text in forms.items():
            try:
                got[form] = link(kb, text, predicate=pred, lang=form[:2]).qid
            except InvalidMentionError:
                got[form] = None
        n += 1
        if len(set(got.values())) == 1 and None not in got.values():
            same += 1
        elif len(set(got.values())) > 1:
            splits.append({"gold": qid, "forms": forms, "got": got})
    return {"concepts": n, "same_qid": round(same / n, 4) if n else float("nan"), "splits": splits}


def run_vocab_eval(kb: KnowledgeBase, wikidata_dir: Path, half: str = "heldout") -> dict[str, object]:
    rows = build_rows(kb, wikidata_dir)
    picked = [r for r in rows if half == "all" or r.half == half]
    result = score_rows(kb, picked)
    result["half"] = half
    result["rows"] = len(picked)
    result["rows_total"] = len(rows)
    result["cross_language"] = cross_language(kb, picked)
    return result
