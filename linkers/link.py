"""Candidate generation and predicate-aware disambiguation over the KB.

Pipeline per mention: normalise → exact alias hits → folded hits (plural, accents) → reduced shapes
→ fuzzy (rapidfuzz, same first character) → hard range filter by the predicate's classes through the
P31/P279/is-a closure → score (match, prior, predicate preference, context) → winner, or a second
round with looser forms (other gender, phrase heads, Chinese transliteration variants) → NIL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from graph_schema import Predicate, get_predicate
from linkers import pinyin
from linkers.context import cued_domains, overlap, words
from linkers.draft import fold_key
from linkers.kb import ACRONYM_BIT, LABEL_BIT, LANG_BITS, TRUSTED_ISA, KnowledgeBase
from linkers.normalise import MAX_KEY_CHARS, has_cjk, nil_key, surface_key
from linkers.shapes import fallback_variants, has_article_or_plural, variants
from linkers.types import ContextEdge, LinkedEntity

# Mentions longer than this are not names (Fact.object is capped at 200 characters): NIL.
MAX_MENTION_CHARS = 200
NIL_THRESHOLD = 0.50  # chosen on whole eval files (persona eval linking), not rows
FUZZY_CUTOFF = 88.0
FUZZY_MIN_CHARS = 4
MAX_CANDIDATES = 30
ISA_DEPTH = 8
LOCATED_DEPTH = 6
MAX_EDGES_PER_ENTITY = 400

# Soft preferences: which coarse domains a predicate's objects usually fall in (by nil_type).
# Hard constraints come from graph_schema range_classes; these only re-rank.
# Everyday objects of likes, dislikes and wishes: what a persona is made of.
EVERYDAY = frozenset(
    {"food", "drink", "sport", "hobby", "music", "instrument", "product", "brand", "animal", "vehicle", "device"}
)
PREFERRED_DOMAINS: dict[str, frozenset[str]] = {
    "product": frozenset({"product", "organisation", "brand", "vehicle", "device"}),
    "place": frozenset({"place"}),
    "occupation": frozenset({"occupation"}),
    "organisation": frozenset({"organisation"}),
    "animal": frozenset({"animal"}),
    "language": frozenset({"language"}),
}
# By predicate name, for predicates whose nil_type says nothing ("thing").
PREDICATE_DOMAINS: dict[str, frozenset[str]] = {
    "LIKES": EVERYDAY,
    "DISLIKES": EVERYDAY,
    "WANTS": EVERYDAY | {"place"},
}
WEIGHTS = {"match": 0.40, "prior": 0.25, "predicate": 0.15, "context": 0.20}
# A candidate with neither a description nor a Wikidata type is a bare alias stub (a label some
# input attached to a QID): its popularity counts for less than a described, typed entity's.
STUB_PRIOR_FACTOR = 0.75
# A hit through a reduced mention shape (article, classifier, verb dropped) is slightly weaker
# than a hit on the mention as written.
SHAPE_FACTOR = 0.96
# Looser forms of the second round (other gender, phrase head) are weaker still.
FALLBACK_FACTOR = 0.92
# A Chinese spelling that sounds like an alias (披萨 ~ 比萨) matches like a near spelling.
PINYIN_MATCH = 0.80
HEAD_WORD_PENALTY = 0.06
# Predicates whose objects are concepts one likes, keeps or owns: there a common noun with an article
# or in plural ("los gatos") means the concept, not a town or a film that carries the same name.
CONCEPT_PREDICATES = frozenset({"LIKES", "DISLIKES", "HAS_PET", "OWNS", "USES"})
NAMED_PENALTY = 0.15
# In the range only through a type inferred from a statement's value (goaltender as someone's P106):
# weaker evidence than a class statement, so a candidate typed by its own P31/P279 wins a tie.
INFERRED_TYPE_PENALTY = 0.05


class InvalidMentionError(ValueError):
    """The mention is empty, blank or made only of control characters/punctuation."""


@dataclass(slots=True)
class Scored:
    entity: int
    score: float
    match: float
    how: str
    range_ok: bool = True
    reason: str = ""  # why it may not win (range, fuzzy outside the predicate's domains)


def _lang_bit(lang: str | None) -> int:
    if not lang:
        return 0
    return LANG_BITS.get(lang.split("-")[0].lower(), 0)


def find_candidates(
    kb: KnowledgeBase, key: str, lang: str | None, *, upper: bool = False
) -> dict[int, tuple[float, str]]:
    """Entity → (match quality in [0,1], how) for a normalised key; `upper`: the mention was all capitals."""
    out: dict[int, tuple[float, str]] = {}
    bit = _lang_bit(lang)

    def add(postings: Iterable, base: float, how: str) -> None:
        for p in postings:
            q = base + (0.08 if p.flags & LABEL_BIT else 0.0) + (0.02 if bit and p.flags & bit else 0.0)
            if p.flags & ACRONYM_BIT and not upper:
                q *= 0.5  # "car" is rarely the Central African Republic
            if q > out.get(p.entity, (0.0, ""))[0]:
                out[p.entity] = (min(q, 1.0), how)

    add(kb.exact(key), 0.90, "exact")
    if not out:
        fk = fold_key(key)
        add(kb.exact(fk), 0.86, "folded")
        add(kb.folded(fk), 0.84, "folded")
    return out


def fuzzy_candidates(kb: KnowledgeBase, key: str, lang: str | None) -> dict[int, tuple[float, str]]:
    """Near spellings, only within the mention's script and language (a Spanish word is not a
    misspelt English place name): alias keys of the same script whose postings carry the
    mention's language bit (or no language), above the similarity floor."""
    out: dict[int, tuple[float, str]] = {}
    if len(key) < FUZZY_MIN_CHARS:
        return out
    bit = _lang_bit(lang)
    cjk = has_cjk(key)
    bucket = kb.fuzzy_bucket(key[0])
    for alias, ratio, _ in process.extract(key, bucket, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=5):
        if has_cjk(alias) != cjk:
            continue
        for p in kb.exact(alias):
            if bit and not p.flags & (bit | LANG_BITS["und"]):
                continue
            q = 0.80 * ratio / 100.0
            if q > out.get(p.entity, (0.0, ""))[0]:
                out[p.entity] = (q, "fuzzy")
    return out


