"""Facts as token tagging: spans ↔ BIO tags through real tokenizer offsets, windows, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from engine.extract.encoder.runner import windows
from engine.extract.encoder.tagging import IGNORE, TAG_ID, TAGS, Span, decode_spans, encode_tags
from engine.extract.encoder.weights import Calibration
from engine.train.calibrate import ece, fit_platt, fit_temperature


def one_hot(tags: list[int]) -> np.ndarray:
    probs = np.full((len(tags), len(TAGS)), 0.01)
    for i, t in enumerate(tags):
        probs[i, t if t != IGNORE else 0] = 0.9
    return probs


TEXT = "i love jazz music"
OFFSETS = [(0, 0), (0, 1), (2, 6), (7, 10), (10, 11), (12, 17), (0, 0)]  # i|love|jaz z|music + specials


def test_tags_from_spans_and_back() -> None:
    spans = [Span(start=7, end=11, predicate="LIKES")]
    tags = encode_tags(OFFSETS, spans)
    assert tags[0] == tags[-1] == IGNORE
    assert tags[3] == TAG_ID["LIKES-B"] and tags[4] == TAG_ID["LIKES-I"] and tags[5] == TAG_ID["O"]
    (span,) = decode_spans(TEXT, OFFSETS, one_hot(tags))
    assert (span.start, span.end, span.predicate, span.text) == (7, 11, "LIKES", "jazz")
    assert span.confidence == pytest.approx(0.9)  # the least sure of its tokens' tag probabilities


def test_two_adjacent_spans_of_different_predicates_stay_apart() -> None:
    spans = [Span(start=2, end=6, predicate="OWNS"), Span(start=7, end=11, predicate="LIKES")]
    decoded = decode_spans(TEXT, OFFSETS, one_hot(encode_tags(OFFSETS, spans)))
    assert [(s.predicate, s.text) for s in decoded] == [("OWNS", "love"), ("LIKES", "jazz")]


def test_a_span_on_part_of_a_word_becomes_the_whole_word() -> None:
    tags = [IGNORE, TAG_ID["O"], TAG_ID["O"], TAG_ID["O"], TAG_ID["LIKES-B"], TAG_ID["O"], IGNORE]
    (span,) = decode_spans(TEXT, OFFSETS, one_hot(tags))
    assert span.text == "jazz" and (span.start, span.end) == (7, 11)
    zh_offsets = [(0, 0), (0, 1), (1, 3), (3, 4), (4, 6), (0, 0)]  # 我|是一|名|护士
    zh = [IGNORE, TAG_ID["O"], TAG_ID["O"], TAG_ID["O"], TAG_ID["WORKS_AS-B"], IGNORE]
    (nurse,) = decode_spans("我是一名护士", zh_offsets, one_hot(zh))
    assert nurse.text == "护士"  # no word boundaries to grow to in Chinese


def test_an_i_tag_without_b_starts_a_span_and_the_weakest_token_sets_confidence() -> None:
    probs = one_hot([IGNORE, TAG_ID["O"], TAG_ID["O"], TAG_ID["LIKES-I"], TAG_ID["LIKES-I"], TAG_ID["O"], IGNORE])
    probs[4, TAG_ID["LIKES-I"]] = 0.5
    (span,) = decode_spans(TEXT, OFFSETS, probs)
    assert span.text == "jazz" and span.confidence < 0.9


def test_windows_cut_at_sentence_ends_and_keep_offsets() -> None:
    text = "I love jazz. " * 60 + "The end"
    parts = windows([text, "short"], max_chars=200)
    mine = [w for w in parts if w.doc == 0]
    assert "".join(w.text for w in mine) == text
    assert all(len(w.text) <= 200 for w in mine) and all(w.text.endswith(". ") for w in mine[:-1])
    assert [w.text for w in parts if w.doc == 1] == ["short"]
    assert all(text[w.start : w.start + len(w.text)] == w.text for w in mine)


def test_platt_calibration_fits_and_ece_measures() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 0.95, 4000)
    truth = rng.uniform(0, 1, 4000) < raw**2  # over-confident raw scores
    a, b = fit_platt(raw, truth)
    cal = Calibration(kind="platt", a=a, b=b)
    fixed = [cal.apply(x) for x in raw]
    assert ece(fixed, truth) < ece(raw, truth) and ece(fixed, truth) < 0.05


def test_temperature_softens_an_over_confident_classifier() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 3000)
    logits = rng.normal(0, 1, (3000, 3))
    logits[np.arange(3000), labels] += 1.0
    assert fit_temperature(logits * 5, labels) > 2.0


def test_a_token_mostly_in_the_open_span_extends_it_without_changing_its_confidence() -> None:
    text = "i am a software engineer"
    offsets = [(0, 0), (0, 1), (2, 4), (5, 6), (7, 15), (16, 24), (0, 0)]
    probs = np.full((len(offsets), len(TAGS)), 0.0)
    probs[:, TAG_ID["O"]] = 1.0
    probs[4] = 0.0
    probs[4, TAG_ID["WORKS_AS-B"]], probs[4, TAG_ID["O"]] = 0.7, 0.3
    probs[5] = 0.0
    probs[5, TAG_ID["O"]], probs[5, TAG_ID["WORKS_AS-I"]], probs[5, TAG_ID["LIKES-B"]] = 0.5, 0.46, 0.04
    (span,) = decode_spans(text, offsets, probs)
    assert (span.text, span.predicate, span.confidence) == ("software engineer", "WORKS_AS", 0.7)
    (short,) = decode_spans(text, offsets, probs, continue_at=0.6)
    assert short.text == "software"
