"""The demo pipeline (what `make demo` runs) end to end on the real embedded FalkorDB."""

from __future__ import annotations

import pytest

from engine.demo import run_demo
from engine.persona import get_persona
from engine.segment import segment_members

pytestmark = pytest.mark.integration


def test_demo_builds_personas_rules_behaviour_and_segments(store, settings) -> None:
    report = run_demo(store, settings)
    assert {"ana", "luis", "mei"} <= set(report.users)
    assert report.events >= 5
    ana = {(f.predicate, f.qid, f.status) for f in get_persona(store, "ana").facts}
    assert ("LIVES_IN", "Q64", "active") in ana and ("LIVES_IN", "Q956", "superseded") in ana
    assert ("PURCHASED", "Q5372", None) in {(p, q, None) for p, q, _ in ana}
    rules = {c.rule for c in get_persona(store, "luis").conflicts}
    assert "vegetarian_likes_meat" in rules
    # Every demo segment has the members the example texts imply: ana likes basketball (篮球),
    # luis football, mei tennis; only mei still lives in China (ana moved Beijing → Berlin); nobody
    # spent 500 with a recent negative document (churn-risk stays empty without the LLM texts).
    members = {seg: {m.user_id for m in segment_members(store, seg)} for seg in report.segments}
    assert members == {
        "sport-fans": {"ana", "luis", "mei"},
        "sport-fans-cn": {"mei"},
        "churn-risk": set(),
    }
    assert report.segments == {seg: len(users) for seg, users in members.items()}
    mei = {(f.predicate, f.qid) for f in get_persona(store, "mei").facts}
    assert ("LIKES", "Q847") in mei  # tennis the sport, not a tennis-court stub


def test_demo_texts_keep_linked_places_and_no_junk_objects(store, settings) -> None:
    """The example texts too, through the encoder tier (no LLM): mei's "我住在上海" restates the linked
    Shanghai instead of superseding it with a NIL "在上海", so she stays in sport-fans-cn; her
    complaint text gives no quality ("慢") or complaint word ("投诉") as a disliked thing."""
    pytest.importorskip("torch", reason="the encoder tier needs torch")
    from engine.demo import load_texts

    report = run_demo(store, settings.model_copy(update={"extractor": "encoder"}), texts=load_texts)
    mei = get_persona(store, "mei").facts
    active = {(f.predicate, f.qid or f.key) for f in mei if f.status == "active"}
    assert ("LIVES_IN", "Q8686") in active
    assert not [f for f in mei if f.predicate == "LIVES_IN" and not f.qid and f.status == "active"]
    assert {m.user_id for m in segment_members(store, "sport-fans-cn")} == {"mei"}
    assert report.segments["sport-fans-cn"] == 1
    disliked = {str(f.label) for f in mei if f.predicate == "DISLIKES"}
    assert not disliked & {"慢", "太慢", "投诉"}
