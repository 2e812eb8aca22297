"""Template sentences over the knowledge base's everyday vocabulary, for what PersonaExt lacks.

PersonaExt is English and has no occupations (WORKS_AS), origins (FROM_PLACE), ages (AGE_BAND) or
languages (SPEAKS), and few places per language. Templates in en / zh / es over KB labels of the
matching domain (occupations, places, languages, foods, sports, animals, music; ages are numbers) add
those facts, two-fact clauses ("i'm a nurse in leeds"), plus sentences about *other* people that must
yield nothing. Entities are split by the same hash rule as the corpora and only the train half is
used, so the dev split measures the tagger on words it never saw in a template.
"""

from __future__ import annotations

import random

from engine.corpora import split_of
from engine.extract.encoder.tagging import Span
from engine.train.examples import FactExample

# (predicate, KB domain, lang) → templates; "{x}" is the object. Predicate None: a sentence about
# someone else, tagged with no fact.
TEMPLATES: dict[tuple[str | None, str, str], tuple[str, ...]] = {
    ("WORKS_AS", "occupation", "en"): ("i work as a {x}", "i am a {x} by trade", "i've been a {x} for ten years",
                                       "my job? i'm a {x}"),
    ("WORKS_AS", "occupation", "zh"): ("我是一名{x}", "我的工作是{x}", "我当{x}已经五年了", "我在医院做{x}"),
    ("WORKS_AS", "occupation", "es"): ("trabajo como {x}", "soy {x} desde hace años", "mi trabajo es de {x}"),
    ("LIVES_IN", "place", "zh"): ("我住在{x}", "我在{x}生活了很多年", "我家在{x}"),
    ("LIVES_IN", "place", "es"): ("vivo en {x}", "llevo años viviendo en {x}", "mi casa está en {x}"),
    ("LIVES_IN", "place", "en"): ("i live in {x}", "we moved to {x} last year and love it here"),
    ("LIKES", "food", "zh"): ("我最喜欢吃{x}", "我爱吃{x}"),
    ("LIKES", "food", "es"): ("me encanta {x}", "me gusta mucho {x}"),
    ("LIKES", "sport", "zh"): ("我喜欢{x}", "周末我常去{x}"),
    ("LIKES", "sport", "es"): ("me encanta el {x}", "me gusta jugar al {x}"),
    ("LIKES", "music", "zh"): ("我超爱{x}",),
    ("LIKES", "music", "es"): ("me encanta la música {x}",),
    ("DISLIKES", "food", "zh"): ("我讨厌{x}", "我不吃{x}"),
    ("DISLIKES", "food", "es"): ("odio {x}", "no me gusta nada {x}"),
    ("HAS_PET", "animal", "zh"): ("我养了一只{x}", "我家有一只{x}"),
    ("HAS_PET", "animal", "es"): ("tengo un {x} en casa", "mi {x} se llama Toby"),
    ("FROM_PLACE", "place", "en"): ("i was born in {x}", "i grew up in {x}", "i was raised in {x}"),
    ("FROM_PLACE", "place", "zh"): ("我是{x}人", "我出生在{x}", "我老家在{x}"),
    ("FROM_PLACE", "place", "es"): ("nací en {x}", "crecí en {x}", "me crié en {x}"),
    ("SPEAKS", "language", "en"): ("i speak {x}", "i can speak {x} fluently", "{x} is my first language"),
    ("SPEAKS", "language", "zh"): ("我会说{x}", "我的母语是{x}"),
    ("SPEAKS", "language", "es"): ("hablo {x}", "sé hablar {x} bastante bien"),
    ("AGE_BAND", "age", "en"): ("i am {x} years old", "i'm {x} now", "i just turned {x}"),
    ("AGE_BAND", "age", "zh"): ("我今年{x}岁", "我已经{x}岁了"),
    ("AGE_BAND", "age", "es"): ("tengo {x} años", "acabo de cumplir {x} años"),
    (None, "age", "en"): ("my son is {x} years old",),
    (None, "age", "zh"): ("我女儿今年{x}岁",),
    (None, "age", "es"): ("mi hija tiene {x} años",),
    (None, "place", "en"): ("my husband was born in {x}",),
    (None, "occupation", "en"): ("my sister works as a {x}", "my dad is a {x}"),
    (None, "occupation", "zh"): ("我妈妈是一名{x}", "他是{x}"),
    (None, "occupation", "es"): ("mi hermano trabaja como {x}",),
    (None, "food", "en"): ("my wife loves {x}",),
    (None, "food", "zh"): ("我朋友喜欢吃{x}",),
    (None, "place", "es"): ("mi madre vive en {x}",),
}


