"""The review loop on the real embedded FalkorDB: sampling, judging (effects on the graph),
quality numbers against a hand-computed batch, the drift alert, training export, forget."""

from __future__ import annotations

import json
import math

import pytest

from engine.check import check_users
from engine.persona import forget_user, get_persona
from engine.pipeline import apply_fact_lines
from engine.review import (
    DocumentJudgement,
    ReviewConflict,
    ReviewGone,
    ReviewInvalid,
    ReviewNotFound,
    export_training,
    get_batch,
    get_item,
    judge_document,
    quality_report,
    sample_batch,
)
from engine.segment import apply_definition, run_segment
from engine.train.examples import review_examples
from tests import reviewdata
from tests.factlines import fact

pytestmark = pytest.mark.integration


def sampled(store, settings, **kw) -> dict[str, dict]:
    reviewdata.load(store, settings)
    report = sample_batch(store, 10, since="2024-01-01", seed=kw.pop("seed", 1), **kw)
    assert report.batch.size == 4 and report.pool == 4
    return {d: get_item(store, report.batch.id, d).model_dump() for d in reviewdata.DOCS} | {
        "_batch": {"id": report.batch.id}}


def judge_all(store, settings, items, who: str = "alice") -> None:
    for doc, body in reviewdata.judgements(items).items():
        judge_document(store, settings, items["_batch"]["id"], doc, DocumentJudgement(**body), who)


def edge(store, user: str, predicate: str, obj: str, lang: str | None = None) -> dict:
    rows = store.ro_query(f"MATCH (u:User {{id: $u}})-[f:{predicate}]->(o {{key: $k}}) RETURN properties(f)",
                          {"u": user, "k": reviewdata.key_of(predicate, obj, lang)}).rows
    assert rows, f"no {predicate} {obj} for {user}"
    return rows[0][0]


def test_sample_is_seeded_stratified_and_freezes_the_engine_facts(store, settings) -> None:
    reviewdata.load(store, settings)
    a = sample_batch(store, 2, since="2024-01-01", stratify=["lang"], seed=7, name="a")
    assert a.strata == {"en": 1, "es": 1}  # two languages, one each
    detail = get_batch(store, "a")
    assert [i.position for i in detail.items] == [0, 1] and all(i.state == "pending" for i in detail.items)
    # the rest of the pool: documents already in a batch are not sampled again
    b = sample_batch(store, 10, since="2024-01-01", seed=7, name="b")
    assert b.batch.size == 2
    assert {i.doc_id for i in get_batch(store, "a").items} | {i.doc_id for i in get_batch(store, "b").items} == set(
        reviewdata.DOCS)
    item = get_item(store, "b" if "d1" in {i.doc_id for i in get_batch(store, "b").items} else "a", "d1")
    assert item.sentiment == "positive" and item.text.startswith("I love jazz")
    jazz = next(f for f in item.facts if f.predicate == "LIKES")
    assert item.text[jazz.span[0]:jazz.span[1]].lower() == "jazz" and jazz.tier == "encoder"
    with pytest.raises(ReviewInvalid, match="stratify"):
        sample_batch(store, 1, stratify=["colour"])
    with pytest.raises(ReviewInvalid, match="no documents"):
        sample_batch(store, 1, since="2024-01-01")  # every document is in a batch


def test_same_seed_same_sample(store, settings) -> None:
    reviewdata.load(store, settings)
    first = sample_batch(store, 2, since="2024-01-01", seed=3, name="x")
    ids = [i.doc_id for i in get_batch(store, "x").items]
    store.query("MATCH (n) WHERE n:ReviewBatch OR n:ReviewItem DETACH DELETE n")
    again = sample_batch(store, 2, since="2024-01-01", seed=3, name="x")
    assert ids == [i.doc_id for i in get_batch(store, "x").items] and first.strata == again.strata


