"""Entity linker on the committed KB (linkers/data/kb.bin): no ../shared data needed."""

from __future__ import annotations

import pytest

from graph_schema import get_predicate
from graph_schema.predicates import ANIMAL, LANGUAGE, OCCUPATION, PLACE, UnknownPredicateError
from linkers import InvalidMentionError, context_edges, describe, get_kb, link_object, nil_key, normalise


def _isa_closure(qid: str) -> set[str]:
    return {e.parent for e in context_edges([qid]) if e.rel in ("INSTANCE_OF", "SUBCLASS_OF")}


def _located_closure(qid: str) -> set[str]:
    return {e.parent for e in context_edges([qid]) if e.rel == "LOCATED_IN"}


@pytest.mark.parametrize(
    ("mention", "lang", "qid"),
    [
        ("Berlin", "en", "Q64"),
        ("柏林", "zh", "Q64"),
        ("Berlín", "es", "Q64"),
        ("Beijing", "en", "Q956"),
        ("北京", "zh", "Q956"),
        ("Pekín", "es", "Q956"),
        ("Madrid", "en", "Q2807"),
        ("马德里", "zh", "Q2807"),
        ("馬德里", "zh", "Q2807"),
        ("Shanghai", "en", "Q8686"),
        ("上海", "zh", "Q8686"),
    ],
)
def test_cities_link_under_lives_in_and_reach_place(mention: str, lang: str, qid: str) -> None:
    ent = link_object(mention, predicate="LIVES_IN", lang=lang)
    assert ent.qid == qid and ent.key == qid
    assert ent.label_en and ent.label_zh and ent.label_es
    assert _isa_closure(qid) & set(PLACE)


def test_located_in_closure_reaches_country() -> None:
    assert "Q148" in _located_closure("Q956")  # Beijing → China
    assert "Q148" in _located_closure("Q8686")  # Shanghai → China
    assert "Q29" in _located_closure("Q2807")  # Madrid → Spain


@pytest.mark.parametrize(
    ("mention", "lang", "qid"),
    [
        ("nurse", "en", "Q186360"),
        ("护士", "zh", "Q186360"),
        ("護士", "zh", "Q186360"),
        ("enfermera", "es", "Q186360"),
        ("nurses", "en", "Q186360"),
        ("teacher", "en", "Q37226"),
        ("software engineer", "en", "Q1709010"),
    ],
)
def test_occupations_reach_occupation_classes(mention: str, lang: str, qid: str) -> None:
    ent = link_object(mention, predicate="WORKS_AS", lang=lang)
    assert ent.qid == qid
    assert _isa_closure(qid) & set(OCCUPATION)


def test_sport_hierarchy() -> None:
    assert link_object("basketball", predicate="LIKES").qid == "Q5372"
    assert link_object("篮球", predicate="LIKES", lang="zh").qid == "Q5372"
    assert "Q349" in _isa_closure("Q5372")
    nike = link_object("Nike", predicate="LIKES")
    assert nike.qid == "Q483915"
    assert "Q349" not in _isa_closure("Q483915")


def test_apple_depends_on_predicate_and_context() -> None:
    owned = link_object("Apple", predicate="OWNS", lang="en")
    kb = get_kb()
    makers = set()
    if owned.qid and kb.idx(owned.qid) is not None:
        makers = {kb.qids[m] for m in kb.neighbours("manufacturer", kb.idx(owned.qid))}
    assert owned.qid == "Q312" or "Q312" in makers
    liked = link_object(
        "apple", predicate="LIKES", lang="en", context="I eat a crunchy apple every morning, so sweet"
    )
    assert liked.qid == "Q89"
    assert link_object("苹果", predicate="LIKES", lang="zh", context="这个苹果很甜，很好吃").qid == "Q89"
    assert any(a["qid"] == "Q312" for a in liked.alternatives)  # the company stays visible as an alternative


def test_range_filter_gives_nil_when_nothing_fits() -> None:
    ent = link_object("human", predicate="HAS_PET")
    assert ent.is_nil and ent.key == "nil:animal:human"
    assert any(a["qid"] == "Q5" and a["range_ok"] is False for a in ent.alternatives)
    dog = link_object("dog", predicate="HAS_PET")
    assert dog.qid == "Q144" and _isa_closure("Q144") & set(ANIMAL)


