"""The cascade tier: the encoder reads every document; the LLM reads only what the encoder is
unsure of (one call per such document, as in the LLM tier).

A document goes to the LLM when (thresholds chosen on dev, stored with the encoder's weights):
- a tagged fact's calibrated confidence falls in the unsure band below the encoder's threshold;
- the sentiment's calibrated confidence is below the escalation threshold;
- it is long, or in a language the encoder was not measured on;
- tagger and sentiment disagree (a DISLIKES fact in a positive text, a LIKES fact in a negative one).
For an escalated document the LLM decides: an unsure span is kept when the LLM states the same
object too (with the LLM's predicate), sure encoder facts stay, and the sentiment with the higher
confidence wins. Every fact says which tier produced it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from engine.contracts import Fact
from engine.extract.types import ExtractionResult

TIER = "cascade"


class CascadePolicy(BaseModel):
    unsure_from: float = 0.2  # calibrated confidence where a tagged span starts to count as unsure
    sentiment_below: float = 0.6
    max_chars: int = 1200
    langs: tuple[str, ...] = ("en", "zh", "es")


def escalation_reasons(text: str, lang: str, result: ExtractionResult, policy: CascadePolicy) -> list[str]:
    reasons = []
    if result.unsure:
        reasons.append("unsure_fact")
    if result.sentiment.confidence < policy.sentiment_below:
        reasons.append("unsure_sentiment")
    if len(text) > policy.max_chars:
        reasons.append("long")
    if lang not in policy.langs:
        reasons.append("language")
    label = result.sentiment.label
    if any(f.predicate == "DISLIKES" for f in result.facts) and label == "positive" or any(
        f.predicate == "LIKES" for f in result.facts
    ) and label == "negative":
        reasons.append("disagreement")
    return reasons


def merge(encoder: ExtractionResult, llm: ExtractionResult) -> ExtractionResult:
    """Sure encoder facts, plus unsure spans the LLM confirms, plus nothing else from the LLM."""
    sure = list(encoder.facts)
    have = {f.object.lower() for f in sure}
    confirmed: list[Fact] = []
    for span in encoder.unsure:
        match = next((f for f in llm.facts if f.object.lower() == span.object.lower()), None)
        if match is not None and match.object.lower() not in have:
            confirmed.append(match.model_copy(update={"confidence": max(match.confidence, span.confidence),
                                                      "tier": "llm"}))
            have.add(match.object.lower())
    sentiment = llm.sentiment if llm.error is None and llm.sentiment.confidence > encoder.sentiment.confidence \
        else encoder.sentiment
    sentiment = sentiment.model_copy(update={"alerts": encoder.sentiment.alerts})
    return encoder.model_copy(update={
        "facts": sure + confirmed, "sentiment": sentiment, "llm_calls": llm.llm_calls,
        "prompt_tokens": llm.prompt_tokens, "completion_tokens": llm.completion_tokens,
        "backend": TIER, "notes": [*encoder.notes, *llm.notes],
    })


class CascadeExtractor:
    name = TIER

    def __init__(self, encoder: Any, llm: Callable[[], Any], policy: CascadePolicy | None = None) -> None:
        self.encoder = encoder
        self._llm_factory, self._llm = llm, None
        self.policy = policy or CascadePolicy()

    @property
    def llm(self) -> Any:
        """The LLM extractor, loaded on the first escalation only."""
        if self._llm is None:
            self._llm = self._llm_factory()
        return self._llm

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"{self.encoder.version}|{self.policy.model_dump_json()}".encode())
        return "cas-" + digest.hexdigest()[:14]

    def extract(self, text: str, lang: str = "en") -> ExtractionResult:
        return self.extract_batch([text], [lang])[0]

    def extract_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[ExtractionResult]:
        results = self.encoder.extract_batch(texts, langs)
        out = []
        for text, lang, result in zip(texts, langs, results, strict=True):
            reasons = escalation_reasons(text, lang, result, self.policy) if text.strip() else []
            if reasons:
                result = merge(result, self.llm.extract(text, lang))
                result.notes.append(f"escalated to the LLM: {', '.join(reasons)}")
            out.append(result.model_copy(update={"backend": TIER}))
        return out