def test_judgements_change_the_graph(store, settings) -> None:
    items = sampled(store, settings)
    judge_all(store, settings, items)
    rain = edge(store, "ana", "LIKES", "rain")
    assert rain["status"] == "rejected" and rain["rejected_by"] == "alice" and rain["status_before_review"] == "active"
    jazz = edge(store, "ana", "LIKES", "jazz")
    assert jazz["confirmed"] is True and jazz["confirmed_by"] == "alice" and jazz["status"] == "active"
    # the fix and the missing facts went through fusion with the reviewer as source
    gato = edge(store, "luis", "HAS_PET", "gato", "es")  # a Spanish document: gato → Q146 (cat)
    assert gato["status"] == "active" and gato["confirmed"] is True and gato["review_source"] == "review:alice"
    assert gato["docs"] == ["d3"] and gato["confidence"] == 1.0
    assert edge(store, "luis", "HAS_PET", "perro")["status"] == "rejected"
    assert edge(store, "ana", "DISLIKES", "rain")["status"] == "active"
    assert edge(store, "luis", "WORKS_AS", "profesora")["confirmed"] is True
    doc = store.ro_query("MATCH (d:Document {id: 'd2'}) RETURN properties(d)").rows[0][0]
    assert doc["sentiment"] == "negative" and doc["sentiment_engine"] == "positive"
    item = get_item(store, items["_batch"]["id"], "d2")
    assert item.state == "done" and item.rev == 1 and item.judged_by == "alice"
    assert {j.kind for j in item.judgements} == {"fact", "missing", "sentiment"}
    assert all(j.reviewer == "alice" and j.ts for j in item.judgements)
    assert item.current_status[reviewdata.ref(items["d2"], "LIKES", "rain")] == "rejected"

    # new evidence does not revive a rejected fact
    apply_fact_lines(store, settings, [fact(doc_id="d9", user_id="ana", ts="2025-01-01T00:00:00Z",
                                            predicate="LIKES", object="rain", text="rain again")])
    assert edge(store, "ana", "LIKES", "rain")["status"] == "rejected"

    # reversible: judged correct again, the fact is back as it was
    body = reviewdata.judgements(items)["d2"] | {"rev": 1}
    body["facts"][0]["verdict"] = "correct"
    judge_document(store, settings, items["_batch"]["id"], "d2", DocumentJudgement(**body), "bob")
    rain = edge(store, "ana", "LIKES", "rain")
    assert rain["status"] == "active" and rain["confirmed"] is True and rain["confirmed_by"] == "bob"


def test_rejected_facts_leave_segments(store, settings) -> None:
    items = sampled(store, settings)
    apply_definition(store, {"id": "tea", "where": {"likes": {"key": reviewdata.key_of("LIKES", "tea")}}})
    run_segment(store, "tea")
    members = lambda: [r[0] for r in store.ro_query(  # noqa: E731
        "MATCH (u:User)-[m:MEMBER_OF]->(:Segment {id: 'tea'}) WHERE m.left_at IS NULL RETURN u.id").rows]
    assert members() == ["ana"]
    body = reviewdata.judgements(items)["d2"]
    body["facts"][1]["verdict"] = "wrong"
    judge_document(store, settings, items["_batch"]["id"], "d2", DocumentJudgement(**body), "alice")
    run_segment(store, "tea")
    assert members() == []


def test_confirmed_fact_is_not_superseded_by_a_less_confident_rule_decision(store, settings) -> None:
    items = sampled(store, settings)
    judge_all(store, settings, items)  # LIVES_IN Berlin confirmed (confidence 0.7)
    apply_fact_lines(store, settings, [fact(doc_id="d8", user_id="ana", ts="2025-02-01T00:00:00Z",
                                            predicate="LIVES_IN", object="Paris", confidence=0.5)])
    facts = {(f.predicate, f.label): f.status for f in get_persona(store, "ana").facts}
    assert facts[("LIVES_IN", "Berlin")] == "active" and facts[("LIVES_IN", "Paris")] == "superseded"
    # as confident as the confirmed fact: the newer evidence wins as usual
    apply_fact_lines(store, settings, [fact(doc_id="d7", user_id="ana", ts="2025-03-01T00:00:00Z",
                                            predicate="LIVES_IN", object="Rome", confidence=0.9)])
    check_users(store, ["ana"])
    facts = {(f.predicate, f.label): f.status for f in get_persona(store, "ana").facts}
    assert facts[("LIVES_IN", "Rome")] == "active" and facts[("LIVES_IN", "Berlin")] == "superseded"


