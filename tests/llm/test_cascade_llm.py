"""The cascade with the real encoder and the real local LLM: the LLM reads only what the encoder
is unsure of, and facts say which tier produced them."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the encoder tier needs torch")

from engine.extract.cascade import CascadeExtractor, escalation_reasons  # noqa: E402

pytestmark = pytest.mark.llm


class Counting:
    """The real LLM extractor, with a count of the documents it was asked about."""

    def __init__(self, inner) -> None:
        self.inner, self.texts, self.batches = inner, [], []

    def extract(self, text: str, lang: str = "en"):
        self.texts.append(text)
        return self.inner.extract(text, lang)

    def extract_many(self, texts, langs):
        self.texts += texts
        self.batches.append(len(texts))
        return self.inner.extract_many(texts, langs)


def test_the_llm_reads_only_what_the_encoder_is_unsure_of(extractor) -> None:
    from engine.config import Settings
    from engine.extract.encoder import load_encoder

    encoder = load_encoder(Settings().model_cache)
    llm = Counting(extractor)
    cascade = CascadeExtractor(encoder, lambda: llm, encoder.cascade_policy())
    texts = ["I live in Berlin.", "我是一名护士。", "Je travaille comme boulanger à Lyon et j'adore le vélo.",
             "I love jazz. " + "It was a long day at the office and nothing much happened. " * 30]
    langs = ["en", "zh", "other", "en"]
    alone = encoder.extract_batch(texts, langs)
    expected = [t for t, lang, r in zip(texts, langs, alone, strict=True)
                if escalation_reasons(t, lang, r, cascade.policy)]
    assert texts[2] in expected and texts[3] in expected  # another language; a long text
    results = cascade.extract_batch(texts, langs)
    assert llm.texts == expected
    assert llm.batches == [len(expected)]  # the escalated documents of a batch, asked together
    for text, result in zip(texts, results, strict=True):
        assert (result.llm_calls >= 1) == (text in expected)
        assert all(f.tier in ("encoder", "llm") for f in result.facts)
