"""Object spans per language (engine/extract/spans.py) with the real segmenter and tagger: whole words,
no function words at the edges, and a thing rather than a quality or an act."""

from __future__ import annotations

import pytest

from engine.extract.postprocess import ModelAnswer, ground_facts
from engine.extract.spans import object_span
from graph_schema import get_predicate


def normalised(text: str, obj: str, predicate: str, lang: str) -> str:
    """The object kept for the first occurrence of obj in a one-sentence text, or the drop reason."""
    start = text.index(obj)
    decision = object_span(text, start, start + len(obj), (0, len(text)), lang, get_predicate(predicate))
    return decision.drop or text[decision.start : decision.end]


@pytest.mark.parametrize(
    ("lang", "text", "obj", "predicate", "kept"),
    [
        # prepositions, numerals and classifiers, a leading verb of a place
        ("zh", "我住在上海，是一名老师。", "在上海", "LIVES_IN", "上海"),
        ("zh", "我住在上海，是一名老师。", "住在上海", "LIVES_IN", "上海"),
        ("zh", "我住在上海，是一名老师。", "一名老师", "WORKS_AS", "老师"),
        ("zh", "我养了两条狗。", "两条狗", "HAS_PET", "狗"),
        # a fragment of a word snaps to the word; a dictionary word inside a longer one stays
        ("zh", "我住在上海，是一名老师。", "海", "LIVES_IN", "上海"),
        ("zh", "我喜欢打篮球。", "篮球", "LIKES", "篮球"),
        # activities are things one can like, in Chinese as verbs
        ("zh", "我喜欢跳舞。", "跳舞", "LIKES", "跳舞"),
        ("en", "I have a couple of dogs.", "a couple of dogs", "HAS_PET", "dogs"),
        ("en", "I'm a software engineer in London.", "a software engineer", "WORKS_AS", "software engineer"),
        ("en", "I'm a software engineer in London.", "in London", "LIVES_IN", "London"),
        ("en", "I own an iPhone.", "iPho", "OWNS", "iPhone"),
        ("en", "I hate waiting in long queues.", "waiting in long queues", "DISLIKES", "waiting in long queues"),
        ("en", "I like to travel.", "to travel", "LIKES", "travel"),
        ("en", "I just love to work out!", "work out", "LIKES", "work out"),
        # the tagger reads it as an adjective, the KB knows the colour by this very name
        ("en", "My favourite colour is blue.", "blue", "LIKES", "blue"),
        # an alert term inside an object does not make it a complaint
        ("en", "I work as a police officer.", "a police officer", "WORKS_AS", "police officer"),
        # what the author is may be an adjective
        ("en", "I am diabetic.", "diabetic", "HEALTH_CONDITION", "diabetic"),
        ("es", "Vivo en Madrid y tengo dos perros.", "dos perros", "HAS_PET", "perros"),
        ("es", "Vivo en Madrid y tengo dos perros.", "en Madrid", "LIVES_IN", "Madrid"),
        ("es", "Me encanta el fútbol.", "el fútbol", "LIKES", "fútbol"),
        ("es", "Tengo un par de gatos.", "un par de gatos", "HAS_PET", "gatos"),
    ],
)
def test_spans_become_the_object_a_person_would_write(lang, text, obj, predicate, kept) -> None:
    assert normalised(text, obj, predicate, lang) == kept


@pytest.mark.parametrize(
    ("lang", "text", "obj", "predicate"),
    [
        ("zh", "快递太慢了，客服态度很差，我要投诉。", "慢", "DISLIKES"),  # a quality
        ("en", "The delivery was so slow.", "slow", "DISLIKES"),
        ("en", "I complained to the manager.", "complained", "DISLIKES"),  # an act, not an activity
        ("en", "I ate it.", "ate", "LIKES"),
        ("zh", "快递太慢了，客服态度很差，我要投诉。", "投诉", "DISLIKES"),  # the complaint is the alert's
        ("en", "I will file a chargeback with my bank.", "chargeback", "OWNS"),
    ],
)
def test_qualities_and_acts_are_not_things(lang, text, obj, predicate) -> None:
    assert normalised(text, obj, predicate, lang) == "not_a_thing"


def test_function_words_alone_leave_nothing() -> None:
    assert normalised("我在这里。", "在这里", "LIVES_IN", "zh") == "empty_object"
    assert normalised("I have a couple of them.", "a couple of", "OWNS", "en") == "empty_object"


def test_literals_and_other_languages_pass_unchanged() -> None:
    assert normalised("I am 31 years old.", "31 years", "AGE_BAND", "en") == "31 years"
    assert normalised("J'habite à Lyon.", "à Lyon", "LIVES_IN", "fr") == "à Lyon"


def test_grounding_keeps_the_normalised_object_and_counts_the_rest() -> None:
    answer = ModelAnswer.model_validate({"facts": [
        {"predicate": "LIVES_IN", "object": "在上海"}, {"predicate": "HAS_PET", "object": "两条狗"},
        {"predicate": "DISLIKES", "object": "慢"}], "reason": "", "sentiment": "neutral"})
    facts, dropped = ground_facts(answer, "我住在上海，养了两条狗。快递太慢了。", "zh")
    assert [(f.predicate, f.object) for f in facts] == [("LIVES_IN", "上海"), ("HAS_PET", "狗")]
    assert dropped == {"not_a_thing": 1}


@pytest.mark.parametrize(("lang", "text", "place", "proposed", "both"), [
    ("en", "i am from canada and i love dogs", "canada", "LIVES_IN", True),
    ("en", "i am from canada and i love dogs", "canada", "FROM_PLACE", True),
    ("en", "I'm originally from Ohio", "Ohio", "FROM_PLACE", False),
    ("en", "I live in Paris now", "Paris", "LIVES_IN", False),
    ("es", "Soy de Sevilla, pero vivo aquí", "Sevilla", "LIVES_IN", True),
    ("zh", "我来自上海", "上海", "FROM_PLACE", True),
    ("zh", "我住在上海", "上海", "LIVES_IN", False),
])
def test_a_place_the_author_is_from_is_where_they_live_and_come_from(lang, text, place, proposed, both) -> None:
    answer = ModelAnswer.model_validate({"facts": [{"predicate": proposed, "object": place}],
                                         "reason": "", "sentiment": "neutral"})
    facts, _ = ground_facts(answer, text, lang)
    other = {"LIVES_IN": "FROM_PLACE", "FROM_PLACE": "LIVES_IN"}[proposed]
    want = [(proposed, place), *([(other, place)] if both else [])]
    assert [(f.predicate, f.object) for f in facts] == want
    assert len({f.confidence for f in facts}) == 1
