"""Mention shapes of everyday persona objects: the words around the object that a KB alias lacks.

* Chinese measure words / classifiers: 一只猫, 两条狗, 三辆车 → 猫, 狗, 车.
* Spanish articles, possessives and plurals: los perros, las motos, mis gatos → perro, moto, gato.
* Verb–object phrases (LIKES / DISLIKES / WANTS only: what one does with an object is the object):
  打篮球, 踢足球, 弹钢琴, 喝咖啡 → 篮球, 足球, 钢琴, 咖啡; jugar al fútbol, tocar la guitarra →
  fútbol, guitarra; playing tennis, play the guitar → tennis, guitar.

`variants` returns the reduced forms in order of preference; the linker looks them up after the
mention as written and prefers a hit on the written form when both reach an entity in range.
"""

from __future__ import annotations

import re

# Predicates whose object may be stated as an activity ("I like playing tennis").
ACTIVITY_PREDICATES = frozenset({"LIKES", "DISLIKES", "WANTS"})

_ZH_NUM = "一二两三四五六七八九十几半百千万俩仨这那每某哪0-9０-９"
_ZH_CLASSIFIERS = "只条头匹个位件台辆架本把双张支部块片杯瓶碗盘份口棵朵颗粒首门项家间座艘枚套副盒包袋罐"
# (number or demonstrative)? + classifier at the start of the mention.
_ZH_MEASURE = re.compile(rf"^[{_ZH_NUM}]*[{_ZH_CLASSIFIERS}](?=\S)")
_ZH_NUM_ONLY = re.compile(rf"^[{_ZH_NUM}]+(?=\S)")
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

    def add(form: str) -> None:
        form = form.strip()
        if form and form != text and form not in out:
            out.append(form)

    lang = (lang or "").split("-")[0].lower()
    if lang in ("zh", "") and any("\u3400" <= c <= "\u9fff" for c in text):
        stripped = _ZH_MEASURE.sub("", text)
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
    return out
