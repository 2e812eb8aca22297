"""The cascade tier: the encoder reads every document; the LLM reads only what the encoder is
unsure of (one call per such document, as in the LLM tier).

The escalated documents of a batch are put to the LLM together (`Extractor.extract_many`).
A document goes to the LLM when (thresholds chosen on dev, stored with the encoder's weights):
- a tagged fact's calibrated confidence falls in the unsure band below the encoder's threshold;
- the sentiment's calibrated confidence is below the escalation threshold;
- it is long, or in a language the encoder was not measured on;
- tagger and sentiment disagree (a DISLIKES fact in a positive text, a LIKES fact in a negative one);
- the author says who they are (job, origin, age, gender: "I'm a …", `BLIND_CUES`), no encoder fact
  explains it (it never learnt WORKS_AS, FROM_PLACE, AGE_BAND, GENDER), and the LLM measured better
  on such facts in that language (`CascadePolicy.llm_predicates`).
For an escalated document the LLM decides: an unsure span is kept when the LLM states the same
object too (with the LLM's predicate), sure encoder facts stay, the LLM's facts of the predicates
it measured better on (`CascadePolicy.llm_predicates`, per language, chosen on dev) are added, and
the sentiment with the higher confidence wins. Every fact says which tier produced it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from engine.contracts import Fact
from engine.extract.types import ExtractionResult

TIER = "cascade"
# Chosen on the dev split (benchmarks/cascade_blind.py --split dev --llm-rows 13, a seeded sample of
# the 52 escalated PersonaExt dev rows): the LLM added 3 WORKS_AS facts (1 right by the scorer, 2
# the gold does not label and that read right: "vet", "life guard") and no fact of the other
# candidates, so only WORKS_AS. zh and es have no dev set labelling these predicates on first-person
# statements (KvPI's gold is mostly about the other speaker): nothing was chosen for them.
LLM_PREDICATES: dict[str, tuple[str, ...]] = {"en": ("WORKS_AS",)}


# A first-person statement of who the author is: the sentences that carry the facts the encoder
# never learnt (occupation, origin, age, gender). Per language; a language without cues never
# escalates for this reason.
BLIND_CUES: dict[str, re.Pattern[str]] = {
    "en": re.compile(
        r"(?<![a-z'])(?:i'?m|i am)\s+(?:an?\s+|\d)|(?<![a-z'])i\s+(?:work|worked)\s+as\b|"
        r"(?<![a-z'])(?:i'?m|i am|i come)\s+(?:originally\s+)?from\b|\b(?:i was )?born (?:and raised )?in\b|"
        r"\byears? old\b",
        re.I,
    ),
    "zh": re.compile(r"我(?:是|来自|出生|老家|今年)|[0-9一二三四五六七八九十]+岁|我在\S{1,12}(?:当|做|工作)"),
    "es": re.compile(
        r"(?<![a-záéíóúñ])(?:soy|trabajo\s+(?:como|de)|vengo\s+de|nac[ií]\s+en|tengo\s+\d+\s+años)"
        r"(?![a-záéíóúñ])",
        re.I,
    ),
}


# Where after the cue the statement's object starts ("I'm a [huge] game of thrones fan").
STATEMENT_CHARS = 12


class CascadePolicy(BaseModel):
    unsure_from: float = 0.2  # calibrated confidence where a tagged span starts to count as unsure
    sentiment_below: float = 0.6
    max_chars: int = 1200
    langs: tuple[str, ...] = ("en", "zh", "es")
    # Per language, the predicates whose LLM facts an escalated document keeps besides the encoder's:
    # where the LLM measured better than the encoder on the dev splits (benchmarks/cascade_blind.py).
    # A language listed here also escalates first-person statements of who the author is (BLIND_CUES).
    llm_predicates: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(LLM_PREDICATES))


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
    if policy.llm_predicates.get(lang) and unexplained_self_statement(text, lang, result):
        reasons.append("blind")
    return reasons


def unexplained_self_statement(text: str, lang: str, result: ExtractionResult) -> bool:
    """The author says who they are ("I'm a nurse", "我是老师") and no fact the encoder found (sure or
    unsure) lies in the words that follow: "I'm a vegan" with DIET vegan needs no LLM."""
    cue = BLIND_CUES.get(lang)
    if cue is None:
        return False
    objects = [f.object.lower() for f in [*result.facts, *result.unsure]]
    low = text.lower()
    return any(not any(0 <= low.find(obj, m.end()) - m.end() <= STATEMENT_CHARS for obj in objects)
               for m in cue.finditer(text))


def merge(encoder: ExtractionResult, llm: ExtractionResult, llm_predicates: Sequence[str] = ()) -> ExtractionResult:
    """Sure encoder facts, plus unsure spans the LLM confirms, plus the LLM's facts of `llm_predicates`
    (the ones it measured better on) that the encoder does not state; nothing else from the LLM."""
    sure = list(encoder.facts)
    have = {f.object.lower() for f in sure}
    confirmed: list[Fact] = []
    for span in encoder.unsure:
        match = next((f for f in llm.facts if f.object.lower() == span.object.lower()), None)
        if match is not None and match.object.lower() not in have:
            confirmed.append(match.model_copy(update={"confidence": max(match.confidence, span.confidence),
                                                      "tier": "llm"}))
            have.add(match.object.lower())
    for fact in llm.facts:
        if fact.predicate in llm_predicates and fact.object.lower() not in have:
            confirmed.append(fact.model_copy(update={"tier": "llm"}))
            have.add(fact.object.lower())
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
        reasons = [escalation_reasons(text, lang, result, self.policy) if text.strip() else []
                   for text, lang, result in zip(texts, langs, results, strict=True)]
        escalated = [i for i, why in enumerate(reasons) if why]
        answers = self._ask_llm([texts[i] for i in escalated], [langs[i] for i in escalated])
        for i, answer in zip(escalated, answers, strict=True):
            merged = merge(results[i], answer, self.policy.llm_predicates.get(langs[i], ()))
            merged.notes.append(f"escalated to the LLM: {', '.join(reasons[i])}")
            results[i] = merged
        return [result.model_copy(update={"backend": TIER}) for result in results]

    def _ask_llm(self, texts: list[str], langs: list[str]) -> list[ExtractionResult]:
        """The escalated documents of a batch, together when the LLM tier can (`extract_many`:
        one forward pass per step for several documents, same answers as one at a time)."""
        if not texts:
            return []
        many = getattr(self.llm, "extract_many", None)
        if many is not None:
            return many(texts, langs)
        return [self.llm.extract(text, lang) for text, lang in zip(texts, langs, strict=True)]