def test_bad_judgements_are_refused_and_write_nothing(store, settings) -> None:
    items = sampled(store, settings)
    batch = items["_batch"]["id"]
    good = reviewdata.judgements(items)

    def refused(doc: str, body: dict, error: type, fragment: str) -> None:
        before = store.ro_query("MATCH ()-[f]->() RETURN collect(properties(f))").rows[0][0]
        with pytest.raises(error, match=fragment):
            judge_document(store, settings, batch, doc, DocumentJudgement(**body), "alice")
        assert store.ro_query("MATCH ()-[f]->() RETURN collect(properties(f))").rows[0][0] == before
        assert store.ro_query("MATCH (j:Judgement) RETURN count(j)").scalar() == 0
        assert get_item(store, batch, doc).rev == 0

    refused("d1", good["d1"] | {"facts": good["d1"]["facts"][:1]}, ReviewInvalid, "no verdict")
    refused("d1", good["d1"] | {"facts": [*good["d1"]["facts"], {"ref": "LIKES:nope", "verdict": "wrong"}]},
            ReviewInvalid, "not one of document")
    bad_fix = json.loads(json.dumps(good["d3"]))
    bad_fix["facts"][1]["predicate"] = "OWNS_SPACESHIP"
    refused("d3", bad_fix, ReviewInvalid, "unknown predicate")
    refused("d2", good["d2"] | {"missing": [{"predicate": "DISLIKES", "object": "snow", "evidence": "snow"}]},
            ReviewInvalid, "not in the document's text")
    refused("d4", good["d4"] | {"missing": [{"predicate": "WORKS_AS", "object": "x", "span": [4, 99]}]},
            ReviewInvalid, "not in the text")
    refused("d1", good["d1"] | {"sentiment": {"verdict": "wrong", "label": "positive"}}, ReviewInvalid,
            "engine's label")
    refused("d1", good["d1"] | {"rev": 5}, ReviewConflict, "reload")

    # a fact that no longer exists
    store.query("MATCH (u:User {id: 'ana'})-[f:LIKES]->(o) WHERE 'd1' IN f.docs DELETE f")
    refused("d1", good["d1"], ReviewConflict, "no longer exists")


def test_second_reviewer_on_the_same_document_gets_a_conflict(store, settings) -> None:
    items = sampled(store, settings)
    body = DocumentJudgement(**reviewdata.judgements(items)["d1"])
    judge_document(store, settings, items["_batch"]["id"], "d1", body, "alice")
    with pytest.raises(ReviewConflict, match="judged by alice"):
        judge_document(store, settings, items["_batch"]["id"], "d1", body, "bob")
    assert get_item(store, items["_batch"]["id"], "d1").judged_by == "alice"


