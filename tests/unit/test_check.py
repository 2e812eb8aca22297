"""The consistency rules as pure functions: no database, facts in, resolutions out."""

from __future__ import annotations

from engine.check import (
    FactRef,
    is_surface_variant,
    resolve_exclusive,
    supersede_functional,
    surface_variants,
    with_variant_evidence,
)


def fact(pred: str, key: str, *, user: str = "u", seen: str = "2024-01-01T00:00:00Z", conf: float = 0.8,
         label: str | None = None, lang: str = "en", confirmed: bool = False) -> FactRef:
    return FactRef(user_id=user, predicate=pred, target_label="Entity", key=key, label=label or key,
                   confidence=conf, valid_from=seen, last_seen=seen, confirmed=confirmed,
                   **{f"label_{lang}": label or key})


def shanghai(**kw: object) -> FactRef:
    return fact("LIVES_IN", "Q8686", label="上海", lang="zh", seen="2024-09-09T10:00:00Z", conf=0.9, **kw)


def test_functional_keeps_the_newest_and_supersedes_the_rest() -> None:
    old, mid, new = (fact("LIVES_IN", k, seen=f"202{i}-01-01T00:00:00Z") for i, k in enumerate(["Q1", "Q2", "Q3"]))
    (conflict,) = supersede_functional([mid, new, old])
    assert conflict.rule == "functional" and conflict.resolution == "superseded"
    assert conflict.winner == "LIVES_IN:Q3"
    assert {c.fact.key for c in conflict.changes} == {"Q1", "Q2"}
    assert all(c.new_status == "superseded" and c.valid_to == new.valid_from for c in conflict.changes)


def test_functional_ties_on_time_go_to_the_more_confident() -> None:
    weak, strong = fact("LIVES_IN", "Q1", conf=0.4), fact("LIVES_IN", "Q2", conf=0.9)
    (conflict,) = supersede_functional([weak, strong])
    assert conflict.winner == "LIVES_IN:Q2" and [c.fact.key for c in conflict.changes] == ["Q1"]


def test_functional_rules_are_per_user_and_per_predicate() -> None:
    facts = [fact("LIVES_IN", "Q1", user="a"), fact("LIVES_IN", "Q2", user="b"), fact("LIKES", "Q1"),
             fact("LIKES", "Q2")]
    assert supersede_functional(facts) == []


def test_conflict_ids_are_stable_whatever_the_order() -> None:
    facts = [fact("LIVES_IN", "Q1"), fact("LIVES_IN", "Q2", seen="2025-01-01T00:00:00Z")]
    assert supersede_functional(facts)[0].id == supersede_functional(facts[::-1])[0].id


def test_exclusive_pair_on_one_object_keeps_the_newer() -> None:
    likes = fact("LIKES", "Q8", seen="2023-01-01T00:00:00Z")
    dislikes = fact("DISLIKES", "Q8", seen="2024-06-01T00:00:00Z")
    (conflict,) = resolve_exclusive([likes, dislikes])
    assert conflict.rule == "exclusive" and conflict.winner == "DISLIKES:Q8"
    assert [(c.fact.predicate, c.new_status) for c in conflict.changes] == [("LIKES", "superseded")]


def test_exclusive_needs_the_same_object_and_user() -> None:
    assert resolve_exclusive([fact("LIKES", "Q8"), fact("DISLIKES", "Q9")]) == []
    assert resolve_exclusive([fact("LIKES", "Q8", user="a"), fact("DISLIKES", "Q8", user="b")]) == []


def test_a_nil_variant_of_a_linked_place_does_not_supersede_it() -> None:
    linked = shanghai()
    variant = fact("LIVES_IN", "nil:place:在上海", label="在上海", lang="zh", seen="2024-10-20T10:00:00Z", conf=0.95)
    (conflict,) = surface_variants([linked, variant])
    assert conflict.rule == "surface_variant" and conflict.winner == "LIVES_IN:Q8686"
    assert [(c.fact.key, c.new_status) for c in conflict.changes] == [("nil:place:在上海", "superseded")]
    rest = with_variant_evidence([linked], [conflict])
    assert supersede_functional(rest) == []
    assert rest[0].last_seen == variant.last_seen  # the restatement keeps the linked value current


def test_variant_evidence_makes_the_linked_value_win_against_an_older_other_value() -> None:
    beijing = fact("LIVES_IN", "Q956", label="北京", lang="zh", seen="2024-10-01T00:00:00Z")
    variant = fact("LIVES_IN", "nil:place:住在上海", label="住在上海", lang="zh", seen="2024-11-01T00:00:00Z")
    conflicts = surface_variants([shanghai(), beijing, variant])
    (functional,) = supersede_functional(with_variant_evidence([shanghai(), beijing], conflicts))
    assert functional.winner == "LIVES_IN:Q8686"
    assert [c.fact.key for c in functional.changes] == ["Q956"]


def test_whole_words_and_the_same_language_decide_a_variant() -> None:
    york = fact("LIVES_IN", "Q60", label="New York", seen="2024-01-01T00:00:00Z")
    assert is_surface_variant(fact("LIVES_IN", "nil:place:new york city", label="New York City"), york)
    assert is_surface_variant(fact("LIVES_IN", "nil:place:york", label="york"), york)
    assert not is_surface_variant(fact("LIVES_IN", "nil:place:newark", label="Newark"), york)
    assert not is_surface_variant(fact("LIVES_IN", "nil:place:ork", label="ork"), york)  # inside a word
    # the same letters in another language's label say nothing
    assert not is_surface_variant(fact("LIVES_IN", "nil:place:new york", label="New York", lang="es"), york)


def test_what_is_not_a_variant() -> None:
    linked = shanghai()
    other_user = fact("LIVES_IN", "nil:place:在上海", label="在上海", lang="zh", user="v")
    other_pred = fact("WORKS_AS", "nil:occupation:上海老师", label="上海老师", lang="zh")
    one_char = fact("LIVES_IN", "nil:place:海", label="海", lang="zh")
    confirmed = fact("LIVES_IN", "nil:place:在上海", label="在上海", lang="zh", confirmed=True)
    for candidate in (other_user, other_pred, one_char, confirmed):
        assert not is_surface_variant(candidate, linked)
    # a NIL value never hosts variants: only a linked value does
    assert not is_surface_variant(linked, fact("LIVES_IN", "nil:place:上海市", label="上海市", lang="zh"))


def test_a_linked_variant_counts_only_when_less_confident() -> None:
    linked = shanghai()
    weaker = fact("LIVES_IN", "Q1", label="上海市", lang="zh", conf=0.5, seen="2025-01-01T00:00:00Z")
    stronger = fact("LIVES_IN", "Q1", label="上海市", lang="zh", conf=0.95, seen="2025-01-01T00:00:00Z")
    assert is_surface_variant(weaker, linked) and not is_surface_variant(stronger, linked)
    (conflict,) = surface_variants([linked, weaker])  # the newer but weaker link does not supersede 上海
    assert conflict.winner == "LIVES_IN:Q8686"
    # names that do not overlap are different values: the functional rule decides, newest wins
    beijing = fact("LIVES_IN", "Q956", label="北京", lang="zh", conf=0.5, seen="2025-01-01T00:00:00Z")
    assert surface_variants([linked, beijing]) == []
    assert supersede_functional([linked, beijing])[0].winner == "LIVES_IN:Q956"


def test_variants_only_for_functional_predicates() -> None:
    dog = fact("HAS_PET", "Q144", label="dog")
    assert surface_variants([dog, fact("HAS_PET", "nil:animal:two dogs", label="two dogs")]) == []