def test_languages() -> None:
    assert link_object("English", predicate="SPEAKS").qid == "Q1860"
    spanish = link_object("西班牙语", predicate="SPEAKS", lang="zh")
    assert spanish.qid == "Q1321" and _isa_closure("Q1321") & set(LANGUAGE)


def test_result_shape_has_alternatives_and_scores() -> None:
    ent = link_object("Paris", predicate="LIVES_IN")
    assert ent.qid == "Q90" and 0 < ent.score <= 1
    assert ent.types and all(t.startswith("Q") for t in ent.types)
    assert ent.alternatives and all({"qid", "score", "range_ok"} <= set(a) for a in ent.alternatives)


def test_lowercase_word_is_not_an_acronym() -> None:
    assert link_object("car", predicate="OWNS").qid == "Q1420"  # not CAR = Central African Republic


def test_fuzzy_typo() -> None:
    assert link_object("basketbal", predicate="LIKES").qid == "Q5372"


# -- NIL keys and normalisation ---------------------------------------------------------------
def test_nil_keys_merge_repeated_unknowns() -> None:
    a = link_object("Zorblax Widgets", predicate="OWNS")
    b = link_object("zorblax widget", predicate="OWNS")
    c = link_object("Ｚｏｒｂｌａｘ　Ｗｉｄｇｅｔｓ", predicate="OWNS")
    assert a.is_nil and a.key == b.key == c.key == "nil:product:zorblax widget"
    assert nil_key("Zorblax Widgets", get_predicate("OWNS").nil_type) == a.key
    assert link_object("Zorblax", predicate="LIVES_IN").key == "nil:place:zorblax"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("護士", "护士"),
        ("蘋果公司", "苹果公司"),
        ("ＢＥＲＬＩＮ", "berlin"),
        ("McDonald’s", "mcdonald"),
        ("Running Shoes", "running shoe"),
        ("Coca-Cola!", "coca cola"),
        ("  New\tYork  ", "new york"),
    ],
)
def test_normalise(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


def test_traditional_and_simplified_reach_same_qid() -> None:
    for trad, simp in (("臺灣", "台湾"), ("籃球", "篮球"), ("蘋果", "苹果")):
        assert link_object(trad, lang="zh").key == link_object(simp, lang="zh").key


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "\x00\x01\x02", "!!!", "\u200b"])
def test_empty_mentions_raise_clear_error(bad: str) -> None:
    with pytest.raises(InvalidMentionError, match="no letters or digits"):
        link_object(bad)


def test_huge_and_control_character_mentions_do_not_crash() -> None:
    huge = link_object("x" * 10_000, predicate="OWNS")
    assert huge.is_nil and len(huge.key) < 300
    assert link_object("Ber\x00lin\x07", predicate="LIVES_IN").qid == "Q64"
    assert link_object("\ud800 weird\x1b[31m", predicate="LIKES").key  # lone surrogate, ANSI escape
    with pytest.raises(InvalidMentionError):
        link_object(None)  # type: ignore[arg-type]


def test_unknown_predicate_is_a_clear_error() -> None:
    with pytest.raises(UnknownPredicateError):
        link_object("Berlin", predicate="NOT_A_PREDICATE")


# -- describe / context_edges ------------------------------------------------------------------
def test_describe() -> None:
    berlin = describe("Q64")
    assert berlin is not None and berlin.label_en == "Berlin" and berlin.label_zh == "柏林"
    assert describe("Q999999999999") is None
    assert describe("not a qid") is None


def test_context_edges_closure_is_bounded_and_deduplicated() -> None:
    edges = context_edges(["Q5372", "Q5372", "Q956", "Q404404404", "junk"])
    triples = [(e.child, e.rel, e.parent) for e in edges]
    assert len(triples) == len(set(triples))
    assert {e.rel for e in edges} <= {"INSTANCE_OF", "SUBCLASS_OF", "LOCATED_IN", "MANUFACTURER"}
    assert ("Q956", "LOCATED_IN", "Q148") in triples
    assert context_edges([]) == []
    iphone = context_edges(["Q2766"])
    assert any(e.rel == "MANUFACTURER" and e.parent == "Q312" for e in iphone)


def test_kb_loads_once() -> None:
    assert get_kb() is get_kb()


def test_context_cues_only_count_in_the_mentions_own_clause() -> None:
    # "moved to" cues a place, but for another clause: coffee stays the drink
    entity = link_object(
        "coffee", predicate="LIKES", lang="en", context="Just moved to Berlin, loving the coffee here."
    )
    assert entity.qid == "Q8486"