def gather(
    kb: KnowledgeBase, mention: str, key: str, lang: str | None, predicate: str | None, *, upper: bool
) -> dict[int, tuple[float, str]]:
    """Exact/folded hits on the mention as written, then on its reduced shapes (classifier, article,
    plural, verb dropped; a little weaker), then fuzzy on the written form if nothing matched."""
    found = find_candidates(kb, key, lang, upper=upper)
    if lang or not found:
        for form in variants(mention, lang, predicate, bare_plurals=not found):
            vkey = surface_key(form)
            if not vkey or vkey == key:
                continue
            for i, (q, how) in find_candidates(kb, vkey, lang).items():
                q *= SHAPE_FACTOR
                if q > found.get(i, (0.0, ""))[0]:
                    found[i] = (q, f"shape:{how}")
    if not found:
        found = fuzzy_candidates(kb, key, lang)
    return found


def pinyin_candidates(kb: KnowledgeBase, key: str) -> dict[int, tuple[float, str]]:
    """Chinese aliases that sound the same as the key and differ from it only in phonetic characters
    (transliteration variants: 披萨 → 比萨), with the Chinese language bit."""
    out: dict[int, tuple[float, str]] = {}
    if not has_cjk(key):
        return out
    for sound in pinyin.sound_keys(key, kb.readings):
        for alias in kb.sound_bucket(sound):
            if not pinyin.spelled_alike(alias, key, kb.phonetic):
                continue
            for p in kb.exact(alias):
                if p.flags & (LANG_BITS["zh"] | LANG_BITS["und"]) and PINYIN_MATCH > out.get(p.entity, (0.0, ""))[0]:
                    out[p.entity] = (PINYIN_MATCH, "pinyin")
    return out


