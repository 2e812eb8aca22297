"""The segment language: parsing, path-addressed errors, windows, ranges, the read-only guard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.segment import SegmentDefinitionError, load_definition, parse_definition
from engine.segment.compile import leaf_statement
from engine.segment.model import Range, Window

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def err(definition: dict) -> str:
    with pytest.raises(SegmentDefinitionError) as info:
        parse_definition(definition)
    return str(info.value)


def test_design_example_parses() -> None:
    d = load_definition("""
id: outdoor-sport-fans-cn
where:
  all:
    - likes: {descendant_of: Q349}
    - lives_in: {within: Q148}
    - not: {dislikes: {descendant_of: Q349}}
    - purchased: {descendant_of: Q22645, count: {gte: 2}, within_days: 90}
min_confidence: 0.6
""")
    kinds = [(lf.kind, lf.predicate, lf.path) for lf in d.root.leaves()]
    assert kinds == [
        ("fact", "LIKES", "where.all[0].likes"),
        ("fact", "LIVES_IN", "where.all[1].lives_in"),
        ("fact", "DISLIKES", "where.all[2].not.dislikes"),
        ("behaviour", "PURCHASED", "where.all[3].purchased"),
    ]
    assert d.min_confidence == 0.6
    assert d.definition_hash == parse_definition(dict(d.raw)).definition_hash


def test_literals_are_normalised_across_languages() -> None:
    d = parse_definition({"id": "x", "where": {"all": [{"gender": ["mujer", "男"]}, {"age_band": 34}]}})
    leaves = d.root.leaves()
    assert leaves[0].literal.value == ["female", "male"]
    assert leaves[1].literal.value == ["25-34"]


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"id": "x", "where": {"all": [{"likes": "Q1"}, {"lives_in": {"withn": "Q1"}}]}},
         "where.all[1].lives_in.withn: unknown key"),
        ({"id": "x", "where": {"purchased": {"within_days": -1}}},
         "where.purchased.within_days: within_days must be > 0"),
        ({"id": "x", "where": {"purchased": {"within_days": 30, "since": "2024-01-01"}}},
         "where.purchased: give within_days or since, not both"),
        ({"id": "x", "where": {"sentiment": {"label": "negative", "since": "2024-05-01", "until": "2024-01-01"}}},
         "where.sentiment: since (2024-05-01T00:00:00Z) must be before until"),
        ({"id": "x", "where": {"sentiment": {"label": "furious"}}}, "where.sentiment.label[0]"),
        ({"id": "x", "where": {"purchased": {"count": {"gte": 5, "lt": 5}}}}, "where.purchased.count: contradictory"),
        ({"id": "x", "where": {"rfm": {}}}, "where.rfm: give at least one of"),
        ({"id": "x", "where": {"likes": {"qid": "Berlin"}}}, "where.likes.qid: not a Wikidata QID"),
        ({"id": "x", "where": {"religion": "Q1"}}, "where.religion: religion is a special category"),
        ({"id": "x", "where": {"any": []}}, "where.any: expected a non-empty list"),
        ({"id": "x", "where": {"not": {"likes": "Q1", "dislikes": "Q2"}}}, "where.not: a condition is a mapping"),
        ({"id": "x", "where": {"likes": "Q1"}, "cypher": "x"}, "where: give exactly one of"),
        ({"id": "bad id!", "where": {"likes": "Q1"}}, "id: required"),
        ({"id": "x", "where": {"likes": "Q1"}, "min_confidence": 2}, "min_confidence: expected a number"),
        ({"id": "x", "wher": {}}, "wher: unknown key"),
    ],
)
def test_errors_point_at_the_key(definition: dict, expected: str) -> None:
    assert err(definition).startswith(expected)


@pytest.mark.parametrize(
    "cypher",
    [
        "MATCH (u:User) SET u.x = 1 RETURN u.id AS user_id",
        "MATCH (u:User) DETACH DELETE u RETURN 1 AS user_id",
        "CREATE (u:User {id: 'x'}) RETURN u.id AS user_id",
        "MERGE (u:User {id: 'x'}) RETURN u.id AS user_id",
        "MATCH (u:User) REMOVE u.id RETURN u.id AS user_id",
        "LOAD CSV FROM 'file:///x' AS r RETURN r[0] AS user_id",
        "CALL apoc.periodic.iterate('x', 'y', {}) YIELD batches RETURN batches AS user_id",
        "MATCH (u:User) FOREACH (x IN [1] | SET u.x = x) RETURN u.id AS user_id",
        "MATCH (u:User) RETURN u.id AS user_id; MATCH (n) DELETE n",
        "match (u:User) set u.x = 1 return u.id as user_id",
    ],
)
def test_writing_cypher_is_refused_statically(cypher: str) -> None:
    assert "refused" in err({"id": "x", "cypher": cypher})


def test_read_only_cypher_is_accepted_even_with_keywords_in_strings() -> None:
    d = parse_definition({"id": "x", "cypher": "MATCH (u:User) WHERE u.note <> 'SET x' // CREATE\n"
                                               "RETURN u.id AS user_id"})
    assert d.root.leaf.kind == "cypher"
    assert "user_id" in err({"id": "x", "cypher": "MATCH (u:User) RETURN u.id"})


def test_windows_are_relative_to_injected_now() -> None:
    assert Window(within_days=30).bounds(NOW) == ("2024-05-02T00:00:00Z", "2024-06-01T00:00:01Z")
    assert Window(since="2024-01-01T00:00:00+02:00").bounds(NOW) == ("2023-12-31T22:00:00Z", None)
    with pytest.raises(SegmentDefinitionError, match="empty"):
        Window(within_days=10, until="2024-01-01T00:00:00Z").bounds(NOW)


def test_range_semantics() -> None:
    r = Range(gte=2, lt=5)
    assert [r.test(x) for x in (1, 2, 4.9, 5)] == [False, True, True, False]
    assert Range(eq=3).comparisons() == [("=", 3)]


def test_compiled_statements_are_parameterised() -> None:
    hostile = "x'}) DETACH DELETE n //"
    d = parse_definition({"id": "x", "where": {"owns": {"key": hostile, "within_days": 7}}})
    stmt = leaf_statement(d.root.leaf, keyed=True, restricted=False, now=NOW, min_confidence=0.3)
    assert hostile not in stmt.cypher
    assert stmt.params == {"min_conf": 0.3, "since": "2024-05-25T00:00:00Z", "until": "2024-06-01T00:00:01Z"}
    rfm = parse_definition({"id": "x", "where": {"rfm": {"recency_days": {"lte": 30}}}})
    stmt = leaf_statement(rfm.root.leaf, keyed=False, restricted=False, now=NOW, min_confidence=0)
    assert "u.last_purchase_ts >= $recency_0" in stmt.cypher
    assert stmt.params["recency_0"] == "2024-05-02T00:00:00Z"


def test_example_segments_parse() -> None:
    from importlib.resources import files

    folder = files("engine.examples").joinpath("segments")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    assert "churn_risk.yaml" in names
    for name in names:
        load_definition(str(folder.joinpath(name)))


# --- hostile definitions (#16 rows 8-10): bounded before they are parsed ----------------------


def alias_bomb(levels: int) -> str:
    """Each level lists the previous one nine times: 9**levels conditions once the aliases expand."""
    lines = ["id: bomb", "where:", "  all:",
             "    - any: &l0 [" + ", ".join(["{likes: {key: x}}"] * 9) + "]"]
    lines += [f"    - any: &l{i} [" + ", ".join([f"{{any: *l{i - 1}}}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def refused(text: str) -> str:
    with pytest.raises(SegmentDefinitionError) as info:
        load_definition(text)
    return str(info.value)


def test_an_alias_bomb_is_measured_without_expanding_it() -> None:
    assert "too large" in refused(alias_bomb(7))  # 9**7 ≈ 4.8 million conditions
    assert "more than 100 YAML aliases" in refused("id: a\nwhere: &x {likes: {key: x}}\nn: [" +
                                                   ", ".join(["*x"] * 101) + "]\n")
    assert "refers to a mapping or list that contains it" in refused("id: s\nwhere: &a {all: [*a]}\n")
    # aliases within the limits are YAML as usual
    d = load_definition("id: ok\nwhere:\n  any:\n    - &tea {likes: {key: tea}}\n    - not: *tea\n")
    assert [lf.path for lf in d.root.leaves()] == ["where.any[0].likes", "where.any[1].not.likes"]


@pytest.mark.parametrize("depth", [40, 3_000, 100_000])
def test_deep_nesting_is_refused_with_a_message(depth: int) -> None:
    text = "id: deep\nwhere: " + "{not: " * depth + "{likes: {key: x}}" + "}" * depth + "\n"
    assert "too deeply nested (more than 32 levels)" in refused(text)
    nested: dict = {"likes": {"key": "x"}}
    for _ in range(depth):
        nested = {"not": nested}
    assert "too deeply nested" in err({"id": "deep", "where": nested})
    ok: dict = {"likes": {"key": "x"}}
    for _ in range(20):
        ok = {"not": ok}
    assert len(parse_definition({"id": "ok", "where": ok}).root.leaves()) == 1


def test_thousands_of_clauses_are_refused_with_a_clear_error() -> None:
    same = [{"likes": {"key": "x"}}] * 10_000
    assert err({"id": "many", "where": {"all": same}}) == (
        "where.all: 10,000 conditions: at most 200 in a definition")
    spread = {"all": [{"any": [{"likes": {"key": f"k{i}-{j}"}} for j in range(150)]} for i in range(2)]}
    assert err({"id": "spread", "where": spread}) == "where: 300 conditions: at most 200 in a definition"
    assert len(parse_definition({"id": "fine", "where": {"all": same[:200]}}).root.leaves()) == 200
