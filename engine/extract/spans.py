"""Fact objects as a person would write them down: whole words, without the function words around
them, and a thing a person can like, own, use, be or live in.

Every tier proposes character spans (the encoder's subword tags, the LLM's copied text); this module
turns such a span into the object a fact keeps, per language:
- snap to word boundaries (zh: jieba's segmenter, "海" inside "上海" → 上海; en: spaCy's tokens;
  es: words);
- strip function words at either end by part of speech: prepositions, articles and determiners,
  numerals and classifiers, quantity nouns ("a couple of", "un par de"), pronouns, particles,
  conjunctions ("在上海" → 上海, "两条狗" → 狗, "dos perros" → perros);
- for objects that are not activities (places, things owned or used, pets, jobs, schools, languages),
  a leading verb is part of the statement, not the object ("住在上海" → 上海);
- judge what is left: a bare adjective or adverb ("慢", "slow") is a quality, not a thing, unless
  the knowledge base has an English entity of exactly that name (the tagger reads "blue" and
  "nurse money" as adjectives); a verb is a thing only as an activity (LIKES / DISLIKES / WANTS
  "跳舞", "hiking"), and in English only in a non-finite form ("I complained" states an act);
  what the author is may be an adjective ("diabetic", STATE_PREDICATES).
- a complaint, a threat of a lawsuit or of the police is what the document does, not something the
  author likes or owns: an object that is exactly a term of the shipped alert rules ("投诉",
  "chargeback"; `escalation_rules.yaml`) is not a thing either (the document's alert says it).
Literal predicates (gender, age, diet …) are left to `graph_schema.normalise_literal`.

Spanish has no part-of-speech model in reach: its function words are the closed classes below, and
bare adjectives pass (a known gap). Other languages pass unchanged.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import BaseModel

from engine.extract.alerts import get_alert_matcher
from graph_schema import Predicate, Target

# Predicates whose object may be an activity (a verb): the rest name places, things, roles.
ACTIVITY_PREDICATES = frozenset({"LIKES", "DISLIKES", "WANTS"})
# Predicates whose object describes what the author is, often as an adjective ("diabetic", "Catholic").
STATE_PREDICATES = frozenset({"HEALTH_CONDITION", "RELIGION", "POLITICAL_VIEW", "SEXUAL_ORIENTATION"})
# Characters of the span's sentence read around it, before and after, per script: enough for the
# words at its edges to be segmented and tagged as in the whole sentence, at a fraction of the cost
# (the segmenter and the tagger cost about linearly in characters).
CONTEXT_CHARS = {"zh": (8, 4), "en": (40, 20), "es": (40, 20)}


class Word(NamedTuple):
    """One word of the sentence around a span: its characters and coarse part of speech."""

    start: int
    end: int
    pos: str  # FUNCTION, NOUN, VERB, ACTIVITY_VERB (English not in the past), ADJ, OTHER
    text: str


class SpanDecision(BaseModel):
    """The object span to keep, or why there is none."""

    start: int = 0
    end: int = 0
    drop: str | None = None  # "empty_object" | "not_a_thing"


# --- the words of a sentence, per language -----------------------------------------------------

# jieba's tags (ICTCLAS set), by first letter: p preposition, m numeral (with its classifier: 两条),
# q classifier, r pronoun, u particle, c conjunction, d adverb, e interjection, y modal particle,
# x punctuation, t time word, f direction word (上, 里), o onomatopoeia, w punctuation; a adjective,
# b distinguishing word, z status word; v verb (vn: verbal noun, 游泳); n/s/j/l/i/g nouns, places,
# abbreviations, set phrases, morphemes; eng a Latin-script word.
_ZH_FUNCTION = frozenset("pmqrucdeyxtfow")
_ZH_ADJ = frozenset("abz")
_ZH_NOUN = frozenset("nsjlighk")
# spaCy's universal tags (en_core_web_sm) that are never part of an object's edges.
_EN_FUNCTION = frozenset({"DET", "NUM", "ADP", "PRON", "PART", "CCONJ", "SCONJ", "AUX", "PUNCT", "INTJ", "SPACE"})
# Penn tags of a verb that names an act done, not an activity liked: "complained", "ate". Every other
# verb form can be one: "hiking", "to travel", and lower-case "i like hunt" (tagged VBP).
_EN_PAST = frozenset({"VBD", "VBN"})
# Quantity nouns that take "of" (partitives): the object is what follows them.
_EN_QUANTITY = frozenset(
    "couple pair lot lots bunch few dozen dozens handful number plenty ton tons loads load bit".split()
)
# Spanish closed classes: articles, contractions, prepositions, possessives, demonstratives,
# numerals and quantifiers, quantity nouns (un par de, un montón de).
_ES_FUNCTION = frozenset(
    """el la los las lo un una unos unas al del a de en con para por sin sobre entre desde hasta hacia
    mi mis tu tus su sus nuestro nuestra nuestros nuestras vuestro vuestra este esta estos estas ese esa
    esos esas aquel aquella aquellos aquellas dos tres cuatro cinco seis siete ocho nueve diez once doce
    veinte cien mil muchos muchas mucho mucha varios varias algunos algunas algún alguno alguna pocos
    pocas poco poca bastantes cada otro otra otros otras todos todas par montón docena y o e u que me
    te se le les nos yo""".split()
)
_LATIN_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[+#]+", re.UNICODE)
_DIGITS = re.compile(r"^\d+(?:[.,]\d+)?$")

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba's part-of-speech segmenter, loaded once (its dictionary takes ~1 s)."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    with _LOCK:
        jieba.initialize()
    return jieba.posseg


@lru_cache(maxsize=1)
def _english() -> Any:
    """en_core_web_sm's tagger only (no parser, no entities): coarse and Penn tags."""
    import spacy

    from engine.privacy.redactor import ENGLISH_MODELS

    for name in ENGLISH_MODELS:
        try:
            return spacy.load(name, exclude=["parser", "ner", "lemmatizer", "senter"])
        except OSError:
            continue
    raise RuntimeError(f"no English spaCy model installed (tried {', '.join(ENGLISH_MODELS)})")


