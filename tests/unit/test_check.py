"""The consistency rules as pure functions: no database, facts in, resolutions out."""

from __future__ import annotations

from engine.check import FactRef, resolve_exclusive, supersede_functional


def fact(pred: str, key: str, *, user: str = "u", seen: str = "2024-01-01T00:00:00Z", conf: float = 0.8,
         label: str | None = None) -> FactRef:
    return FactRef(user_id=user, predicate=pred, target_label="Entity", key=key, label=label or key,
                   confidence=conf, valid_from=seen, last_seen=seen)


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
