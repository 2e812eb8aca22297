"""Mention shapes of everyday persona objects: the words around the object that a KB alias lacks.

* Chinese measure words / classifiers: 一只猫, 两条狗, 三辆车 → 猫, 狗, 车.
* Spanish articles, possessives and plurals: los perros, las motos, mis gatos → perro, moto, gato.
* Verb–object phrases (LIKES / DISLIKES / WANTS only: what one does with an object is the object):
  打篮球, 踢足球, 弹钢琴, 喝咖啡 → 篮球, 足球, 钢琴, 咖啡; jugar al fútbol, tocar la guitarra →
  fútbol, guitarra; playing tennis, play the guitar → tennis, guitar.

`variants` returns the reduced forms in order of preference; the linker looks them up after the
mention as written and prefers a hit on the written form when both reach an entity in range.

`fallback_variants` are looser forms tried only when those found nothing acceptable:

* Spanish gender: the other gender of a noun (gato ↔ gata, abogada → abogado, profesora → profesor,
  actriz → actor): a KB may hold a concept under one gender only; diminutives (perrita → perra → perro).
* Singulars even when the plural as written named something else (dinosaurs, a TV series → dinosaur).
* Heads of noun phrases: es "X de Y" / "X para Y" → X (el café de la oficina → café), en "X from Y"
  → X, zh "Y的X" → X (办公室的咖啡 → 咖啡), zh diminutive 小 (小猫 → 猫).
"""

from __future__ import annotations

import re

from linkers.normalise import fold_plural, singular

# Predicates whose object may be stated as an activity ("I like playing tennis").
ACTIVITY_PREDICATES = frozenset({"LIKES", "DISLIKES", "WANTS"})
# Predicates whose objects are common nouns (a plural there means the concept: cats → cat).
COMMON_NOUN_PREDICATES = ACTIVITY_PREDICATES | {"HAS_PET", "OWNS", "USES", "WORKS_AS"}

_ZH_NUM = "一二两三四五六七八九十几半百千万俩仨这那每某哪0-9０-９"
_ZH_CLASSIFIERS = "只条头匹个位件台辆架本把双张支部块片杯瓶碗盘份口棵朵颗粒首门项家间座艘枚套副盒包袋罐"
# (number or demonstrative)? + classifier at the start of the mention.
_ZH_MEASURE = re.compile(rf"^[{_ZH_NUM}]*[{_ZH_CLASSIFIERS}](?=\S)")
_ZH_NUM_ONLY = re.compile(rf"^[{_ZH_NUM}]+(?=\S)")
# Quantity words without a classifier: 一些书, 很多猫, 好几本书 (a classifier may follow).
_ZH_QUANTITY = re.compile(rf"^(?:一些|一点|很多|许多|好多|不少|好几|这些|那些|几)[{_ZH_CLASSIFIERS}]?(?=\S)")
# One-character verbs that take the object directly (longest first is not needed: single chars).
_ZH_VERBS = "打踢弹拉吹喝吃玩看听学练骑开养下跳唱滑做写画读追逛泡钓"
_ZH_VERB_OBJECT = re.compile(rf"^(?:去|来|爱|喜欢|讨厌|想)?[{_ZH_VERBS}](?:了|过|着)?(?=\S)")
# Two-character verbs.
_ZH_VERB2 = re.compile(r"^(?:去|爱|喜欢|想)?(?:演奏|收听|观看|饲养|驾驶|弹奏|练习|学习|品尝)(?=\S)")