def _zh_pos(flag: str) -> str:
    if flag in ("eng", "vn", "an"):
        return "NOUN"
    if flag == "zg" or flag[:1] in _ZH_FUNCTION:
        return "FUNCTION"
    if flag[:1] in _ZH_ADJ:
        return "ADJ"
    if flag[:1] == "v":
        return "VERB"
    return "NOUN" if flag[:1] in _ZH_NOUN else "OTHER"


def _zh_words(sentence: str, offset: int) -> list[Word]:
    out, pos = [], offset
    for pair in _jieba().cut(sentence):
        out.append(Word(pos, pos + len(pair.word), _zh_pos(pair.flag), pair.word))
        pos += len(pair.word)
    return out


def _zh_piece(word: Word, start: int, end: int) -> Word:
    """The part of a word inside the span when that part is itself a dictionary word ("篮球" in
    "打篮球"), else the whole word ("海" in "上海" is a fragment of the place)."""
    a, b = max(word.start, start), min(word.end, end)
    piece = word.text[a - word.start : b - word.start]
    if (a, b) == (word.start, word.end) or len(piece) < 2:
        return word
    flag = _jieba().dt.word_tag_tab.get(piece)
    return Word(a, b, _zh_pos(flag), piece) if flag else word


def _en_pos(token: Any) -> str:
    if token.tag_ == "RP":
        return "OTHER"  # the particle of a phrasal verb belongs to it: "work out"
    if token.pos_ in _EN_FUNCTION:
        return "FUNCTION"
    if token.pos_ in ("ADJ", "ADV"):
        return "ADJ"
    if token.pos_ in ("VERB",):
        return "VERB" if token.tag_ in _EN_PAST else "ACTIVITY_VERB"
    if token.pos_ in ("NOUN", "PROPN", "X", "SYM"):
        return "NOUN"
    return "OTHER"


def _en_words(sentence: str, offset: int) -> list[Word]:
    doc = _english()(sentence)
    return [Word(offset + t.idx, offset + t.idx + len(t.text), _en_pos(t), t.text)
            for t in doc if not t.is_space]