def gather_fallback(
    kb: KnowledgeBase, mention: str, key: str, lang: str | None, predicate: str | None
) -> dict[int, tuple[float, str]]:
    """Second round: the other gender, the head of a phrase, then Chinese sound-alike spellings of
    the mention and of its reduced shapes."""
    found: dict[int, tuple[float, str]] = {}
    forms = fallback_variants(mention, lang, predicate)
    for form in forms:
        for i, (q, how) in find_candidates(kb, surface_key(form), lang).items():
            q *= FALLBACK_FACTOR
            if q > found.get(i, (0.0, ""))[0]:
                found[i] = (q, f"fallback:{how}")
    if not found and has_cjk(key):
        for form in (key, *variants(mention, lang, predicate), *forms):
            for i, hit in pinyin_candidates(kb, surface_key(form)).items():
                found.setdefault(i, hit)
    return found


def _in_range(kb: KnowledgeBase, i: int, classes: tuple[str, ...], *, stated_only: bool = False) -> bool:
    wanted = kb.class_set(classes)
    return i in wanted or bool(wanted & kb.ancestors(i, max_depth=ISA_DEPTH, stated_only=stated_only))


def _profile(kb: KnowledgeBase, i: int) -> str:
    """Words that describe a candidate: description, type labels, enclosing places."""
    parts = [kb.description[i]]
    parts += [kb.label_en[t] for t in list(kb.neighbours("p31", i))[:5]]
    parts += [kb.label_en[p] for p in kb.places_above(i, max_depth=3)[:4]]
    return " ".join(p for p in parts if p)


_CLAUSE = re.compile(r"[,.;:!?\n，。；：！？、]+")


def mention_window(context: str, mention: str) -> str:
    """The clause(s) of the context holding the mention: cues elsewhere in a document are about
    other things ("moved to Berlin, loving the coffee" says nothing about coffee being a place)."""
    folded = mention.casefold()
    clauses = [c for c in _CLAUSE.split(context) if folded and folded in c.casefold()]
    return " ".join(clauses) if clauses else context


def _context_score(kb: KnowledgeBase, i: int, context: str | None, mention: str = "") -> float:
    if not context:
        return 0.5
    context = mention_window(context, mention)
    cued = cued_domains(context)
    # The mention itself is in the context: it says nothing about which sense is meant.
    ctx_words = words(context) - words(mention)
    ov = overlap(ctx_words, _profile(kb, i))
    if not cued and not ov:
        return 0.5
    domains = set(kb.domain_names(i))
    hit = 1.0 if domains & cued else 0.0
    miss = 0.3 if cued and not hit else 0.0
    return max(0.0, min(1.0, 0.5 + 0.5 * max(hit, ov) - miss))


def rank(
    kb: KnowledgeBase,
    mention: str,
    *,
    predicate: str | None = None,
    lang: str | None = None,
    context: str | None = None,
) -> tuple[list[Scored], str, str]:
    """Scored candidates (best first), the normalised key and the predicate's nil_type."""
    pred = get_predicate(predicate) if predicate else None
    nil_type = pred.nil_type if pred else "thing"
    key = surface_key(mention)
    if not key:
        raise InvalidMentionError(f"mention {mention[:40]!r} has no letters or digits to link")
    letters = [c for c in mention if c.isalpha()]
    upper = len(letters) >= 2 and all(c.isupper() for c in letters)
    name = pred.name if pred else None
    found = gather(kb, mention, key, lang, name, upper=upper)
    scored = score_candidates(kb, found, mention, key, pred, lang, context)
    if needs_second_round(kb, scored, mention, lang, name):
        better = {i: hit for i, hit in gather_fallback(kb, mention, key, lang, name).items()
                  if hit[0] > found.get(i, (0.0, ""))[0]}
        if better:  # usually nothing: then the first round's scores stand (scoring is the costly part)
            found.update(better)
            scored = score_candidates(kb, found, mention, key, pred, lang, context)
    return scored, key, nil_type