def test_report_matches_the_hand_computed_batch(store, settings) -> None:
    items = sampled(store, settings)
    judge_all(store, settings, items)
    (b,) = quality_report(store).batches
    m = b.metrics
    assert b.judged == 4 and b.size == 4
    # TP: jazz, Berlin, tea, Madrid = 4 · FP: rain (wrong), perro (fixed) = 2 · FN: gato, DISLIKES rain, profesora = 3
    assert (m.facts.tp, m.facts.fp, m.facts.fn) == (4, 2, 3)
    assert m.facts.precision.value == pytest.approx(4 / 6)
    assert m.facts.recall.value == pytest.approx(4 / 7)
    assert m.facts.f1.value == pytest.approx(8 / 13)
    # Wilson 95% for 4/6: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964
    z, n, p = 1.959964, 6, 4 / 6
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (m.facts.precision.low, m.facts.precision.high) == pytest.approx((centre - half, centre + half), abs=1e-5)
    assert (m.facts.precision.low, m.facts.precision.high) == pytest.approx((0.3000, 0.9032), abs=1e-4)
    assert m.facts.f1.low <= 8 / 13 <= m.facts.f1.high and m.facts.f1.high - m.facts.f1.low > 0.2
    assert "wide interval" in b.note
    langs = {s.key: s for s in m.by_lang}
    assert (langs["en"].tp, langs["en"].fp, langs["en"].fn) == (3, 1, 1) and langs["en"].f1.value == 0.75
    assert (langs["es"].tp, langs["es"].fp, langs["es"].fn) == (1, 1, 2) and langs["es"].f1.value == pytest.approx(0.4)
    preds = {s.key: (s.tp, s.fp, s.fn) for s in m.by_predicate}
    assert preds == {"LIKES": (2, 1, 0), "LIVES_IN": (2, 0, 0), "HAS_PET": (0, 1, 1), "DISLIKES": (0, 0, 1),
                     "WORKS_AS": (0, 0, 1)}
    tiers = {s.key: (s.tp, s.fp, s.fn, s.precision.value) for s in m.by_tier}
    assert tiers == {"encoder": (3, 1, None, 0.75), "llm": (1, 1, None, 0.5)}
    # sentiment (gold, engine): (pos, pos) (neg, pos) (neu, neu) (neu, neu) → F1 neg 0, neu 1, pos 2/3
    assert m.sentiment.macro_f1.value == pytest.approx((0 + 1 + 2 / 3) / 3) and m.sentiment.accuracy == 0.75


def test_drift_alert_when_f1_drops_below_the_previous_interval(store, settings) -> None:
    from datetime import UTC, datetime

    reviewdata.load(store, settings)
    sample_batch(store, 2, since="2024-05-04", seed=1, name="may", now=datetime(2024, 5, 31, tzinfo=UTC))
    for doc in ("d3", "d4"):  # everything right: F1 1.0 [1.0, 1.0]
        item = get_item(store, "may", doc).model_dump()
        body = {"rev": 0, "sentiment": {"verdict": "correct"},
                "facts": [{"ref": f["ref"], "verdict": "correct"} for f in item["facts"]]}
        judge_document(store, settings, "may", doc, DocumentJudgement(**body), "alice")
    assert quality_report(store).alert is None
    sample_batch(store, 2, since="2024-01-01", seed=1, name="june", now=datetime(2024, 6, 30, tzinfo=UTC))
    for doc in ("d1", "d2"):  # everything wrong: F1 0
        item = get_item(store, "june", doc).model_dump()
        body = {"rev": 0, "sentiment": {"verdict": "correct"},
                "facts": [{"ref": f["ref"], "verdict": "wrong"} for f in item["facts"]]}
        judge_document(store, settings, "june", doc, DocumentJudgement(**body), "alice")
    report = quality_report(store)
    assert [b.batch_id for b in report.batches] == ["may", "june"]
    assert report.alert and report.alert.batch_id == "june" and report.alert.previous_batch_id == "may"
    assert report.alert.drop_points == 100.0


def test_export_writes_training_rows_that_training_reads(store, settings, tmp_path) -> None:
    items = sampled(store, settings)
    judge_all(store, settings, items)
    out = tmp_path / "review.jsonl"
    report = export_training(store, out)
    assert report.documents == 4 and report.sentiment_examples == 4 and report.fact_examples == 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    d2 = next(r for r in rows if r.get("text") == reviewdata.DOCS["d2"][3] and "spans" in r)
    text = d2["text"]
    assert [(text[s["start"]:s["end"]], s["predicate"]) for s in d2["spans"]] == [("rain", "DISLIKES"),
                                                                                  ("tea", "LIKES")]
    assert d2["split"] == "train" and d2["source"] == f"review:{items['_batch']['id']}"
    sentiment = next(r for r in rows if r.get("text") == text and "label" in r)
    assert sentiment["label"] == 0  # negative
    facts, sentiments = review_examples(out)
    assert len(facts) == 4 and len(sentiments) == 4
    assert {(text[s.start:s.end], s.predicate) for f in facts if f.text == text for s in f.spans} == {
        ("rain", "DISLIKES"), ("tea", "LIKES")}


