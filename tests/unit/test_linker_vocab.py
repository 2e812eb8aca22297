"""Everyday persona vocabulary on the committed KB: mention shapes (zh classifiers and verb–object
phrases, es articles/plurals/verb phrases), the everyday sense preferred, one QID across languages,
and NIL with the rejected alternatives."""

from __future__ import annotations

import pytest

from linkers import link_object
from linkers.shapes import es_singular, variants


@pytest.mark.parametrize(
    ("mention", "lang", "predicate", "expected"),
    [
        ("一只猫", "zh", "HAS_PET", "猫"),
        ("两条狗", "zh", "HAS_PET", "狗"),
        ("打篮球", "zh", "LIKES", "篮球"),
        ("踢足球", "zh", "LIKES", "足球"),
        ("弹钢琴", "zh", "LIKES", "钢琴"),
        ("喝咖啡", "zh", "WANTS", "咖啡"),
        ("los perros", "es", "HAS_PET", "perro"),
        ("las motos", "es", "OWNS", "moto"),
        ("jugar al fútbol", "es", "LIKES", "fútbol"),
        ("tocar la guitarra", "es", "DISLIKES", "guitarra"),
        ("playing tennis", "en", "LIKES", "tennis"),
    ],
)
def test_shapes_reduce_to_the_object(mention: str, lang: str, predicate: str, expected: str) -> None:
    assert expected in variants(mention, lang, predicate)


def test_verb_object_only_for_activity_predicates() -> None:
    assert "篮球" not in variants("打篮球", "zh", "WORKS_AS")
    assert "fútbol" not in variants("jugar al fútbol", "es", "HAS_PET")


def test_spanish_singular() -> None:
    assert [es_singular(w) for w in ("perros", "motos", "flores", "peces", "tenis")] == [
        "perro", "moto", "flor", "pez", "teni"
    ]


@pytest.mark.parametrize(
    ("mention", "lang", "predicate", "qid"),
    [
        # Mention shapes → the object.
        ("打篮球", "zh", "LIKES", "Q5372"),
        ("踢足球", "zh", "LIKES", "Q2736"),
        ("弹钢琴", "zh", "LIKES", "Q5994"),
        ("喝咖啡", "zh", "LIKES", "Q8486"),
        ("jugar al fútbol", "es", "LIKES", "Q2736"),
        ("tocar la guitarra", "es", "LIKES", "Q6607"),
        ("一只猫", "zh", "HAS_PET", "Q146"),
        ("两条狗", "zh", "HAS_PET", "Q144"),
        ("los perros", "es", "HAS_PET", "Q144"),
        ("las motos", "es", "OWNS", "Q34493"),
        # The everyday sense, not a stub or a place / army unit / town.
        ("tennis", "en", "LIKES", "Q847"),
        ("sushi", "en", "LIKES", "Q46383"),
        ("寿司", "zh", "LIKES", "Q46383"),
        ("cocinero", "es", "WORKS_AS", "Q156839"),
        ("cocinera", "es", "WORKS_AS", "Q156839"),
        ("enfermero", "es", "WORKS_AS", "Q186360"),
        ("enfermera", "es", "WORKS_AS", "Q186360"),
        ("caballo", "es", "HAS_PET", "Q726"),
    ],
)
def test_everyday_objects(mention: str, lang: str, predicate: str, qid: str) -> None:
    assert link_object(mention, predicate=predicate, lang=lang).qid == qid


@pytest.mark.parametrize(
    ("forms", "predicate", "qid"),
    [
        ((("engineer", "en"), ("ingeniero", "es"), ("工程师", "zh"), ("工程師", "zh")), "WORKS_AS", "Q81096"),
        ((("swimming", "en"), ("natación", "es"), ("游泳", "zh")), "LIKES", "Q31920"),
        ((("tennis", "en"), ("tenis", "es"), ("网球", "zh"), ("網球", "zh")), "LIKES", "Q847"),
    ],
)
def test_one_concept_one_qid_across_languages(forms, predicate: str, qid: str) -> None:  # type: ignore[no-untyped-def]
    assert {link_object(m, predicate=predicate, lang=lang).qid for m, lang in forms} == {qid}


def test_nil_lists_rejected_alternatives_with_reasons() -> None:
    ent = link_object("Shanghai", predicate="HAS_PET", lang="en")
    assert ent.is_nil and ent.key == "nil:animal:shanghai"
    assert ent.alternatives and all(a["rejected"] for a in ent.alternatives)
    assert "outside the range of HAS_PET" in str(ent.alternatives[0]["rejected"])


def test_fuzzy_stays_in_the_predicate_domains() -> None:
    # "shushi" (a town) is a near spelling of "sushi"; a liked near-miss must not become a place.
    ent = link_object("sushii", predicate="LIKES", lang="en")
    assert ent.qid in (None, "Q46383")