def score_candidates(
    kb: KnowledgeBase,
    found: dict[int, tuple[float, str]],
    mention: str,
    key: str,
    pred: Predicate | None,
    lang: str | None,
    context: str | None,
) -> list[Scored]:
    """Score = match, prior, predicate preference and context; range-checked, best first."""
    nil_type = pred.nil_type if pred else "thing"
    preferred = preferred_domains(pred.name if pred else None, nil_type)
    top = sorted(found.items(), key=lambda kv: -kv[1][0] - kb.prior[kv[0]])[:MAX_CANDIDATES]
    named = len(top) > 1 and any(how == "exact" and own_label(kb, i, key, lang) for i, (_, how) in top)
    concept = concept_reading(kb, top, mention, lang, pred.name if pred else None)
    scored: list[Scored] = []
    for i, (match, how) in top:
        if named_by_head(kb, i, key, lang) and named:
            # "engineer" is engineer's own label and only an alias of audio engineer: a compound
            # whose head word is the mention is the narrower concept when the plain one is here.
            match -= HEAD_WORD_PENALTY
        domains = set(kb.domain_names(i))
        pref = 0.5
        if preferred:
            pref = 1.0 if preferred & domains else 0.0
        score = (
            WEIGHTS["match"] * match
            + WEIGHTS["prior"] * effective_prior(kb, i)
            + WEIGHTS["predicate"] * pref
            + WEIGHTS["context"] * _context_score(kb, i, context, mention)
        )
        if concept and how in ("exact", "folded") and outside_everyday(kb, i):
            score -= NAMED_PENALTY
        reason = ""
        if pred and pred.range_classes and not _in_range(kb, i, pred.range_classes):
            reason = f"outside the range of {pred.name} ({', '.join(pred.range_classes[:4])}…)"
        elif how in ("fuzzy", "pinyin") and preferred and not preferred & domains:
            reason = f"near spelling outside the domains {pred.name if pred else nil_type} expects"
        elif how == "pinyin" and not preferred:
            reason = "a sound-alike spelling needs a predicate that expects everyday objects"
        scored.append(Scored(i, round(score, 4), match, how, not reason, reason))
    scored.sort(key=lambda s: (not s.range_ok, -s.score))
    if pred and pred.range_classes:
        demote_inferred_types(kb, scored, pred.range_classes)
    return scored


def demote_inferred_types(kb: KnowledgeBase, scored: list[Scored], classes: tuple[str, ...]) -> None:
    """Close calls only (the second closure walk costs): a leader in the range only through a type
    inferred from a statement value loses INFERRED_TYPE_PENALTY against rivals typed by P31/P279."""
    ok = [s for s in scored if s.range_ok]
    if len(ok) < 2 or ok[0].score - ok[1].score >= INFERRED_TYPE_PENALTY:
        return
    for s in ok:
        if s.score > ok[0].score - INFERRED_TYPE_PENALTY and not _in_range(kb, s.entity, classes, stated_only=True):
            s.score = round(s.score - INFERRED_TYPE_PENALTY, 4)
    scored.sort(key=lambda s: (not s.range_ok, -s.score))


def outside_everyday(kb: KnowledgeBase, i: int) -> bool:
    """Not a food, animal, sport, product …: a place, a work, a person or an untyped name."""
    return not EVERYDAY & set(kb.domain_names(i))


