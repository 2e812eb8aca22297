"""The extractor: one model call per document (facts + sentiment together), validated in code."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from engine.contracts import DocumentSentiment, Fact
from engine.extract.alerts import AlertMatcher, get_alert_matcher
from engine.extract.postprocess import (
    AnswerError,
    ModelAnswer,
    fact_confidences,
    ground_facts,
    label_confidence,
    parse_answer,
)
from engine.extract.prompt import build_messages, repair_messages, system_prompt
from engine.extract.schema import model_json_schema
from engine.extract.types import BackendError, Completion, ExtractionResult, LLMBackend

# Bump when post-processing changes what a cached result would contain.
POSTPROCESS_VERSION = "4"
TIER = "llm"
_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？\n])")
_CJK = re.compile(r"[\u3000-\u9fff]")


class ExtractorConfig(BaseModel):
    allow_sensitive: bool = False
    # Generated tokens per call; 6 facts + reason fit in ~150.
    max_tokens: int = 200
    # Characters of text per model call. 2,048-token context − ~700 prompt tokens − answer; CJK
    # is ~1 token per character, Latin ~4 characters per token, so the budget is per script.
    max_chars_latin: int = 3000
    max_chars_cjk: int = 700
    # Longer texts are split into windows at sentence ends (one call each) up to this many;
    # the rest is not read and the result says so.
    max_windows: int = 8
    # Facts under this token-probability confidence are dropped as "low_confidence". 0.3 was
    # chosen on the PersonaExt dev split (disjoint from the test split the eval reports).
    min_confidence: float = 0.3
    alert_rules: str | None = None


class WindowOutcome(BaseModel):
    answer: ModelAnswer | None = None
    raw: str = ""
    completions: list[Completion] = []
    valid_first_try: bool = True
    repaired: bool = False
    error: str | None = None


class Extractor:
    """Backend-agnostic: builds the prompt, calls the backend, repairs once, grounds facts."""

    def __init__(
        self,
        backend: LLMBackend,
        config: ExtractorConfig | None = None,
        alerts: AlertMatcher | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or ExtractorConfig()
        self.alerts = alerts or get_alert_matcher(self.config.alert_rules)
        self.schema: dict[str, Any] = model_json_schema(allow_sensitive=self.config.allow_sensitive)

    @property
    def version(self) -> str:
        """Identifies everything that shapes a result, for the cache key."""
        digest = hashlib.sha256()
        for part in (
            POSTPROCESS_VERSION,
            getattr(self.backend, "model_id", self.backend.name),
            system_prompt(self.config.allow_sensitive),
            json.dumps(self.schema, sort_keys=True),
            self.config.model_dump_json(),
        ):
            digest.update(part.encode("utf-8"))
        return digest.hexdigest()[:16]

    def extract(self, text: str, lang: str = "en") -> ExtractionResult:
        """Facts about the author + document sentiment + alerts for one (redacted) text."""
        return self.extract_many([text], [lang])[0]

    def extract_many(self, texts: Sequence[str], langs: Sequence[str]) -> list[ExtractionResult]:
        """`extract` for several texts; a backend with ``complete_many`` answers their first calls
        together (llama.cpp: one forward pass per step for all of them). Each text's result is the
        one `extract` gives it alone: same prompt, same decisions, same post-processing."""
        started = time.perf_counter()
        plans = [self._plan(text) for text in texts]
        windows = [(d, w) for d, (_result, wins) in enumerate(plans) for w in wins]
        messages = [build_messages(w, allow_sensitive=self.config.allow_sensitive) for _d, w in windows]
        firsts = self._first_calls(messages)
        outcomes: list[list[tuple[str, WindowOutcome]]] = [[] for _ in texts]
        for (d, window), msgs, first in zip(windows, messages, firsts, strict=True):
            outcomes[d].append((window, self._finish_window(msgs, first)))
        out = []
        for text, lang, (result, _wins), done in zip(texts, langs, plans, outcomes, strict=True):
            if done:
                self._assemble(result, text, lang, done)
                result.seconds = round(time.perf_counter() - started, 4)
            out.append(result)
        return out

    def _plan(self, text: str) -> tuple[ExtractionResult, list[str]]:
        """The result to fill and the windows to read (none for an empty text)."""
        result = ExtractionResult(backend=self.backend.name)
        if not text.strip():
            result.notes.append("empty text: nothing to extract, no model call")
            return result, []
        windows, unread = split_windows(text, self._max_chars(text), self.config.max_windows)
        if len(windows) > 1:
            result.notes.append(f"long text: chunked into {len(windows)} model calls")
        if unread:
            result.notes.append(
                f"truncated: the last {unread} of {len(text)} characters were not read by the model"
            )
        return result, windows

    def _first_calls(self, messages: list[list[dict[str, str]]]) -> list[Completion | BackendError]:
        many = getattr(self.backend, "complete_many", None)
        if many is not None and len(messages) > 1:
            return many([(m, self.schema, self.config.max_tokens) for m in messages])
        out: list[Completion | BackendError] = []
        for m in messages:
            try:
                out.append(self._call(m, self.config.max_tokens))
            except BackendError as exc:
                out.append(exc)
        return out

    def _assemble(self, result: ExtractionResult, text: str, lang: str,
                  done: list[tuple[str, WindowOutcome]]) -> None:
        dropped: Counter[str] = Counter()
        facts: list[Fact] = []
        sentiments: list[DocumentSentiment] = []
        for window, outcome in done:
            self._account(result, outcome)
            if outcome.answer is None:
                continue
            window_facts, window_dropped = self._ground(outcome, window, lang)
            facts.extend(window_facts)
            dropped.update(window_dropped)
            sentiments.append(self._sentiment(outcome))
        result.facts = [f.model_copy(update={"tier": TIER}) for f in _dedupe_facts(facts, dropped)]
        result.dropped = dict(dropped)
        if sentiments:
            result.sentiment = _merge_sentiments(sentiments)
        result.sentiment.alerts = self.alerts.match(text)

    def _max_chars(self, text: str) -> int:
        cjk_share = len(_CJK.findall(text)) / max(len(text), 1)
        return self.config.max_chars_cjk if cjk_share > 0.2 else self.config.max_chars_latin

    def _call(self, messages: list[dict[str, str]], max_tokens: int) -> Completion:
        return self.backend.complete(messages, self.schema, max_tokens=max_tokens)

    def _finish_window(self, messages: list[dict[str, str]], first: Completion | BackendError) -> WindowOutcome:
        """The first call's answer; on an invalid one, one repair call that shows the model its mistake."""
        outcome = WindowOutcome()
        if isinstance(first, BackendError):
            outcome.error = f"backend error: {first}"
            return outcome
        outcome.completions.append(first)
        try:
            outcome.answer, outcome.raw = parse_answer(first.text), first.text
            return outcome
        except AnswerError as exc:
            problem = str(exc) if first.finish_reason != "length" else f"{exc} (answer cut off)"
        outcome.valid_first_try = False
        try:
            second = self._call(
                repair_messages(messages, first.text, problem), self.config.max_tokens * 2
            )
        except BackendError as exc:
            outcome.error = f"invalid answer ({problem}); repair call failed: {exc}"
            return outcome
        outcome.completions.append(second)
        try:
            outcome.answer, outcome.raw = parse_answer(second.text), second.text
            outcome.repaired = True
        except AnswerError as exc:
            outcome.error = f"invalid answer after one repair: {exc}"
        return outcome

    def _account(self, result: ExtractionResult, outcome: WindowOutcome) -> None:
        for comp in outcome.completions:
            result.llm_calls += 1
            result.prompt_tokens += comp.prompt_tokens
            result.completion_tokens += comp.completion_tokens
        result.valid_first_try = result.valid_first_try and outcome.valid_first_try
        result.repaired = result.repaired or outcome.repaired
        if outcome.error:
            result.error = outcome.error if result.error is None else f"{result.error}; {outcome.error}"

    def _ground(self, outcome: WindowOutcome, window: str, lang: str) -> tuple[list[Fact], Counter[str]]:
        assert outcome.answer is not None
        tokens = outcome.completions[-1].logprobs
        return ground_facts(
            outcome.answer,
            window,
            lang,
            allow_sensitive=self.config.allow_sensitive,
            confidences=fact_confidences(outcome.raw, tokens),
            min_confidence=self.config.min_confidence,
        )

    def _sentiment(self, outcome: WindowOutcome) -> DocumentSentiment:
        assert outcome.answer is not None
        label = outcome.answer.sentiment
        conf = label_confidence(outcome.raw, outcome.completions[-1].logprobs, label)
        return DocumentSentiment(
            label=label,
            confidence=round(conf, 4) if conf is not None else 0.5,
            reason=short_reason(outcome.answer.reason),
        )