def _es_words(sentence: str, offset: int) -> list[Word]:
    out = []
    for m in _LATIN_WORD.finditer(sentence):
        word = m.group().lower()
        pos = "FUNCTION" if word in _ES_FUNCTION or _DIGITS.match(word) else "NOUN"
        out.append(Word(offset + m.start(), offset + m.end(), pos, m.group()))
    return out


@lru_cache(maxsize=512)
def sentence_words(sentence: str, offset: int, lang: str) -> tuple[Word, ...]:
    """The words of a piece of a sentence (cached: a document's spans often share theirs)."""
    if lang == "zh":
        return tuple(_zh_words(sentence, offset))
    if lang == "en":
        return tuple(_en_words(sentence, offset))
    if lang == "es":
        return tuple(_es_words(sentence, offset))
    return ()


# --- the object span --------------------------------------------------------------------------

def _strip_quantity(words: Sequence[Word], lang: str) -> Sequence[Word]:
    """Drop a leading partitive: "couple of", "lot of" (es: "par de" is closed-class already)."""
    if lang != "en" or not words or words[0].text.lower() not in _EN_QUANTITY:
        return words
    if len(words) == 1:
        return []  # "a couple of" with nothing after it
    return words[2:] if words[1].text.lower() == "of" else words


def _edge_strip(words: Sequence[Word], activity: bool) -> Sequence[Word]:
    lead = {"FUNCTION"} if activity else {"FUNCTION", "VERB", "ACTIVITY_VERB"}
    i, j = 0, len(words)
    while i < j and words[i].pos in lead:
        i += 1
    while j > i and words[j - 1].pos == "FUNCTION":
        j -= 1
    return words[i:j]


def _kb_names(surface: str, lang: str) -> bool:
    """The knowledge base has an entity of exactly this name in this language ("blue" the colour,
    "anime"): a word the tagger reads as an adjective that still names a thing."""
    import linkers

    entity = linkers.link_object(surface, lang=lang)
    label = getattr(entity, f"label_{lang}", None)
    return entity.qid is not None and label is not None and label.casefold() == surface.casefold()


def _is_thing(words: Sequence[Word], lang: str, activity: bool, surface: str) -> bool:
    kinds = {w.pos for w in words}
    if kinds & {"NOUN", "OTHER"}:
        return True
    if activity and "ACTIVITY_VERB" in kinds:
        return True
    # Chinese verbs have no finite form to tell an act from an activity: any verb is one.
    if activity and lang == "zh" and "VERB" in kinds:
        return True
    # English tags rare nouns as adjectives ("nurse money", "more anime"): the KB has the last word.
    return lang == "en" and kinds <= {"ADJ"} and _kb_names(surface, lang)


def object_span(text: str, start: int, end: int, sentence: tuple[int, int], lang: str,
                predicate: Predicate) -> SpanDecision:
    """The object the fact keeps for the span text[start:end] inside the sentence
    text[sentence[0]:sentence[1]]: snapped to words, function words stripped, judged a thing."""
    if predicate.target is Target.VALUE or lang not in ("zh", "en", "es"):
        return SpanDecision(start=start, end=end)
    before, after = CONTEXT_CHARS[lang]
    s0, s1 = max(sentence[0], start - before), min(sentence[1], end + after)
    words = [w for w in sentence_words(text[s0:s1], s0, lang) if w.end > start and w.start < end]
    if lang == "zh" and words:
        words[0], words[-1] = _zh_piece(words[0], start, end), _zh_piece(words[-1], start, end)
    if not words:
        return SpanDecision(start=start, end=end)
    activity = predicate.name in ACTIVITY_PREDICATES
    kept = _edge_strip(_strip_quantity(_edge_strip(words, activity), lang), activity)
    if not kept:
        return SpanDecision(drop="empty_object")
    start, end = kept[0].start, kept[-1].end
    if predicate.name not in STATE_PREDICATES and not _is_thing(kept, lang, activity, text[start:end]):
        return SpanDecision(drop="not_a_thing")
    if get_alert_matcher(None).is_term(text[start:end]):
        return SpanDecision(drop="not_a_thing")
    return SpanDecision(start=start, end=end)