_ES_VERBS = (
    "jugar|juego|juega|jugando|tocar|toco|toca|tocando|practicar|practico|practica|practicando|"
    "comer|como|come|comiendo|beber|bebo|bebe|bebiendo|tomar|tomo|toma|tomando|escuchar|escucho|"
    "escuchando|ver|veo|viendo|montar|monto|montando|hacer|hago|haciendo|ir|voy|cocinar|cocino|"
    "leer|leo|bailar|bailo|cantar|canto|conducir|conduzco|manejar|manejo"
)
_ES_VERB_OBJECT = re.compile(
    rf"^(?:{_ES_VERBS})\s+(?:(?:a|al|en|de|del|la|el|los|las|un|una|unos|unas)\s+)*(?=\S)"
)
_ES_ARTICLE = re.compile(
    r"^(?:(?:el|la|los|las|lo|un|una|unos|unas|mi|mis|tu|tus|su|sus|nuestro|nuestra|nuestros|"
    r"nuestras|dos|tres|cuatro|varios|varias|muchos|muchas)\s+)+(?=\S)"
)
_EN_VERB_OBJECT = re.compile(
    r"^(?:to\s+)?(?:play|plays|playing|played|eat|eats|eating|drink|drinks|drinking|watch|watches|"
    r"watching|listen(?:ing)?\s+to|ride|riding|cook|cooking|do|doing|go|going|practi[cs]e|practi[cs]ing)"
    r"\s+(?:the\s+|a\s+|an\s+|some\s+)?(?=\S)"
)
_EN_ARTICLE = re.compile(r"^(?:a|an|the|my|our|two|three|some)\s+(?=\S)")
# The head of a Spanish noun phrase comes first: "café de la oficina", "zapatos para correr".
_ES_HEAD = re.compile(r"^(\S+(?:\s+\S+)?)\s+(?:de|del|para|con|en|sin)\s+\S")
_EN_HEAD = re.compile(r"^(\S+(?:\s+\S+)?)\s+(?:from|at|in|for|with)\s+(?:the\s+|my\s+|a\s+)?\S")
# Chinese puts the head last: 办公室的咖啡 → 咖啡.
_ZH_DE = re.compile(r"^.+的(?=\S)")
_VOWELS = "aeiouáéíóú"


def es_singular(word: str) -> str:
    """Spanish singular of one lower-case word (rules: -es after a consonant, else -s)."""
    if len(word) < 4 or not word.endswith("s"):
        return word
    if word.endswith("ces"):
        return word[:-3] + "z"  # luces → luz, peces → pez
    if word.endswith("es") and len(word) > 4 and word[-3] not in "aeiouáéíóú":
        return word[:-2]  # flores → flor, ciudades → ciudad, canciones → cancion (accents fold later)
    if word[-2] in "aeiouáéíóú":
        return word[:-1]  # perros → perro, motos → moto
    return word


def es_other_genders(word: str) -> list[str]:
    """The other gender of a Spanish noun (rules: -o/-a, -or/-ora, -tor/-triz, -és/-esa), singular."""
    word = es_singular(word)
    if len(word) < 3:
        return []
    if word.endswith("triz"):
        return [word[:-4] + "tor"]  # actriz → actor
    if word.endswith("ora"):
        return [word[:-1]]  # profesora → profesor
    if word.endswith("esa"):
        return [word[:-3] + "és"]  # francesa → francés
    if word.endswith(("or", "és")) and len(word) > 3:
        return [word + "a" if word.endswith("or") else word[:-2] + "esa"]
    if word.endswith("a"):
        return [word[:-1] + "o"]  # gata → gato, abogada → abogado
    if word.endswith("o"):
        return [word[:-1] + "a"]  # gato → gata
    return []


def es_undiminished(word: str) -> list[str]:
    """The plain noun of a Spanish diminutive: gatito → gato, perritas → perra."""
    word = es_singular(word)
    if len(word) > 5 and word.endswith(("ito", "ita")):
        return [word[:-3] + word[-1]]
    return []


def has_article_or_plural(mention: str, lang: str | None) -> bool:
    """The mention is a common noun phrase: it starts with an article/determiner or ends in a plural."""
    text = mention.strip().casefold()
    code = (lang or "").split("-")[0].lower()
    if code in ("es", "") and (_ES_ARTICLE.match(text) or es_singular(text) != text):
        return True
    last = text.rpartition(" ")[2]
    return code in ("en", "") and bool(_EN_ARTICLE.match(text) or singular(last) != last)


def _es_plural_fold(text: str) -> str:
    head, _, last = text.rpartition(" ")
    first, _, rest = text.partition(" ")
    # Noun first: "perros callejeros" → "perro callejero" is rare; fold only single words and the head noun.
    if not head:
        return es_singular(text)
    return f"{es_singular(first)} {rest}" if rest else es_singular(first)


