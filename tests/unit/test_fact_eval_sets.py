"""Scoring fact extraction over the test sets (PersonaExt, XPersona zh, KvPI zh) and the zh spans
training data is built from."""

from __future__ import annotations

from engine.corpora.kvpi import KvpiFact
from engine.eval.extraction import GoldFact, GoldItem, Prediction, RowResult, score, set_summary
from engine.train.project import clean_zh, snap_words


def _row(item: GoldItem, preds: list[tuple[str, str, float]]) -> RowResult:
    predictions = [Prediction(predicate=p, object=o, confidence=c,
                              match=any(g.matched_by(p, o, item.lang) for g in item.gold)) for p, o, c in preds]
    return RowResult(sentence=item.text, relation=item.relation, gold_predicates=item.gold[0].predicates,
                     gold_object=item.gold[0].object, lang=item.lang, gold=item.gold, predictions=predictions,
                     found=[any(g.matched_by(p, o, item.lang) for p, o, _ in preds) for g in item.gold])


def test_chinese_objects_match_by_containment_and_any_listed_name_counts() -> None:
    place = GoldFact(predicates=["LIVES_IN"], object="福建", also=["莆田"])
    assert place.matched_by("LIVES_IN", "莆田", "zh")
    assert place.matched_by("LIVES_IN", "福建省", "zh")
    assert not place.matched_by("LIVES_IN", "上海", "zh")
    assert not place.matched_by("FROM_PLACE", "莆田", "zh")


def test_scores_count_every_gold_fact_of_a_sentence_and_restrict_to_one_predicate() -> None:
    two = GoldItem(text="我住在上海，养了一只猫", lang="zh", relation="LIVES_IN",
                   gold=[GoldFact(predicates=["LIVES_IN"], object="上海"),
                         GoldFact(predicates=["HAS_PET"], object="猫")])
    rows = [_row(two, [("LIVES_IN", "上海", 0.9), ("DISLIKES", "慢", 0.6)])]
    overall = score(rows)
    assert (overall.precision, overall.recall) == (0.5, 0.5)
    only = score(rows, only="LIVES_IN")
    assert (only.precision, only.recall, only.predictions) == (1.0, 0.5, 1)
    assert score(rows, min_confidence=0.95).recall == 0.0
    summary = set_summary(rows, by_predicate=("LIVES_IN",))
    assert summary["recall_by_predicate"] == {"HAS_PET": 0.0, "LIVES_IN": 1.0}
    assert summary["LIVES_IN"]["precision"] == 1.0


def test_a_kvpi_fact_spans_the_word_that_states_it() -> None:
    place = KvpiFact(text="我在莆田啊", predicate="LIVES_IN", objects=["福建", "莆田市"])
    assert place.span() == (2, 4)
    gender = KvpiFact(text="我是女生哦", predicate="GENDER", objects=["female"])
    assert gender.span() == (2, 4)
    assert KvpiFact(text="是的", predicate="GENDER", objects=["male"]).span() is None


def test_projected_chinese_spans_are_whole_words_without_prepositions_or_quantities() -> None:
    for text, start, end, want in [("我是素食主义者，我爱鹰嘴豆泥。", 4, 5, "素食主义者"), ("我住在上海", 2, 5, "上海"),
                                   ("我养了两条狗", 4, 6, "狗")]:
        s, e = clean_zh(text, *snap_words(text, start, end))
        assert text[s:e] == want


def test_silver_facts_are_kept_only_when_the_kb_or_the_literal_rules_agree() -> None:
    from engine.extract.encoder.tagging import Span
    from engine.train.silver import label_sentence

    text = "i am a nurse and i love cats"
    row = label_sentence(text, [Span(start=24, end=28, predicate="LIKES")])
    assert [(text[s.start : s.end], s.predicate) for s in row.silver] == [("nurse", "WORKS_AS")]
    tall = label_sentence("i am 6 feet tall and i am a girl", [])
    assert [(s.predicate, tall.text[s.start : s.end]) for s in tall.silver] == [("GENDER", "girl")]
    assert ("WORKS_AS", "girl", "outside the KB range") in tall.rejected
    assert label_sentence("i am 35 and single !", []).silver[0].predicate == "AGE_BAND"


def test_templates_teach_ages_origins_languages_and_two_facts_in_one_clause() -> None:
    import linkers
    from engine.corpora import split_of
    from engine.train.synthetic import template_examples

    examples = template_examples(linkers.get_kb(), per_template=4, seed=3, compounds=0)
    spans = [(e.text[s.start : s.end], s.predicate, e) for e in examples for s in e.spans]
    for predicate in ("FROM_PLACE", "AGE_BAND", "SPEAKS"):
        assert {e.lang for _, p, e in spans if p == predicate} == {"en", "zh", "es"}
    ages = [text for text, p, _ in spans if p == "AGE_BAND"]
    assert all(a.isdigit() and split_of(a) == "train" for a in ages)
    pairs = [e for e in examples if [s.predicate for s in e.spans] == ["WORKS_AS", "LIVES_IN"]]
    assert pairs and all(e.spans[0].end < e.spans[1].start for e in pairs)
    assert any(" in " in e.text[e.spans[0].end : e.spans[1].start] for e in pairs if e.lang == "en")


def test_silver_en_test_items_hold_silver_and_personaext_labels_of_test_sentences_only() -> None:
    from engine.corpora import split_of
    from engine.eval.extraction import silver_en_items, test_items

    items = silver_en_items("test")
    assert items and all(split_of(i.text) == "test" for i in items)
    predicates = {p for i in items for g in i.gold for p in g.predicates}
    assert {"WORKS_AS", "AGE_BAND"} <= predicates
    assert all(g.object and g.object in i.text for i in items for g in i.gold)
    assert len(test_items("silver-en", None, 5, 13)) == 5
