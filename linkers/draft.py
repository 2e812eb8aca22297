"""Mutable accumulator every KB input (shared files, JSON dump, N-Triples, SPARQL harvest) writes into,
and its conversion into the compact columns of `linkers.kb`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from linkers import pinyin
from linkers.kb import ACRONYM_BIT, DOMAINS, ISA_SOURCES, LABEL_BIT, LANG_BITS, RELATIONS, KnowledgeBase, _Csr
from linkers.normalise import fold_plural, has_cjk, surface_key, to_simplified

QID = re.compile(r"^Q[1-9][0-9]*$")
LANGS = ("en", "zh", "es")
# Labels offered with a priority up to this come from curated label sources (Wikidata dump, CoDEx,
# FB15k, NSI): they win outright. Weaker offers compete with aliases on how many inputs agree.
STRONG_LABEL = 3
_SOURCE_BITS: dict[str, int] = {}
# Aliases longer than this are sentences, not names.
MAX_ALIAS_CHARS = 100

# Roots of the coarse domains (Wikidata QIDs). Kept here, next to the builder, because they only
# label entities for `kb info` and soft preferences; hard range checks use graph_schema.
DOMAIN_ROOTS: dict[str, tuple[str, ...]] = {
    "place": (
        "Q2221906",
        "Q17334923",
        "Q486972",
        "Q515",
        "Q6256",
        "Q3624078",
        "Q56061",
        "Q82794",
        "Q10864048",
        "Q618123",
        "Q1549591",
        "Q5119",
    ),
    "occupation": ("Q12737077", "Q28640", "Q4164871", "Q192581"),
    "organisation": ("Q43229", "Q4830453", "Q783794", "Q891723", "Q6881511", "Q2385804"),
    "product": ("Q2424752", "Q431289", "Q167270", "Q7397", "Q22645", "Q17517", "Q68", "Q1420", "Q11460"),
    "food": ("Q2095", "Q1364", "Q11004", "Q10990", "Q40050", "Q746549", "Q25403900", "Q3314483"),
    "sport": ("Q349", "Q31629"),
    "animal": ("Q729", "Q39201", "Q622852"),
    "language": ("Q34770", "Q315", "Q33742", "Q20162172", "Q1288568"),
    "person": ("Q5", "Q215627"),
    "music": ("Q188451", "Q638"),
    "taxon": ("Q16521",),
    "drink": ("Q40050",),
    "hobby": ("Q47728", "Q184872", "Q11410", "Q131436"),
    "instrument": ("Q34379",),
    "vehicle": ("Q42889", "Q1420", "Q11442", "Q34493"),
    "device": ("Q1183543", "Q212920", "Q68", "Q17517", "Q3962", "Q3966"),
    "brand": ("Q431289", "Q167270"),
    "family": ("Q8436", "Q7560", "Q7565", "Q7566"),
}


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def fold_key(key: str) -> str:
    """Looser key for the second lookup: no diacritics, English plural folded."""
    return fold_plural(strip_accents(key))


@dataclass(slots=True)
class Draft:
    labels: dict[str, tuple[int, str]] = field(default_factory=dict)
    # lang -> alias -> bit set of the inputs that gave it (more inputs = better display label)
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)
    description: tuple[int, str] | None = None
    p31: dict[str, int] = field(default_factory=dict)
    isa: dict[str, int] = field(default_factory=dict)
    located: set[str] = field(default_factory=set)
    manufacturer: set[str] = field(default_factory=set)
    mentions: float = 0.0  # fact / sitelink counts: popularity evidence
    population: int = 0
    sources: set[str] = field(default_factory=set)


class KBDraft:
    """Entities keyed by QID; every input adds labels, aliases, edges and popularity evidence."""

    def __init__(self) -> None:
        self.entities: dict[str, Draft] = {}
        self.inputs: list[dict[str, object]] = []

    def get(self, qid: str) -> Draft | None:
        if not QID.match(qid or ""):
            return None
        d = self.entities.get(qid)
        if d is None:
            d = self.entities[qid] = Draft()
        return d

    def label(self, qid: str, lang: str, text: str | None, priority: int, source: str) -> None:
        """Offer a display label; the lowest priority number wins. Labels are also aliases."""
        text = (text or "").strip()
        d = self.get(qid)
        if d is None or not text or len(text) > MAX_ALIAS_CHARS:
            return
        lang = _lang(lang)
        if lang in LANGS:
            if lang == "zh":
                text = to_simplified(text)  # display Simplified; Traditional stays an alias
            current = d.labels.get(lang)
            if current is None or priority < current[0]:
                d.labels[lang] = (priority, text)
        self.alias(qid, lang, text, source)

    def alias(self, qid: str, lang: str, text: str | None, source: str) -> None:
        text = (text or "").strip()
        d = self.get(qid)
        if d is None or not text or len(text) > MAX_ALIAS_CHARS:
            return
        lang = _lang(lang)
        if lang == "und" and has_cjk(text):
            lang = "zh"
        bit = _SOURCE_BITS.setdefault(source, 1 << len(_SOURCE_BITS))
        names = d.aliases.setdefault(lang, {})
        names[text] = names.get(text, 0) | bit
        d.sources.add(source)

    def describe(self, qid: str, text: str | None, priority: int) -> None:
        text = (text or "").strip()
        d = self.get(qid)
        if d is not None and text and (d.description is None or priority < d.description[0]):
            d.description = (priority, text[:300])

    def edge(self, rel: str, child: str, parent: str, source: str = "wikidata") -> None:
        if child == parent or not QID.match(parent or ""):
            return
        d = self.get(child)
        if d is None:
            return
        self.get(parent)
        if rel in ("p31", "isa"):
            code = ISA_SOURCES.index(source)
            table = d.p31 if rel == "p31" else d.isa
            table[parent] = min(code, table.get(parent, code))
        elif rel == "located":
            d.located.add(parent)
        elif rel == "manufacturer":
            d.manufacturer.add(parent)
        else:
            raise ValueError(f"unknown relation {rel}")

    def evidence(self, qid: str, mentions: float = 0.0, population: int = 0) -> None:
        d = self.get(qid)
        if d is not None:
            d.mentions += mentions
            d.population = max(d.population, population)

    def drop_edges(self, child: str, parents: Iterable[str], sources: set[str]) -> None:
        """Remove non-Wikidata is-a edges (curated exclusions)."""
        d = self.entities.get(child)
        if d is None:
            return
        for p in parents:
            for table in (d.p31, d.isa):
                if p in table and ISA_SOURCES[table[p]] in sources:
                    del table[p]


def _lang(lang: str) -> str:
    lang = (lang or "und").lower()
    if lang.startswith("zh"):
        return "zh"
    if lang.startswith("es"):
        return "es"
    if lang.startswith("en"):
        return "en"
    return "und"


# -- finalisation ----------------------------------------------------------------------------
def finalise(
    draft: KBDraft, meta: dict[str, object], progress: Callable[[str], None] = print
) -> dict[str, object]:
    """Turn the draft into KB columns (see linkers.kb)."""
    qids = sorted(draft.entities, key=lambda q: int(q[1:]))
    index = {q: i for i, q in enumerate(qids)}
    ents = [draft.entities[q] for q in qids]
    progress(f"{len(qids):,} entities")

    def label(d: Draft, lang: str) -> str:
        hit = d.labels.get(lang)
        if hit and hit[0] <= STRONG_LABEL:
            return hit[1]
        return _consensus_label(d.aliases.get(lang, {}), lang, hit[1] if hit else None)

    labels = {lang: [label(d, lang) for d in ents] for lang in LANGS}
    rel_rows: dict[str, list[list[tuple[int, int]]]] = {r: [] for r in RELATIONS}
    in_refs = [0] * len(qids)
    for d in ents:
        rows = {
            "p31": sorted((index[p], s) for p, s in d.p31.items()),
            "isa": sorted((index[p], s) for p, s in d.isa.items()),
            "located": sorted((index[p], 0) for p in d.located),
            "manufacturer": sorted((index[p], 0) for p in d.manufacturer),
        }
        for rel, row in rows.items():
            rel_rows[rel].append(row)
            for target, _ in row:
                in_refs[target] += 1
    progress("edges indexed")

    postings: dict[str, dict[int, int]] = {}
    for i, d in enumerate(ents):
        chosen = {surface_key(labels[lang][i]) for lang in LANGS if labels[lang][i]}
        spelled_out: set[str] = set()  # keys this entity also has as a non-acronym spelling
        for lang, names in d.aliases.items():
            bit = LANG_BITS.get(lang, LANG_BITS["und"])
            for name in names:
                key = surface_key(name)
                if not key:
                    continue
                flags = bit | (LABEL_BIT if key in chosen else 0)
                if _is_acronym(name):
                    flags |= ACRONYM_BIT
                else:
                    spelled_out.add(key)
                slot = postings.setdefault(key, {})
                slot[i] = slot.get(i, 0) | flags
        for key in spelled_out:
            postings[key][i] &= ~ACRONYM_BIT
    alias_keys = sorted(postings)
    post_rows = [sorted(postings[k].items()) for k in alias_keys]
    fold_map: dict[str, list[int]] = {}
    for k, key in enumerate(alias_keys):
        folded = fold_key(key)
        if folded != key:
            fold_map.setdefault(folded, []).append(k)
    fold_keys = sorted(fold_map)
    fold_rows = [[(k, 0) for k in fold_map[f]] for f in fold_keys]
    progress(f"{len(alias_keys):,} alias keys, {len(fold_keys):,} folded keys")
    readings, sounds = pinyin.build_index(alias_keys)
    sound_keys = sorted(sounds)
    progress(f"{len(sound_keys):,} Chinese sound keys over {len(readings):,} characters")

    prior = array("f", (_prior(d, in_refs[i]) for i, d in enumerate(ents)))
    cols: dict[str, object] = {
        "meta": meta,
        "qids": qids,
        "label_en": labels["en"],
        "label_zh": labels["zh"],
        "label_es": labels["es"],
        "description": [d.description[1] if d.description else "" for d in ents],
        "prior": prior.tobytes(),
        "domains": array("i", [0] * len(qids)).tobytes(),
        "rel": {r: _Csr.from_rows(rel_rows[r]).to_dict() for r in RELATIONS},
        "alias_keys": alias_keys,
        "postings": _Csr.from_rows(post_rows).to_dict(),
        "fold_keys": fold_keys,
        "fold_postings": _Csr.from_rows(fold_rows).to_dict(),
        "readings": readings,
        "sound_keys": sound_keys,
        "sound_postings": _Csr.from_rows([[(k, 0) for k in sounds[s]] for s in sound_keys]).to_dict(),
    }
    cols["phonetic"] = ""
    kb = KnowledgeBase(cols)
    kb.domains = _domains(kb)
    cols["domains"] = kb.domains.tobytes()
    progress("domains assigned")
    names = (1 << DOMAINS.index("person")) | (1 << DOMAINS.index("place"))
    cols["phonetic"] = pinyin.phonetic_characters(
        (key, any(kb.domains[kb.post.targets[j]] & names for j in kb.post.row(k))) for k, key in enumerate(alias_keys)
    )
    progress(f"{len(cols['phonetic']):,} phonetic characters")
    return cols


def _is_acronym(name: str) -> bool:
    """'CAR', 'PET', 'U.S.': all capitals. A lower-case mention rarely means an acronym-only alias."""
    letters = [c for c in name if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters) and name.upper() == name


def _consensus_label(names: dict[str, int], lang: str, offered: str | None) -> str:
    """The alias most inputs agree on (Traditional and Simplified spellings pooled for zh)."""
    votes: dict[str, int] = {}
    for name, bits in names.items():
        shown = to_simplified(name) if lang == "zh" else name
        votes[shown] = votes.get(shown, 0) | bits
    if not votes:
        return offered or ""

    def rank(name: str) -> tuple[int, int, int, int]:
        too_short = int(lang == "zh" and len(name) < 2)
        return (-bin(votes[name]).count("1"), int(name != offered), too_short, len(name))

    return min(votes, key=lambda n: (*rank(n), n))


def _prior(d: Draft, in_refs: int) -> float:
    """Popularity in [0, 1] from what the inputs tell: fact/sitelink counts, aliases in many
    languages, how many entities point at it, population. Weights are round numbers, not tuned."""
    n_alias = sum(len(v) for v in d.aliases.values())
    langs = sum(1 for lang in LANGS if d.aliases.get(lang))
    score = (
        0.30 * min(1.0, math.log1p(d.mentions) / math.log1p(5000))
        + 0.20 * min(1.0, math.log1p(n_alias) / math.log1p(30))
        + 0.15 * langs / 3
        + 0.15 * min(1.0, math.log1p(in_refs) / math.log1p(2000))
        + 0.10 * min(1.0, math.log10(d.population + 1) / 7)
        + 0.10 * min(1.0, len(d.sources) / 4)
    )
    return round(min(1.0, score), 4)


def _domains(kb: KnowledgeBase) -> array:
    roots = {
        b: {kb.index[q] for q in qs if q in kb.index}
        for b, name in enumerate(DOMAINS)
        for qs in [DOMAIN_ROOTS[name]]
    }
    out = array("i", [0] * len(kb))
    for i in range(len(kb)):
        anc = kb.ancestors(i, max_depth=6) | {i}
        bits = 0
        for b, members in roots.items():
            if members & anc:
                bits |= 1 << b
        out[i] = bits
    kb._closure_cache.clear()
    return out