def test_forget_removes_the_users_judgements(store, settings) -> None:
    items = sampled(store, settings)
    judge_all(store, settings, items)
    batch = items["_batch"]["id"]
    forget_user(store, "ana")
    assert store.ro_query("MATCH (j:Judgement {user_id: 'ana'}) RETURN count(j)").scalar() == 0
    assert store.ro_query("MATCH (i:ReviewItem {user_id: 'ana'}) RETURN count(i)").scalar() == 0
    assert store.ro_query("MATCH (j:Judgement {user_id: 'luis'}) RETURN count(j)").scalar() > 0
    assert {i.doc_id for i in get_batch(store, batch).items} == {"d3", "d4"}
    values = json.dumps([r[0] for r in store.ro_query("MATCH (n) RETURN properties(n)").rows])
    assert "I hate rain" not in values and '"ana"' not in values
    (b,) = quality_report(store).batches
    assert b.metrics.facts.tp == 1  # only luis' documents count now


def test_stale_batch_when_the_document_is_gone(store, settings) -> None:
    items = sampled(store, settings)
    store.query("MATCH (d:Document {id: 'd1'}) DETACH DELETE d")
    with pytest.raises(ReviewGone, match="stale"):
        judge_document(store, settings, items["_batch"]["id"], "d1",
                       DocumentJudgement(**reviewdata.judgements(items)["d1"]), "alice")


def test_review_cypher_passes_neo4j_linter(store, settings, tmp_path) -> None:
    from engine.review.judge import _CONFIRM, _EDGES_BEFORE, _REJECT, _WITHDRAW, edge_statement
    from graph_schema import PREDICATES
    from tests.cypherlint import lint_statements
    from tests.integration.test_cypher_dialect import RecordingStore

    recorder = RecordingStore(store)
    reviewdata.load(recorder, settings)
    report = sample_batch(recorder, 4, since="2024-01-01", stratify=["lang", "predicate", "tier"], seed=1)
    its = {d: get_item(recorder, report.batch.id, d).model_dump() for d in reviewdata.DOCS}
    for doc, body in reviewdata.judgements(its | {"_batch": {"id": report.batch.id}}).items():
        judge_document(recorder, settings, report.batch.id, doc, DocumentJudgement(**body), "alice")
    quality_report(recorder)
    export_training(recorder, tmp_path / "x.jsonl")
    forget_user(recorder, "ana")
    statements = set(recorder.statements)
    statements.update(edge_statement(t, name, p.target.value) for name, p in PREDICATES.items()
                      for t in (_CONFIRM, _REJECT, _WITHDRAW, _EDGES_BEFORE))
    problems = [(r.statement, r.errors) for r in lint_statements(sorted(statements)) if r.errors]
    assert problems == []


# --- hardening (#16): item keys, re-judgement, forget tombstones, seeds, export errors ------------


def legacy_collision(store, settings) -> None:
    """Two batches stored the way items were keyed before: `batch|doc`. Batch `a|b` + document `c`
    (ana's) and batch `a` + document `b|c` (luis') both got the item key `a|b|c`."""
    reviewdata.add_documents(store, settings, {
        "c": ("ana", "en", "2024-05-01T10:00:00Z", "I like tea.", "positive", [("LIKES", "tea", "encoder")]),
        "b|c": ("luis", "en", "2024-06-01T10:00:00Z", "I like jazz.", "positive", [("LIKES", "jazz", "encoder")]),
    })
    sample_batch(store, 1, since="2024-05-15", name="x")  # b|c
    sample_batch(store, 1, since="2024-01-01", name="y")  # c
    for old, new in (("y", "a|b"), ("x", "a")):
        store.query("MATCH (b:ReviewBatch {id: $old}) SET b.id = $new, b.name = $new", {"old": old, "new": new})
        store.query("MATCH (i:ReviewItem {batch_id: $old}) SET i.batch_id = $new, i.id = 'a|b|c'",
                    {"old": old, "new": new})