def concept_reading(
    kb: KnowledgeBase, top: list[tuple[int, tuple[float, str]]], mention: str, lang: str | None, predicate: str | None
) -> bool:
    """A concept predicate, a common-noun mention (article or plural) and an everyday concept among
    the candidates reached through a reduced form: the concept is meant, not a same-named place/work."""
    if predicate not in CONCEPT_PREDICATES or not has_article_or_plural(mention, lang):
        return False
    return any(
        how.startswith(("shape:", "fallback:")) and EVERYDAY & set(kb.domain_names(i)) for i, (_, how) in top
    )


def needs_second_round(
    kb: KnowledgeBase, scored: list[Scored], mention: str, lang: str | None, predicate: str | None
) -> bool:
    """No acceptable winner, or a common noun under a concept predicate won by a name outside the
    everyday domains (a town, a film)."""
    best = scored[0] if scored else None
    if best is None or not best.range_ok or best.score < NIL_THRESHOLD:
        return True
    return (
        predicate in CONCEPT_PREDICATES
        and best.how in ("exact", "folded")
        and has_article_or_plural(mention, lang)
        and outside_everyday(kb, best.entity)
    )


def own_label(kb: KnowledgeBase, i: int, key: str, lang: str | None) -> bool:
    code = (lang or "").split("-")[0].lower()
    columns = {"en": (kb.label_en,), "zh": (kb.label_zh,), "es": (kb.label_es,)}.get(
        code, (kb.label_en, kb.label_zh, kb.label_es)
    )
    return any(col[i] and surface_key(col[i]) == key for col in columns)


def named_by_head(kb: KnowledgeBase, i: int, key: str, lang: str | None) -> bool:
    """The entity's label in the mention's language is a compound ending in the mention."""
    code = (lang or "en").split("-")[0].lower()
    label = {"en": kb.label_en, "es": kb.label_es}.get(code)
    if label is None or not label[i]:
        return False
    lk = surface_key(label[i])
    return lk != key and lk.endswith(" " + key)


def preferred_domains(predicate: str | None, nil_type: str) -> frozenset[str]:
    if predicate and predicate in PREDICATE_DOMAINS:
        return PREDICATE_DOMAINS[predicate]
    return PREFERRED_DOMAINS.get(nil_type, frozenset())


def is_stub(kb: KnowledgeBase, i: int) -> bool:
    """No description and no Wikidata/curated type: a bare alias some input attached to a QID."""
    if kb.description[i]:
        return False
    return not any(src in ("wikidata", "curated") for _, src in kb.edges("p31", i))


def effective_prior(kb: KnowledgeBase, i: int) -> float:
    return kb.prior[i] * (STUB_PRIOR_FACTOR if is_stub(kb, i) else 1.0)


def _alternative(kb: KnowledgeBase, s: Scored, why: str = "") -> dict[str, object]:
    out: dict[str, object] = {
        "qid": kb.qids[s.entity],
        "label": kb.label_en[s.entity] or kb.label_zh[s.entity] or kb.label_es[s.entity],
        "score": s.score,
        "match": s.how,
        "range_ok": s.range_ok,
    }
    if why or s.reason:
        out["rejected"] = s.reason or why
    return out


def entity_of(kb: KnowledgeBase, i: int, score: float, alternatives: list[dict[str, object]]) -> LinkedEntity:
    return LinkedEntity(
        key=kb.qids[i],
        qid=kb.qids[i],
        label_en=kb.label_en[i] or None,
        label_zh=kb.label_zh[i] or None,
        label_es=kb.label_es[i] or None,
        description=kb.description[i] or None,
        types=[kb.qids[t] for t in kb.neighbours("p31", i, TRUSTED_ISA)],
        score=score,
        alternatives=alternatives,
    )


