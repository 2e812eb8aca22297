"""Segments against the real embedded FalkorDB, with context edges from the shipped KB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.contracts import DocumentIn, DocumentSentiment
from engine.fuse import fuse
from engine.ingest import Event
from engine.pipeline import apply_events, apply_fact_lines
from engine.segment import (
    SegmentDefinitionError,
    SegmentNotFound,
    SegmentRunError,
    apply_definition,
    get_segment,
    list_segments,
    parse_definition,
    run_segment,
    segment_members,
)
from engine.segment import service as segment_service
from engine.segment.evaluate import evaluate_definition
from engine.segment.model import Leaf, Node
from tests.factlines import fact

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def members(store, seg_id: str) -> dict[str, str]:
    return {m.user_id: m.reason for m in segment_members(store, seg_id, limit=1000)}


def define_and_run(store, definition: dict, **kw) -> dict[str, str]:
    apply_definition(store, definition)
    run_segment(store, definition["id"], now=kw.get("now", NOW))
    return members(store, definition["id"])


@pytest.fixture
def people(store, settings):
    apply_fact_lines(store, settings, [
        fact(doc_id="d1", user_id="ana", ts="2024-05-01T00:00:00Z", predicate="LIKES", object="basketball"),
        fact(doc_id="d2", user_id="bob", ts="2024-05-01T00:00:00Z", predicate="LIKES", object="Nike",
             object_qid="Q483915"),
        fact(doc_id="d3", user_id="ana", ts="2024-05-02T00:00:00Z", predicate="LIVES_IN", object="Shanghai",
             object_qid="Q8686"),
        fact(doc_id="d4", user_id="bob", ts="2024-05-02T00:00:00Z", predicate="LIVES_IN", object="Berlin",
             object_qid="Q64"),
        fact(doc_id="d5", user_id="cy", ts="2024-05-03T00:00:00Z", predicate="LIVES_IN", object="Beijing",
             object_qid="Q956"),
        fact(doc_id="d5", user_id="cy", ts="2024-05-03T00:00:00Z", predicate="GENDER", value="mujer"),
        fact(doc_id="d6", user_id="cy", ts="2024-05-03T00:00:00Z", predicate="DISLIKES", object="basketball",
             confidence=0.9),
    ])
    return store


def test_descendant_of_sport_follows_the_kb_hierarchy(people) -> None:
    got = define_and_run(people, {"id": "sport", "where": {"likes": {"descendant_of": "Q349"}}})
    assert set(got) == {"ana"}  # bob likes Nike, a brand: not a sport
    assert got["ana"] == "LIKES basketball (Q5372) ⊂ sport (Q349) [docs d1]"


def test_within_follows_located_in(people) -> None:
    got = define_and_run(people, {"id": "cn", "where": {"lives_in": {"within": "Q148"}}})
    assert set(got) == {"ana", "cy"}  # Shanghai and Beijing are in China, Berlin is not
    assert "Shanghai (Q8686) ⊂ People's Republic of China (Q148)" in got["ana"]
    assert set(define_and_run(people, {"id": "de", "where": {"lives_in": {"within": "Q183"}}})) == {"bob"}


def test_all_any_not_literals_and_min_confidence(people) -> None:
    got = define_and_run(people, {"id": "x", "where": {"all": [
        {"lives_in": {"within": "Q148"}},
        {"not": {"dislikes": {"descendant_of": "Q349"}}},
    ]}})
    assert set(got) == {"ana"}
    assert set(define_and_run(people, {"id": "y", "where": {"any": [
        {"gender": "female"}, {"likes": {"qid": "Q483915"}},
    ]}})) == {"cy", "bob"}
    assert set(define_and_run(people, {"id": "z", "where": {"not": {"lives_in": {"within": "Q148"}}}})) == {"bob"}
    # every fact above has confidence 0.8 except cy's dislike (0.9)
    assert set(define_and_run(people, {"id": "hc", "min_confidence": 0.85,
                                       "where": {"any": [{"likes": {}}, {"dislikes": {}}]}})) == {"cy"}


def test_only_active_facts_count(store, settings) -> None:
    apply_fact_lines(store, settings, [fact(doc_id="d1", ts="2020-01-01T00:00:00Z", predicate="LIVES_IN",
                                            object_qid="Q956", object_types=["Q515"])])
    apply_fact_lines(store, settings, [fact(doc_id="d2", ts="2023-01-01T00:00:00Z", predicate="LIVES_IN",
                                            object_qid="Q64", object_types=["Q515"])])
    assert define_and_run(store, {"id": "cn", "where": {"lives_in": {"within": "Q148"}}}) == {}


def _docs(store, rows: list[tuple[str, str, str, str]]) -> None:
    fuse(store, [
        DocumentIn(doc_id=d, user_id=u, ts=datetime.fromisoformat(ts), sentiment=DocumentSentiment(label=label))
        for d, u, ts, label in rows
    ], [])


def test_sentiment_time_window_uses_injected_now(people) -> None:
    _docs(people, [
        ("n1", "ana", "2024-05-20T00:00:00+00:00", "negative"),
        ("n2", "bob", "2024-03-01T00:00:00+00:00", "negative"),
        ("n3", "cy", "2024-05-25T00:00:00+00:00", "positive"),
    ])
    seg = {"id": "neg", "where": {"sentiment": {"label": "negative", "within_days": 30}}}
    got = define_and_run(people, seg)
    assert set(got) == {"ana"}
    assert got["ana"] == "negative sentiment ×1 in last 30d [docs n1]"
    run_segment(people, "neg", now=datetime(2024, 3, 15, tzinfo=UTC))
    assert set(members(people, "neg")) == {"bob"}
    explicit = {"id": "neg2", "where": {"sentiment": {"label": ["negative"], "since": "2024-01-01T00:00:00Z",
                                                      "until": "2024-04-01T00:00:00Z"}}}
    assert set(define_and_run(people, explicit)) == {"bob"}


def test_sentiment_toward_entity(people) -> None:
    _docs(people, [("d1", "ana", "2024-05-01T00:00:00+00:00", "negative")])  # re-scores ana's basketball doc
    _docs(people, [("x9", "ana", "2024-05-02T00:00:00+00:00", "negative"),
                   ("d2", "bob", "2024-05-01T00:00:00+00:00", "positive")])
    got = define_and_run(people, {"id": "t", "where": {"sentiment": {
        "label": "negative", "toward": {"descendant_of": "Q349"}}}})
    assert got == {"ana": "negative sentiment ×1 toward matching entities [docs d1]"}


def _buy(store, user: str, ts: str, amount: float, item: str = "basketball", qid: str | None = "Q5372",
         kind: str = "purchase", event_id: str | None = None) -> None:
    apply_events(store, [Event(user_id=user, type=kind, item=item, item_qid=qid, amount=amount, ts=ts,
                               event_id=event_id)])


def test_behaviour_counts_amounts_windows_and_rfm(people) -> None:
    _buy(people, "ana", "2024-05-10T00:00:00Z", 120, event_id="e1")
    _buy(people, "ana", "2024-05-20T00:00:00Z", 80, event_id="e2")
    _buy(people, "ana", "2024-05-20T00:00:00Z", 80, event_id="e2")  # same event again: no change
    _buy(people, "bob", "2023-01-01T00:00:00Z", 900, event_id="e3")
    _buy(people, "bob", "2024-05-21T00:00:00Z", 50, item="Nike", qid="Q483915", event_id="e4")
    two_recent = {"id": "b2", "where": {"purchased": {"descendant_of": "Q349", "count": {"gte": 2},
                                                       "within_days": 90}}}
    got = define_and_run(people, two_recent)
    assert set(got) == {"ana"}
    assert got["ana"].startswith("PURCHASED ×2 in last 90d: basketball (Q5372) ⊂ sport (Q349)")
    big = {"id": "big", "where": {"purchased": {"descendant_of": "Q349", "amount": {"gte": 500}}}}
    assert set(define_and_run(people, big)) == {"bob"}
    rfm = {"id": "rfm", "where": {"rfm": {"monetary": {"gte": 500}, "recency_days": {"lte": 30}}}}
    assert set(define_and_run(people, rfm)) == {"bob"}
    lapsed = {"id": "lapsed", "where": {"rfm": {"recency_days": {"gte": 60}}}}
    assert set(define_and_run(people, lapsed)) == set()
    # a refund nets out bob's big purchase
    _buy(people, "bob", "2024-05-22T00:00:00Z", 900, kind="refund", event_id="e5")
    run_segment(people, "big", now=NOW)
    assert members(people, "big") == {}


def test_incremental_refresh_adds_and_removes_the_right_users(people, settings, monkeypatch) -> None:
    clock = iter(f"2030-01-01T00:00:{s:02d}Z" for s in range(60))  # strictly increasing run times
    monkeypatch.setattr(segment_service, "wall_clock", lambda: next(clock))
    apply_definition(people, {"id": "cn", "where": {"lives_in": {"within": "Q148"}}})
    first = run_segment(people, "cn", now=NOW)
    assert (first.mode, first.size, first.joined) == ("full", 2, 2)
    apply_fact_lines(people, settings, [
        fact(doc_id="m1", user_id="bob", ts="2024-05-10T00:00:00Z", predicate="LIVES_IN", object_qid="Q956",
             object_types=["Q515"]),
        fact(doc_id="m2", user_id="ana", ts="2024-05-10T00:00:00Z", predicate="LIVES_IN", object_qid="Q64",
             object_types=["Q515"]),
    ])
    second = run_segment(people, "cn", incremental=True, now=NOW)
    assert second.mode == "incremental"
    assert second.evaluated_users == 2  # only ana and bob were touched
    assert (second.joined, second.left, second.size) == (1, 1, 2)
    assert set(members(people, "cn")) == {"bob", "cy"}
    left = people.ro_query(
        "MATCH (u:User {id: 'ana'})-[m:MEMBER_OF]->(:Segment {id: 'cn'}) RETURN m.left_at").scalar()
    assert left == second.run_at
    # nothing touched since: nobody evaluated, nothing changes
    third = run_segment(people, "cn", incremental=True, now=NOW)
    assert (third.evaluated_users, third.joined, third.left, third.size) == (0, 0, 0, 2)
    assert get_segment(people, "cn").size == 2


def test_definition_errors_name_the_key(people) -> None:
    bad = [
        ({"id": "e", "where": {"all": [{"likes": "Q1"}, {"lives_in": {"withn": "Q148"}}]}},
         "where.all[1].lives_in.withn: unknown key"),
        ({"id": "e", "where": {"purchased": {"within_days": -1}}}, "where.purchased.within_days"),
        ({"id": "e", "where": {"sentiment": {"label": "negative", "since": "2024-05-01", "until": "2024-01-01"}}},
         "where.sentiment: since"),
        ({"id": "e", "where": {"likes": {"descendant_of": "Q999999999"}}},
         "where.likes.descendant_of: unknown QID Q999999999"),
        ({"id": "e", "where": {"any": [{"gender": "robot"}]}}, "where.any[0].gender.value[0]"),
        ({"id": "e", "where": {"likez": "Q1"}}, "where.likez: unknown condition"),
    ]
    for definition, expected in bad:
        with pytest.raises(SegmentDefinitionError) as info:
            apply_definition(people, definition)
        assert str(info.value).startswith(expected), str(info.value)
    assert list_segments(people) == []


def test_cypher_segments_are_read_only(people) -> None:
    got = define_and_run(people, {"id": "raw", "cypher":
        "MATCH (u:User)-[:LIVES_IN]->(:Entity {qid: 'Q64'}) RETURN u.id AS user_id, 'lives in Berlin' AS reason"})
    assert got == {"bob": "lives in Berlin"}
    with pytest.raises(SegmentDefinitionError, match="refused"):
        apply_definition(people, {"id": "w", "cypher": "MATCH (u:User) SET u.x = 1 RETURN u.id AS user_id"})
    # past the static check, the database's read-only path still refuses
    sneaky = parse_definition({"id": "s", "cypher": "MATCH (u:User) RETURN u.id AS user_id"})
    leaf = Leaf(kind="cypher", path="cypher", cypher="MATCH (u:User) SET u.hacked = true RETURN u.id AS user_id")
    sneaky = sneaky.model_copy(update={"root": Node(op="leaf", leaf=leaf)})
    with pytest.raises(SegmentRunError, match="read-only"):
        evaluate_definition(people, sneaky, now=NOW)
    assert people.ro_query("MATCH (u:User) WHERE u.hacked RETURN count(u)").scalar() == 0


def test_api_lookup_errors(store) -> None:
    with pytest.raises(SegmentNotFound):
        get_segment(store, "nope")
    with pytest.raises(SegmentNotFound):
        segment_members(store, "nope")
    with pytest.raises(SegmentNotFound):
        run_segment(store, "nope")


def test_redefinition_forces_a_full_run(people) -> None:
    apply_definition(people, {"id": "s", "where": {"lives_in": {"within": "Q148"}}})
    run_segment(people, "s", now=NOW)
    info = apply_definition(people, {"id": "s", "where": {"lives_in": {"within": "Q183"}}})
    assert info.last_run_at is None
    report = run_segment(people, "s", incremental=True, now=NOW)
    assert report.mode == "full"
    assert set(members(people, "s")) == {"bob"}


PAGED_SEGMENTS = [
    {"id": "p-sport", "where": {"likes": {"descendant_of": "Q349"}}},
    {"id": "p-cn-women", "where": {"all": [{"lives_in": {"within": "Q148"}}, {"gender": "female"}]}},
    {"id": "p-not", "where": {"all": [{"any": [{"lives_in": {}}, {"likes": {}}]}, {"not": {"dislikes": {}}}]}},
    {"id": "p-buyers", "where": {"purchased": {"count": {"gte": 1}, "within_days": 90}}},
    {"id": "p-rfm", "where": {"rfm": {"monetary": {"gte": 100}}}},
    {"id": "p-neg", "where": {"sentiment": {"label": "negative"}}},
    {"id": "p-raw", "cypher": "MATCH (u:User) WHERE u.id <> 'cy' RETURN u.id AS user_id, 'raw' AS reason"},
]


def _run_all_paged(store) -> dict[str, dict[str, str]]:
    out = {}
    for definition in PAGED_SEGMENTS:
        out[definition["id"]] = define_and_run(store, definition)
    return out


def test_pages_give_the_same_members_and_reasons(people, monkeypatch) -> None:
    """Every statement shape run page by page (pages of 2 node ids) finds what one page finds, and an
    unchanged re-run writes nothing."""
    from engine.segment import evaluate

    _buy(people, "ana", "2024-05-10T00:00:00Z", 120, event_id="e1")
    _buy(people, "cy", "2024-05-11T00:00:00Z", 30, item="Nike", qid="Q483915", event_id="e2")
    _docs(people, [("n1", "ana", "2024-05-20T00:00:00+00:00", "negative"),
                   ("n2", "bob", "2024-05-20T00:00:00+00:00", "negative")])
    whole = _run_all_paged(people)
    assert whole["p-cn-women"] == {"cy": "GENDER female [docs d5]; "
                                         "LIVES_IN Beijing (Q956) ⊂ People's Republic of China (Q148) [docs d5]"}
    assert set(whole["p-not"]) == {"ana", "bob"} and set(whole["p-buyers"]) == {"ana", "cy"}
    for definition in PAGED_SEGMENTS:
        segment_service.delete_segment(people, definition["id"])
    monkeypatch.setattr(evaluate, "PAGE_ROWS", 2)
    monkeypatch.setattr(segment_service, "PAGE_ROWS", 2)
    assert _run_all_paged(people) == whole
    read_back: list[str] = []
    reads = segment_service.read_rows
    monkeypatch.setattr(segment_service, "read_rows", lambda store, cypher, *a: read_back.append(cypher) or reads(
        store, cypher, *a))
    for definition in PAGED_SEGMENTS:
        again = run_segment(people, definition["id"], now=NOW)
        assert (again.joined, again.left, again.updated, again.size) == (0, 0, 0, len(whole[definition["id"]]))
    assert read_back == []  # unchanged pages: no membership shipped to the client
    # a change on one page: only that user moves
    _buy(people, "bob", "2024-05-12T00:00:00Z", 10, event_id="e3")
    changed = run_segment(people, "p-buyers", now=NOW)
    assert (changed.joined, changed.left, changed.updated, changed.size) == (1, 0, 0, 3)
    _buy(people, "ana", "2024-05-13T00:00:00Z", 120, kind="refund", event_id="e4")
    changed = run_segment(people, "p-buyers", now=NOW)
    assert (changed.joined, changed.left, changed.size) == (0, 1, 2)
    assert set(members(people, "p-buyers")) == {"bob", "cy"}


def test_refresh_users_moves_only_event_driven_segments(people) -> None:
    from engine.segment import refresh_users

    buyers = {"id": "buyers", "where": {"purchased": {"count": {"gte": 1}, "within_days": 90}}}
    assert define_and_run(people, buyers) == {}
    assert set(define_and_run(people, {"id": "cn", "where": {"lives_in": {"within": "Q148"}}})) == {"ana", "cy"}
    before = get_segment(people, "buyers").last_run_at
    _buy(people, "bob", "2024-05-10T00:00:00Z", 20, event_id="e1")
    reports = refresh_users(people, ["bob"], now=NOW)
    assert [(r.segment_id, r.mode, r.joined, r.size) for r in reports] == [("buyers", "users", 1, 1)]
    assert members(people, "buyers") == {"bob": "PURCHASED ×1 in last 90d: basketball (Q5372)"}
    info = get_segment(people, "buyers")
    assert (info.size, info.last_run_at) == (1, before)  # the next incremental run still sees everything since
    assert refresh_users(people, ["nobody"], now=NOW) == []