def test_item_keys_cannot_collide_and_old_colliding_keys_still_read_apart(store, settings, tmp_path) -> None:
    from engine.review.sample import item_id

    assert item_id("a|b", "c") != item_id("a", "b|c")
    legacy_collision(store, settings)
    tea, jazz = get_item(store, "a|b", "c"), get_item(store, "a", "b|c")
    assert (tea.user_id, tea.text) == ("ana", "I like tea.") and (jazz.user_id, jazz.text) == ("luis", "I like jazz.")
    # luis' fact judged wrong: ana's fact is untouched
    judge_document(store, settings, "a", "b|c", DocumentJudgement(
        rev=0, sentiment={"verdict": "correct"}, facts=[{"ref": jazz.facts[0].ref, "verdict": "wrong"}]), "alice")
    assert edge(store, "luis", "LIKES", "jazz")["status"] == "rejected"
    assert edge(store, "ana", "LIKES", "tea")["status"] == "active"
    # judging ana's document keeps the judgements of luis' document
    judge_document(store, settings, "a|b", "c", DocumentJudgement(
        rev=0, sentiment={"verdict": "correct"}, facts=[{"ref": tea.facts[0].ref, "verdict": "correct"}]), "bob")
    assert [(j.kind, j.verdict, j.reviewer) for j in get_item(store, "a", "b|c").judgements] == [
        ("fact", "wrong", "alice"), ("sentiment", "correct", "alice")]
    assert [j.reviewer for j in get_item(store, "a|b", "c").judgements] == ["bob", "bob"]
    report = export_training(store, tmp_path / "ab.jsonl", batch_id="a|b")
    rows = [json.loads(line) for line in (tmp_path / "ab.jsonl").read_text().splitlines()]
    assert report.documents == 1 and {r["text"] for r in rows} == {"I like tea."}
    with pytest.raises(ReviewInvalid, match="name"):
        sample_batch(store, 1, since="2024-01-01", name="a|b")


def judged_twice(store, settings, *, legacy: bool = False) -> tuple[dict, object]:
    """alice adds a fix and two missing facts to d6 (one new, one ana already had from d2); then bob
    judges d6 "all correct, nothing missing". `legacy`: alice's judgement is stored as before the
    judgements kept what they added (no resolved keys, no prior state)."""
    reviewdata.load(store, settings)
    reviewdata.add_documents(store, settings, {"d6": ("ana", "en", "2024-05-06T10:00:00Z",
                                                      "I hate rain, I love tea and my cat.", "positive",
                                                      [("LIKES", "rain", "encoder")])})
    sample_batch(store, 10, since="2024-01-01", name="b")
    item = get_item(store, "b", "d6")
    tea_before = edge(store, "ana", "LIKES", "tea")
    judge_document(store, settings, "b", "d6", DocumentJudgement(
        rev=0, sentiment={"verdict": "wrong", "label": "negative"},
        facts=[{"ref": item.facts[0].ref, "verdict": "fix", "predicate": "DISLIKES", "object": "rain"}],
        missing=[{"predicate": "LIKES", "object": "tea", "evidence": "tea"},
                 {"predicate": "HAS_PET", "object": "cat", "evidence": "cat"}]), "alice")
    assert edge(store, "ana", "HAS_PET", "cat")["confirmed"] is True
    assert edge(store, "ana", "LIKES", "tea")["docs"] == ["d2", "d6"]
    if legacy:
        store.query("MATCH (j:Judgement) REMOVE j.added_key, j.added_label, j.added_predicate, j.prior_confidence, "
                    "j.prior_confirmed")
    judge_document(store, settings, "b", "d6", DocumentJudgement(
        rev=1, sentiment={"verdict": "correct"}, facts=[{"ref": item.facts[0].ref, "verdict": "correct"}]), "bob")
    return tea_before, item