def variants(mention: str, lang: str | None, predicate: str | None, *, bare_plurals: bool = True) -> list[str]:
    """Reduced forms of the mention (no duplicates, not the mention itself), best first.
    `bare_plurals=False` leaves out the Spanish singular of a mention that had nothing stripped."""
    text = mention.strip()
    lowered = text.casefold()
    out: list[str] = []
    activity = predicate is None or predicate.upper() in ACTIVITY_PREDICATES
    common = predicate is not None and predicate.upper() in COMMON_NOUN_PREDICATES

    def add(form: str) -> None:
        form = form.strip()
        if form and form != text and form not in out:
            out.append(form)

    lang = (lang or "").split("-")[0].lower()
    if lang in ("zh", "") and any("\u3400" <= c <= "\u9fff" for c in text):
        quantity = _ZH_QUANTITY.sub("", text)
        stripped = _ZH_MEASURE.sub("", quantity)
        stripped = _ZH_NUM_ONLY.sub("", stripped) if stripped == text else stripped
        add(stripped)
        if activity:
            for pattern in (_ZH_VERB2, _ZH_VERB_OBJECT):
                obj = pattern.sub("", text)
                if obj != text and len(obj) >= 1:
                    add(obj)
                    add(_ZH_MEASURE.sub("", obj))
    if lang in ("es", ""):
        base = lowered
        if activity:
            obj = _ES_VERB_OBJECT.sub("", base)
            if obj != base:
                add(obj)
                base = obj
        art = _ES_ARTICLE.sub("", base)
        if art != base:
            add(art)
        if art != lowered or bare_plurals:
            # A bare word's English-style plural is folded by the KB lookup already; Spanish
            # "-es" plurals (flores, canciones) only when the written form found nothing.
            add(_es_plural_fold(art))
    if lang in ("en", ""):
        base = lowered
        if activity:
            obj = _EN_VERB_OBJECT.sub("", base)
            if obj != base:
                add(obj)
                base = obj
        art = _EN_ARTICLE.sub("", base)
        if art != base:
            add(art)
        if lang == "en" and common:
            add(fold_plural(art))  # a plural may be another entity's alias (strawberries, a category)
    return out


def fallback_variants(mention: str, lang: str | None, predicate: str | None) -> list[str]:
    """Looser forms (other gender, phrase heads, diminutive) of the mention and of its reduced shapes,
    for a second lookup when the mention and `variants` found nothing acceptable."""
    text = mention.strip()
    lang = (lang or "").split("-")[0].lower()
    cjk = any("\u3400" <= c <= "\u9fff" for c in text)
    if not cjk and lang not in ("es", "en"):
        return []
    # The bare Spanish singular may not have been looked up (variants(bare_plurals=False)): it can come here.
    bases = [text.casefold(), *variants(mention, lang, predicate, bare_plurals=False)]
    out: list[str] = []

    def add(form: str) -> None:
        form = form.strip()
        if form and form.casefold() != text.casefold() and form not in bases and form not in out:
            out.append(form)

    for base in bases:
        if cjk and lang in ("zh", ""):
            head = _ZH_DE.sub("", base)
            for form in (base, head):
                add(form)
                if form.startswith("小") and len(form) >= 2:
                    add(form[1:])  # diminutive: 小猫 → 猫
        # Word-form rules need the language: a name of unknown language is not flipped to another gender.
        if lang == "es":
            # The singular even when the plural as written named something (los ratones: a band).
            add(_es_plural_fold(base))
            match = _ES_HEAD.match(base)
            head = _ES_ARTICLE.sub("", match.group(1)) if match else base
            if match:
                add(head)
                add(_es_plural_fold(head))
            first, _, rest = head.partition(" ")
            for word in (first, *es_undiminished(first)):
                for other in ([word] if word != first else []) + es_other_genders(word):
                    add(f"{other} {rest}" if rest else other)
        if lang == "en":
            add(fold_plural(base))  # dinosaurs → dinosaur, when "dinosaurs" named a film
            match = _EN_HEAD.match(base)
            if match:
                add(_EN_ARTICLE.sub("", match.group(1)))
    return out
