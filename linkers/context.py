"""Context evidence for disambiguation: which coarse domains the surrounding text talks about,
and how many of its words a candidate's description and neighbourhood share.

A small cue lexicon per domain (en/zh/es) stands in for a text classifier: it is explainable,
costs microseconds and needs no model download. It only nudges scores (see linkers.link).
"""

from __future__ import annotations

import re
from functools import lru_cache

from linkers.normalise import surface_key

DOMAIN_CUES: dict[str, tuple[str, ...]] = {
    "food": (
        "eat",
        "eats",
        "ate",
        "eating",
        "taste",
        "tastes",
        "tasty",
        "delicious",
        "yummy",
        "sweet",
        "juicy",
        "fruit",
        "fruits",
        "snack",
        "breakfast",
        "lunch",
        "dinner",
        "recipe",
        "pie",
        "fresh",
        "ripe",
        "cook",
        "cooking",
        "meal",
        "food",
        "restaurant",
        "flavor",
        "flavour",
        "salad",
        "dessert",
        "organic",
        "吃",
        "好吃",
        "味道",
        "甜",
        "水果",
        "新鲜",
        "早餐",
        "午餐",
        "晚餐",
        "外卖",
        "美味",
        "食物",
        "菜",
        "comer",
        "como",
        "comí",
        "delicioso",
        "deliciosa",
        "sabor",
        "fruta",
        "frutas",
        "dulce",
        "jugoso",
        "receta",
        "desayuno",
        "almuerzo",
        "cena",
        "comida",
        "postre",
    ),
    "product": (
        "phone",
        "iphone",
        "laptop",
        "computer",
        "app",
        "device",
        "bought",
        "buy",
        "purchase",
        "charger",
        "screen",
        "battery",
        "model",
        "brand",
        "store",
        "order",
        "ordered",
        "delivery",
        "warranty",
        "手机",
        "电脑",
        "买",
        "购买",
        "屏幕",
        "电池",
        "品牌",
        "下单",
        "快递",
        "充电",
        "teléfono",
        "móvil",
        "celular",
        "portátil",
        "ordenador",
        "compré",
        "comprar",
        "pantalla",
        "batería",
        "marca",
        "tienda",
        "pedido",
    ),
    "organisation": (
        "company",
        "work",
        "works",
        "job",
        "office",
        "employer",
        "hired",
        "ceo",
        "startup",
        "firm",
        "公司",
        "工作",
        "上班",
        "企业",
        "empresa",
        "trabajo",
        "oficina",
        "compañía",
    ),
    "sport": (
        "play",
        "plays",
        "played",
        "playing",
        "game",
        "match",
        "team",
        "score",
        "court",
        "league",
        "coach",
        "training",
        "gym",
        "fan",
        "打",
        "踢",
        "比赛",
        "球队",
        "运动",
        "健身",
        "球迷",
        "jugar",
        "juego",
        "partido",
        "equipo",
        "entrenamiento",
        "liga",
        "deporte",
    ),
    "place": (
        "live",
        "lives",
        "living",
        "moved",
        "city",
        "town",
        "visit",
        "visited",
        "trip",
        "travel",
        "住",
        "搬",
        "城市",
        "旅游",
        "去",
        "vivir",
        "vivo",
        "vive",
        "ciudad",
        "viaje",
        "mudé",
    ),
    "animal": (
        "pet",
        "pets",
        "dog",
        "cat",
        "puppy",
        "kitten",
        "vet",
        "feed",
        "walk",
        "宠物",
        "养",
        "狗",
        "猫",
        "mascota",
        "perro",
        "gato",
        "veterinario",
    ),
    "music": (
        "song",
        "songs",
        "album",
        "band",
        "concert",
        "listen",
        "music",
        "singer",
        "歌",
        "音乐",
        "专辑",
        "演唱会",
        "canción",
        "música",
        "concierto",
        "banda",
    ),
    "language": ("speak", "speaks", "fluent", "language", "说", "会说", "语", "hablo", "habla", "idioma"),
    "occupation": ("job", "profession", "career", "职业", "profesión"),
}

_WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_STOP = frozenset(
    "the a an and or of in on at to for with is are was were be my i me it this that from by as "
    "de la el los las y en un una que con por para del al es su mi".split()
)
_CJK_CUES = {d: tuple(c for c in cues if ord(c[0]) >= 0x2E80) for d, cues in DOMAIN_CUES.items()}
_WORD_CUES = {d: frozenset(c for c in cues if ord(c[0]) < 0x2E80) for d, cues in DOMAIN_CUES.items()}


@lru_cache(maxsize=4096)
def words(text: str) -> frozenset[str]:
    """Content words of a text, on the same normal form as alias keys."""
    return frozenset(w for w in _WORD.findall(surface_key(text)) if w not in _STOP and len(w) > 1)


@lru_cache(maxsize=4096)
def cued_domains(context: str) -> frozenset[str]:
    """Domains whose cue words occur in the context (word match; substring match for Chinese)."""
    toks = words(context)
    key = surface_key(context)
    hits = set()
    for domain in DOMAIN_CUES:
        if toks & _WORD_CUES[domain] or any(c in key for c in _CJK_CUES[domain]):
            hits.add(domain)
    return frozenset(hits)


def overlap(context_words: frozenset[str], profile: str) -> float:
    """Share of a candidate profile's content words (description, types, places) found in the context."""
    prof = words(profile)
    if not prof or not context_words:
        return 0.0
    return len(prof & context_words) / min(len(prof), 8)