@pytest.mark.parametrize("legacy", [False, True], ids=["judgements-now", "judgements-stored-before"])
def test_a_new_judgement_withdraws_what_the_superseded_one_added(store, settings, legacy: bool) -> None:
    tea_before, item = judged_twice(store, settings, legacy=legacy)
    for predicate, obj in (("DISLIKES", "rain"), ("HAS_PET", "cat")):  # only d6 supported them: withdrawn
        e = edge(store, "ana", predicate, obj)
        assert e["status"] == "rejected" and e["confirmed"] is False and e["withdrawn_by"] == "bob"
        assert "withdrawn: added by alice" in e["status_reason"] and "bob" in e["status_reason"]
    tea = edge(store, "ana", "LIKES", "tea")  # d2 still supports it: d6 leaves its evidence
    assert (tea["status"], tea["docs"], tea["evidence_count"], tea["confirmed"]) == ("active", ["d2"], 1, False)
    if not legacy:  # the confidence before the review was kept with the judgement
        assert tea["confidence"] == tea_before["confidence"]
    rain = edge(store, "ana", "LIKES", "rain")
    assert rain["status"] == "active" and rain["confirmed_by"] == "bob"
    assert store.ro_query("MATCH (d:Document {id: 'd6'}) RETURN d.sentiment").scalar() == "positive"
    assert {j.reviewer for j in get_item(store, "b", "d6").judgements} == {"bob"}
    assert "HAS_PET" not in {f.predicate for f in get_persona(store, "ana").facts if f.status == "active"}
    # and alice again, adding the cat back: the fact is active and confirmed again
    judge_document(store, settings, "b", "d6", DocumentJudgement(
        rev=2, sentiment={"verdict": "correct"}, facts=[{"ref": item.facts[0].ref, "verdict": "correct"}],
        missing=[{"predicate": "HAS_PET", "object": "cat", "evidence": "cat"}]), "alice")
    cat = edge(store, "ana", "HAS_PET", "cat")
    assert cat["status"] == "active" and cat["confirmed"] is True


def test_forgotten_documents_leave_tombstones_answered_gone(store, settings) -> None:
    items = sampled(store, settings)
    batch = items["_batch"]["id"]
    judge_all(store, settings, items)
    forget_user(store, "ana")
    detail = get_batch(store, batch)
    assert (detail.batch.size, detail.batch.forgotten, detail.batch.judged) == (4, 2, 2)
    assert quality_report(store).batches[0].size == 4
    for doc in ("d1", "d2"):
        with pytest.raises(ReviewGone, match="stale"):
            get_item(store, batch, doc)
        with pytest.raises(ReviewGone, match="stale"):
            judge_document(store, settings, batch, doc, DocumentJudgement(**reviewdata.judgements(items)[doc]),
                           "alice")
    with pytest.raises(ReviewNotFound):
        get_item(store, batch, "d99")
    assert get_item(store, batch, "d3").of == 4
    tombstones = store.ro_query("MATCH (i:ReviewItem {state: 'forgotten'}) RETURN properties(i)").rows
    assert len(tombstones) == 2 and all(set(t[0]) == {"id", "batch_id", "position", "state"} for t in tombstones)
    values = json.dumps([r[0] for r in store.ro_query("MATCH (n) RETURN properties(n)").rows])
    assert '"d1"' not in values and '"d2"' not in values and '"ana"' not in values


def test_seed_beyond_64_bits_and_unknown_export_batch_are_refused(store, settings, tmp_path) -> None:
    reviewdata.load(store, settings)
    with pytest.raises(ReviewInvalid, match="seed"):
        sample_batch(store, 2, since="2024-01-01", seed=2**63)
    assert store.ro_query("MATCH (b:ReviewBatch) RETURN count(b)").scalar() == 0
    assert sample_batch(store, 2, since="2024-01-01", seed=2**63 - 1, name="big").batch.seed == 2**63 - 1
    assert store.ro_query("MATCH (b:ReviewBatch {id: 'big'}) RETURN b.seed").scalar() == 2**63 - 1
    with pytest.raises(ReviewNotFound, match="nope"):
        export_training(store, tmp_path / "x.jsonl", batch_id="nope")
    assert not (tmp_path / "x.jsonl").exists()