def link(
    kb: KnowledgeBase,
    mention: str,
    *,
    predicate: str | None = None,
    lang: str | None = None,
    context: str | None = None,
) -> LinkedEntity:
    if not isinstance(mention, str):
        raise InvalidMentionError(f"mention must be a string, not {type(mention).__name__}")
    nil_type = get_predicate(predicate).nil_type if predicate else "thing"
    if len(mention) > MAX_MENTION_CHARS:
        # Too long to be a name: NIL on a bounded key so repeated junk still merges.
        return LinkedEntity(key=nil_key(mention[: MAX_KEY_CHARS * 2], nil_type), score=0.0)
    scored, key, nil_type = rank(kb, mention, predicate=predicate, lang=lang, context=context)
    best = scored[0] if scored else None
    if best is None or not best.range_ok or best.score < NIL_THRESHOLD:
        # NIL: every candidate is listed with the reason it lost (a NIL key merges later; a wrong
        # QID would put the user in the wrong audience).
        alternatives = [
            _alternative(kb, s, f"score {s.score:.3f} below the NIL threshold {NIL_THRESHOLD}") for s in scored[:6]
        ]
        return LinkedEntity(
            key=nil_key(mention, nil_type),
            label_en=mention.strip() if lang in (None, "en") else None,
            label_zh=mention.strip() if lang and lang.startswith("zh") else None,
            label_es=mention.strip() if lang == "es" else None,
            score=round(1.0 - best.score, 4) if best and best.range_ok else 1.0,
            alternatives=alternatives[:5],
        )
    alternatives = [_alternative(kb, s, f"lower score than {kb.qids[best.entity]}") for s in scored[1:6]]
    return entity_of(kb, best.entity, best.score, alternatives)


def describe(kb: KnowledgeBase, qid: str) -> LinkedEntity | None:
    i = kb.idx(qid.strip().upper()) if isinstance(qid, str) else None
    return None if i is None else entity_of(kb, i, 1.0, [])


class _EdgeSink:
    """Collects context edges once each, at most `budget` per entity (bounds hub-heavy closures)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.edges: dict[tuple[str, str, str], None] = {}
        self.budget = 0

    def __call__(self, child: int, rel: str, parent: int) -> None:
        if self.budget > 0:
            self.edges[(self.kb.qids[child], rel, self.kb.qids[parent])] = None
            self.budget -= 1


def context_edges(kb: KnowledgeBase, qids: Iterable[str]) -> list[ContextEdge]:
    """Ancestor closure of the entities: INSTANCE_OF (P31), SUBCLASS_OF (P279 and trusted non-Wikidata
    is-a), LOCATED_IN (P131/P17/P30, transitively) and MANUFACTURER (P176), deduplicated."""
    sink = _EdgeSink(kb)
    for qid in qids:
        i = kb.idx(qid) if isinstance(qid, str) else None
        if i is None:
            continue
        sink.budget = MAX_EDGES_PER_ENTITY
        _isa_edges(kb, i, sink)
        _located_edges(kb, i, sink)
        for m in kb.neighbours("manufacturer", i):
            sink(i, "MANUFACTURER", m)
    return [ContextEdge(child=c, rel=r, parent=p) for c, r, p in sink.edges]


def _isa_edges(kb: KnowledgeBase, i: int, emit: _EdgeSink) -> None:
    frontier, seen = [i], {i}
    for _ in range(ISA_DEPTH):
        nxt: list[int] = []
        for node in frontier:
            for rel, name in (("p31", "INSTANCE_OF"), ("isa", "SUBCLASS_OF")):
                for parent in kb.neighbours(rel, node, TRUSTED_ISA):
                    emit(node, name, parent)
                    if parent not in seen:
                        seen.add(parent)
                        nxt.append(parent)
        frontier = nxt
        if not frontier:
            break


def _located_edges(kb: KnowledgeBase, i: int, emit: _EdgeSink) -> None:
    frontier, seen = [i], {i}
    for _ in range(LOCATED_DEPTH):
        nxt: list[int] = []
        for node in frontier:
            for parent in kb.neighbours("located", node):
                emit(node, "LOCATED_IN", parent)
                if parent not in seen:
                    seen.add(parent)
                    nxt.append(parent)
        frontier = nxt
        if not frontier:
            break