def split_windows(text: str, max_chars: int, max_windows: int) -> tuple[list[str], int]:
    """Sentence-aligned windows of at most max_chars; returns (windows, unread characters)."""
    if len(text) <= max_chars:
        return [text], 0
    windows: list[str] = []
    current = ""
    for piece in _SENTENCE_BREAK.split(text):
        while len(piece) > max_chars:  # a "sentence" longer than a window: hard cut
            if current:
                windows.append(current)
                current = ""
            windows.append(piece[:max_chars])
            piece = piece[max_chars:]
        if len(current) + len(piece) > max_chars and current:
            windows.append(current)
            current = ""
        current += piece
    if current:
        windows.append(current)
    kept = windows[:max_windows]
    return kept, len(text) - sum(len(w) for w in kept)


def short_reason(reason: str) -> str:
    """Contract: at most 20 Chinese characters or 12 words."""
    reason = " ".join(reason.split())
    if _CJK.search(reason):
        return reason[:20]
    return " ".join(reason.split(" ")[:12])


def _dedupe_facts(facts: list[Fact], dropped: Counter[str]) -> list[Fact]:
    best: dict[tuple[str, str], Fact] = {}
    for fact in facts:
        key = (fact.predicate, fact.object.lower())
        if key in best:
            dropped["duplicate"] += 1
            if fact.confidence > best[key].confidence:
                best[key] = fact
        else:
            best[key] = fact
    return list(best.values())


def _merge_sentiments(sentiments: list[DocumentSentiment]) -> DocumentSentiment:
    """Several windows: the label with the largest summed confidence; its most confident reason."""
    if len(sentiments) == 1:
        return sentiments[0]
    weight: Counter[str] = Counter()
    for s in sentiments:
        weight[s.label] += s.confidence
    label = weight.most_common(1)[0][0]
    best = max((s for s in sentiments if s.label == label), key=lambda s: s.confidence)
    share = weight[label] / max(sum(weight.values()), 1e-9)
    return DocumentSentiment(label=label, confidence=round(share * best.confidence, 4), reason=best.reason)
