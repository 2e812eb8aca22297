"""The ontology: predicate table, literal normalisation, identifier whitelist, extractor schema."""

from __future__ import annotations

import pytest

from graph_schema import (
    PREDICATES,
    LiteralError,
    Target,
    UnknownPredicateError,
    checked_identifier,
    extractor_json_schema,
    get_predicate,
    normalise_literal,
)
from graph_schema.ddl import falkordb_ddl, neo4j_ddl

REQUIRED = {
    "LIKES", "DISLIKES", "OWNS", "USES", "WANTS", "LIVES_IN", "FROM_PLACE", "WORKS_AS", "WORKS_AT",
    "STUDIES_AT", "HAS_PET", "HAS_FAMILY", "SPEAKS", "AGE_BAND", "GENDER", "MARITAL_STATUS", "DIET",
    "PURCHASED", "VIEWED",
}


def test_required_predicates_exist_with_consistent_typing() -> None:
    assert REQUIRED <= set(PREDICATES)
    for p in PREDICATES.values():
        assert (p.target is Target.VALUE) == (p.literal_kind is not None), p.name
        assert not (p.supersedes and not p.functional), p.name
        for partner in p.exclusive_with:
            assert p.name in PREDICATES[partner].exclusive_with, (p.name, partner)
    assert get_predicate("lives_in").functional and get_predicate("LIVES_IN").range_classes
    assert {p.name for p in PREDICATES.values() if p.sensitive} >= {"RELIGION", "HEALTH_CONDITION"}


def test_unknown_predicate_is_named_in_the_error() -> None:
    with pytest.raises(UnknownPredicateError, match="'LOVES'"):
        get_predicate("LOVES")


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("age_band", "34", "25-34"),
        ("age_band", 17, "under_18"),
        ("age_band", "70岁", "65+"),
        ("age_band", "45 years old", "45-54"),
        ("age_band", "35-44", "35-44"),
        ("gender", "女", "female"),
        ("gender", "Hombre", "male"),
        ("marital_status", "已婚", "married"),
        ("diet", "Vegetariana", "vegetarian"),
        ("diet", "gluten-free", "gluten_free"),
        ("family_member", "女儿", "daughter"),
        ("family_member", "Mom", "mother"),
    ],
)
def test_literals_normalise_across_languages(kind: str, raw: object, expected: str) -> None:
    assert normalise_literal(kind, raw) == expected


@pytest.mark.parametrize(("kind", "raw"), [("age_band", "ancient"), ("gender", "x'}) //"), ("diet", "")])
def test_invalid_literals_are_refused(kind: str, raw: str) -> None:
    with pytest.raises(LiteralError):
        normalise_literal(kind, raw)


@pytest.mark.parametrize("name", ["LIKES", "User", "INSTANCE_OF", "MEMBER_OF"])
def test_whitelisted_identifiers_pass(name: str) -> None:
    assert checked_identifier(name) == name


@pytest.mark.parametrize("name", ["likes", "LIKES]->() DETACH DELETE n //", "Admin", ""])
def test_other_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="whitelist"):
        checked_identifier(name)


def test_extractor_schema_lists_text_predicates_only() -> None:
    schema = extractor_json_schema()
    enum = schema["properties"]["facts"]["items"]["properties"]["predicate"]["enum"]
    assert "LIKES" in enum and "PURCHASED" not in enum and "RELIGION" not in enum
    assert "RELIGION" in extractor_json_schema(allow_sensitive=True)["properties"]["facts"]["items"][
        "properties"]["predicate"]["enum"]
    assert schema["properties"]["sentiment"]["properties"]["label"]["enum"] == ["positive", "negative", "neutral"]


def test_ddl_covers_lookup_keys_on_both_backends() -> None:
    assert "CREATE INDEX FOR (n:User) ON (n.id)" in falkordb_ddl()
    assert any("REQUIRE n.key IS UNIQUE" in s and "(n:Entity)" in s for s in neo4j_ddl())