# Two facts in one clause, as people write them ("i'm a nurse in leeds"): {x} is the first object, {y} the second.
PAIRS: dict[tuple[str, str, str, str, str], tuple[str, ...]] = {
    ("WORKS_AS", "occupation", "LIVES_IN", "place", "en"): ("i'm a {x} in {y}", "i work as a {x} in {y}",
                                                            "i am a {x} living in {y}"),
    ("WORKS_AS", "occupation", "LIVES_IN", "place", "zh"): ("我在{y}当{x}", "我是{y}的一名{x}"),
    ("WORKS_AS", "occupation", "LIVES_IN", "place", "es"): ("soy {x} en {y}", "trabajo como {x} en {y}"),
    ("AGE_BAND", "age", "LIVES_IN", "place", "en"): ("i'm {x} and live in {y}",),
}
AGES = tuple(str(n) for n in range(14, 80))


def _vocabulary(kb, domain: str, lang: str, limit: int, rng: random.Random) -> list[str]:
    from linkers.kb import DOMAINS

    if domain == "age":  # ages are numbers, not KB entities; split by the same hash rule
        ages = [a for a in AGES if split_of(a) == "train"]
        return [rng.choice(ages) for _ in range(limit)]
    bit = 1 << DOMAINS.index(domain)
    labels = getattr(kb, f"label_{lang}")
    found = [
        (kb.prior[i], labels[i] if lang == "zh" else labels[i].lower())
        for i in range(len(kb))
        if kb.domains[i] & bit and labels[i] and 1 < len(labels[i]) <= 24 and split_of(kb.qids[i]) == "train"
    ]
    # the better-known half of the domain: everyday words, not rare taxa or titles
    found.sort(key=lambda pw: -pw[0])
    words = [w for _, w in found[: limit * 3]]
    rng.shuffle(words)
    return words[:limit]


JOINERS = {"en": (" and ", ". ", ", and "), "zh": ("，", "。", "，而且"), "es": (" y ", ". ", ", y ")}


def compound_examples(examples: list[FactExample], n: int, rng: random.Random) -> list[FactExample]:
    """Two sentences of one language joined ("i work as a plumber and i love jazz"): a document
    states several facts, and PersonaExt labels only one per sentence."""
    by_lang: dict[str, list[FactExample]] = {}
    for e in examples:
        by_lang.setdefault(e.lang, []).append(e)
    out = []
    for _ in range(n):
        lang = rng.choice(sorted(by_lang))
        first, second = rng.choice(by_lang[lang]), rng.choice(by_lang[lang])
        joiner = rng.choice(JOINERS[lang])
        shift = len(first.text) + len(joiner)
        spans = [*first.spans, *(sp.model_copy(update={"start": sp.start + shift, "end": sp.end + shift})
                                 for sp in second.spans)]
        out.append(FactExample(text=first.text + joiner + second.text, lang=lang, split="train", spans=spans,
                               source="template"))
    return out


def template_examples(kb, *, per_template: int, seed: int, compounds: float = 0.5) -> list[FactExample]:
    """Synthetic training examples (split "train" only) from the KB's labelled everyday entities,
    plus `compounds` × as many two-sentence combinations of them."""
    rng = random.Random(seed)  # noqa: S311 - seeded sampling, not crypto
    out = []
    for (predicate, domain, lang), templates in TEMPLATES.items():
        words = _vocabulary(kb, domain, lang, per_template * len(templates), rng)
        for k, word in enumerate(words):
            template = templates[k % len(templates)]
            text = template.replace("{x}", word)
            start = template.index("{x}")
            spans = [Span(start=start, end=start + len(word), predicate=predicate)] if predicate else []
            out.append(FactExample(text=text, lang=lang, split="train", spans=spans, source="template"))
    out += pair_examples(kb, per_template=per_template, rng=rng)
    return out + compound_examples(out, int(len(out) * compounds), rng)


def pair_examples(kb, *, per_template: int, rng: random.Random) -> list[FactExample]:
    out = []
    for (first, first_domain, second, second_domain, lang), templates in PAIRS.items():
        n = per_template * len(templates)
        xs = _vocabulary(kb, first_domain, lang, n, rng)
        ys = _vocabulary(kb, second_domain, lang, n, rng)
        for k, (x, y) in enumerate(zip(xs, ys, strict=False)):
            template = templates[k % len(templates)]
            text, spans = template, []
            for slot, word, predicate in sorted((("{x}", x, first), ("{y}", y, second)),
                                                key=lambda t: template.index(t[0])):
                start = text.index(slot)
                text = text[:start] + word + text[start + len(slot):]
                spans.append(Span(start=start, end=start + len(word), predicate=predicate))
            out.append(FactExample(text=text, lang=lang, split="train", spans=spans, source="template"))
    return out
