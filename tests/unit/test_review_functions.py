"""The review loop's plain functions: intervals, metrics, allocation, sampling, alert, spans,
training rows, named tokens."""

from __future__ import annotations

import json

import pytest

from engine.api.security import token_name
from engine.config import ApiSettings, ConfigError, Settings
from engine.review.export import TRAIN_SENTIMENT_LABELS, training_rows
from engine.review.metrics import (
    DocCounts,
    Interval,
    Judged,
    batch_metrics,
    bootstrap,
    drift_alert,
    f1_of,
    macro_f1,
    slice_quality,
    wilson,
)
from engine.review.sample import Candidate, allocate, locate, stratified_sample


def test_wilson_matches_the_textbook_values() -> None:
    # 8/10 at 95%: 0.4902–0.9433 (Wilson 1927; e.g. Newcombe 1998, table I method 3)
    i = wilson(8, 10)
    assert i.value == 0.8 and (i.low, i.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson(0, 10).low == 0.0 and wilson(10, 10).high == 1.0
    assert wilson(0, 0).value is None
    assert wilson(80, 100).width < wilson(8, 10).width  # more data, narrower


def test_f1_macro_f1_and_bootstrap() -> None:
    assert f1_of(4, 2, 3) == pytest.approx(8 / 13) and f1_of(0, 0, 0) is None
    assert macro_f1([("pos", "pos"), ("neg", "pos"), ("neu", "neu"), ("neu", "neu")]) == pytest.approx(5 / 9)
    assert macro_f1([]) is None
    docs = [DocCounts(tp=1), DocCounts(fp=1), DocCounts(tp=2, fn=1), DocCounts(tp=1)]
    first = bootstrap(docs, lambda d: f1_of(sum(x.tp for x in d), sum(x.fp for x in d), sum(x.fn for x in d)))
    assert first == bootstrap(docs, lambda d: f1_of(sum(x.tp for x in d), sum(x.fp for x in d),
                                                     sum(x.fn for x in d)))  # seeded
    q = slice_quality("all", docs)
    assert q.f1.low <= q.f1.value <= q.f1.high and q.recall.value == pytest.approx(4 / 5)
    tier = slice_quality("encoder", docs, recall=False)
    assert tier.recall is None and tier.f1 is None and tier.fn is None


def test_batch_metrics_counts_fixes_as_a_false_positive_and_a_false_negative() -> None:
    rows = [
        Judged(doc_id="a", lang="en", kind="fact", verdict="correct", predicate="LIKES", tier="encoder"),
        Judged(doc_id="a", lang="en", kind="fact", verdict="fix", predicate="LIKES", fix_predicate="DISLIKES",
               tier="llm"),
        Judged(doc_id="b", lang="es", kind="missing", verdict="added", predicate="WORKS_AS"),
        Judged(doc_id="a", lang="en", kind="sentiment", verdict="correct", engine_label="positive", label="positive"),
        Judged(doc_id="b", lang="es", kind="sentiment", verdict="wrong", engine_label="positive", label="negative"),
        Judged(doc_id="c", lang="es", kind="sentiment", verdict="correct", engine_label="neutral", label="neutral"),
    ]
    m = batch_metrics(rows, {"a": "en", "b": "es", "c": "es"}, resamples=200)
    assert (m.facts.tp, m.facts.fp, m.facts.fn) == (1, 1, 2)
    assert {s.key: (s.tp, s.fp, s.fn) for s in m.by_predicate} == {"LIKES": (1, 1, 0), "DISLIKES": (0, 0, 1),
                                                                   "WORKS_AS": (0, 0, 1)}
    assert {s.key: (s.tp, s.fp) for s in m.by_tier} == {"encoder": (1, 0), "llm": (0, 1)}
    assert m.facts.f1.n == 3  # the document without any fact counts in the bootstrap
    assert m.sentiment.accuracy == pytest.approx(2 / 3)


def test_drift_alert_uses_the_previous_interval_and_the_allowance() -> None:
    may = Interval(value=0.80, low=0.70, high=0.88)
    assert drift_alert([("may", may), ("june", Interval(value=0.66))], points=5) is None  # 4 points below
    alert = drift_alert([("may", may), ("june", Interval(value=0.60))], points=5)
    assert alert and alert.drop_points == pytest.approx(10) and "june" in alert.message
    assert drift_alert([("may", may), ("june", Interval(value=0.60))], points=10) is None
    assert drift_alert([("may", may)], points=5) is None
    assert drift_alert([("may", may), ("june", Interval(value=None))], points=0) is None


def test_allocation_is_proportional_with_one_per_stratum() -> None:
    assert allocate({("en",): 80, ("zh",): 15, ("es",): 5}, 20) == {("en",): 16, ("zh",): 3, ("es",): 1}
    assert allocate({("en",): 98, ("es",): 2}, 10) == {("en",): 9, ("es",): 1}
    assert allocate({("en",): 3, ("es",): 1}, 10) == {("en",): 3, ("es",): 1}  # never more than there is
    assert sum(allocate({("a",): 1, ("b",): 1, ("c",): 1}, 2).values()) == 2


def test_stratified_sample_is_seeded() -> None:
    pool = [Candidate(doc_id=f"d{i}", user_id="u", ts="2024-01-01T00:00:00Z", lang="en" if i % 4 else "es",
                      predicate="LIKES", tier="encoder") for i in range(40)]
    a = stratified_sample(pool, 8, ["lang"], seed=5)
    assert [c.doc_id for c in a] == [c.doc_id for c in stratified_sample(list(reversed(pool)), 8, ["lang"], seed=5)]
    assert [c.doc_id for c in a] != [c.doc_id for c in stratified_sample(pool, 8, ["lang"], seed=6)]
    assert sum(c.lang == "es" for c in a) == 2  # 10 of 40 are es


def test_locate_finds_the_object_in_the_text() -> None:
    assert locate("Just moved to Berlin.", ["Berlin", None]) == (14, 20)
    assert locate("我住在北京，每周打篮球。", ["basketball", "篮球"]) == (9, 11)
    assert locate("I like tea a lot", ["Teas"]) == (7, 10)  # plural Wikidata label
    assert locate("nothing here", ["30-39"]) is None


def test_training_rows_have_the_train_shapes() -> None:
    item = {"batch_id": "b", "lang": "en", "facts": json.dumps([
        {"ref": "LIKES:Q1", "predicate": "LIKES", "target_label": "Entity", "key": "Q1", "label": "tea",
         "span": [7, 10]},
        {"ref": "OWNS:Q2", "predicate": "OWNS", "target_label": "Entity", "key": "Q2", "label": "car", "span": None},
    ])}
    text = "I like tea, hate rain"
    judged = [
        {"kind": "fact", "verdict": "correct", "ref": "LIKES:Q1", "predicate": "LIKES"},
        {"kind": "fact", "verdict": "wrong", "ref": "OWNS:Q2", "predicate": "OWNS"},
        {"kind": "missing", "verdict": "added", "predicate": "DISLIKES", "span": [17, 21]},
        {"kind": "sentiment", "verdict": "wrong", "label": "neutral"},
    ]
    facts, sentiment = training_rows(item, text, judged)
    assert facts == {"text": text, "lang": "en", "split": "train", "source": "review:b",
                     "spans": [{"start": 7, "end": 10, "predicate": "LIKES"},
                               {"start": 17, "end": 21, "predicate": "DISLIKES"}]}
    assert sentiment == {"text": text, "lang": "en", "split": "train", "label": 1, "source": "review:b"}
    # a correct fact without a span: the document is no clean fact example
    judged[1]["verdict"] = "correct"
    assert training_rows(item, text, judged)[0] is None


def test_train_sentiment_order_is_the_encoders() -> None:
    pytest.importorskip("torch")
    from engine.extract.encoder.tasks import SENTIMENT_LABELS

    assert TRAIN_SENTIMENT_LABELS == SENTIMENT_LABELS


def test_named_tokens() -> None:
    s = Settings.from_env({"PERSONA_API_TOKENS": "alice:tok1, bob:tok2", "PERSONA_API_TOKEN": "single"})
    assert s.api.tokens == {"alice": "tok1", "bob": "tok2"}
    assert token_name(s.api, "tok2") == "bob" and token_name(s.api, "single") == "api"
    assert token_name(s.api, "tok3") is None and token_name(ApiSettings(), "x") is None
    with pytest.raises(ConfigError, match="name:token"):
        Settings.from_env({"PERSONA_API_TOKENS": "alice"})
    with pytest.raises(ConfigError, match="twice"):
        Settings.from_env({"PERSONA_API_TOKENS": "a:1,a:2"})
    assert Settings.from_env({"PERSONA_REVIEW_ALERT_POINTS": "3.5"}).review.alert_points == 3.5
