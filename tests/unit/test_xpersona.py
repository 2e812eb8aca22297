"""XPersona's index rule (which English dialogue each Chinese one translates) and the projected set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.corpora.xpersona import (
    PROJECTED,
    XpersonaError,
    english_index,
    pairs_of,
    read_projected,
)
from engine.extract.encoder.tagging import TAGGED_PREDICATES

COUNTS = Path(__file__).resolve().parents[1] / "data" / "xpersona_counts.json"


def _mismatches(rule) -> int:  # noqa: ANN001 - (zh_file, i) -> English index
    counts = json.loads(COUNTS.read_text(encoding="utf-8"))
    en = counts["En_persona_test"]
    bad = 0
    for zh_file, key in (("test", "Zh_test"), ("valid", "Zh_valid")):
        for i, signature in enumerate(counts[key]):
            j = rule(zh_file, i)
            bad += not (0 <= j < len(en) and en[j] == signature)
    return bad


def test_the_index_rule_pairs_every_chinese_dialogue_with_an_english_one_of_the_same_counts() -> None:
    # counts per pair (persona sentences, turns, two-utterance turns) measured on the real files
    assert _mismatches(english_index) == 0
    indices = [english_index(f, i) for f in ("test", "valid") for i in range(222)]
    assert len(set(indices)) == 444
    # the check has teeth: the same rule one dialogue off does not fit
    assert _mismatches(lambda f, i: english_index(f, i) + 1) > 100


def test_a_dialogue_whose_counts_differ_is_refused_by_name() -> None:
    en = [{"persona": ["i like tea.", "i am a nurse."], "dialogue": [["hi", "hello"]]}]
    zh = [{"persona": ["我喜欢茶。", "我是护士。"], "dialogue": [["你好", "你好"]]}]
    pairs = list(pairs_of("test", zh, en))
    assert [(p.kind, p.en, p.zh) for p in pairs][:2] == [("persona", "i like tea.", "我喜欢茶。"),
                                                         ("persona", "i am a nurse.", "我是护士。")]
    assert len(pairs) == 4
    zh[0]["persona"].pop()
    with pytest.raises(XpersonaError, match=r"test\[0\]: persona: 1 Chinese vs 2 English"):
        list(pairs_of("test", zh, en))


def test_the_committed_projection_has_spans_that_are_text_of_their_sentence() -> None:
    rows = read_projected(PROJECTED)
    assert len(rows) > 500
    assert {r.split for r in rows} == {"train", "dev", "test"}
    for row in rows:
        for span in row.spans:
            assert row.zh[span.start : span.end] == span.text
            assert span.predicate in TAGGED_PREDICATES
            assert not span.text.startswith(("在", "两", "一"))
