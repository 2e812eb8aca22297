"""The encoder tier: facts by token tagging and document sentiment from the fine-tuned multilingual
encoder, batched, with calibrated confidences. The same interface as the LLM `Extractor`
(`extract(text, lang)`, `version`), plus `extract_batch` for many documents at once."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.contracts import DocumentSentiment, Fact
from engine.extract.alerts import AlertMatcher, get_alert_matcher
from engine.extract.encoder.folded import FoldedTasks
from engine.extract.encoder.runner import CHUNK_TOKENS, Window, run_tasks, windows
from engine.extract.encoder.tagging import TaggedSpan, decode_spans
from engine.extract.encoder.tasks import SENTIMENT_LABELS, EncoderTasks
from engine.extract.encoder.weights import TaskMeta
from engine.extract.extractor import POSTPROCESS_VERSION
from engine.extract.postprocess import ModelAnswer, ModelFact, ground_facts
from engine.extract.types import ExtractionResult

TIER = "encoder"


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class EncoderExtractor:
    name = TIER

    def __init__(
        self, model: EncoderTasks | FoldedTasks, tokenizer: Any, metas: dict[str, TaskMeta], *,
        allow_sensitive: bool = False, alerts: AlertMatcher | None = None, batch_size: int = 64, pad_id: int = 1,
        chunk_tokens: int = CHUNK_TOKENS,
    ) -> None:
        self.model, self.tokenizer, self.metas = model, tokenizer, metas
        self.allow_sensitive = allow_sensitive
        self.alerts = alerts or get_alert_matcher(None)
        self.batch_size, self.pad_id, self.chunk_tokens = batch_size, pad_id, chunk_tokens

    @property
    def min_confidence(self) -> float:
        return self.metas["facts"].thresholds.get("min_confidence", 0.5)

    @property
    def unsure_from(self) -> float:
        return min(self.metas["facts"].thresholds.get("unsure_from", 0.2), self.min_confidence)

    def min_confidence_for(self, lang: str) -> float:
        """The language's own threshold where its dev set chose one (zh, en), else the pooled one."""
        return self.metas["facts"].threshold("min_confidence", lang, self.min_confidence)

    def unsure_from_for(self, lang: str) -> float:
        return min(self.metas["facts"].threshold("unsure_from", lang, self.unsure_from), self.min_confidence_for(lang))

    @property
    def version(self) -> str:
        digest = hashlib.sha256(POSTPROCESS_VERSION.encode())
        for task in sorted(self.metas):
            digest.update(self.metas[task].model_dump_json().encode())
        digest.update(str(self.allow_sensitive).encode())
        return "enc-" + digest.hexdigest()[:14]

    def cascade_policy(self):  # noqa: ANN201 - engine.extract.cascade.CascadePolicy
        """The escalation thresholds chosen on dev, shipped with the weights."""
        from engine.extract.cascade import CascadePolicy

        sentiment = self.metas["sentiment"].thresholds.get("escalate_below")
        return CascadePolicy(unsure_from=self.unsure_from,
                             sentiment_below=sentiment if sentiment is not None else CascadePolicy().sentiment_below)

    def extract(self, text: str, lang: str = "en") -> ExtractionResult:
        return self.extract_batch([text], [lang])[0]

    def extract_batch(self, texts: Sequence[str], langs: Sequence[str]) -> list[ExtractionResult]:
        started = time.perf_counter()
        parts = windows(texts)
        out = run_tasks(self.model, self.tokenizer, [w.text for w in parts], ("facts", "sentiment"),
                        batch_size=self.batch_size, pad_id=self.pad_id, max_tokens=self.chunk_tokens)
        per_doc: list[list[int]] = [[] for _ in texts]
        for k, w in enumerate(parts):
            per_doc[w.doc].append(k)
        results = []
        for doc, text in enumerate(texts):
            result = ExtractionResult(backend=TIER)
            if not text.strip():
                result.notes.append("empty text: nothing to extract")
            else:
                spans = [s for k in per_doc[doc] for s in self._spans(parts[k], out, k)]
                facts, dropped = self.facts_from_spans(text, langs[doc], spans)
                floor = self.min_confidence_for(langs[doc])
                result.facts = [f for f in facts if f.confidence >= floor]
                result.unsure = [f for f in facts if f.confidence < floor]
                dropped["low_confidence"] += len(result.unsure)
                result.dropped = {k: v for k, v in dropped.items() if v}
                result.sentiment = self._sentiment([out.sentiment[k] for k in per_doc[doc]],
                                                   [len(parts[k].text) for k in per_doc[doc]])
            result.sentiment.alerts = self.alerts.match(text)
            results.append(result)
        elapsed = (time.perf_counter() - started) / max(len(texts), 1)
        for r in results:
            r.seconds = round(elapsed, 5)
        return results

    def _spans(self, window: Window, out: Any, k: int) -> list[TaggedSpan]:
        spans = decode_spans(window.text, out.encoded[k].offsets, out.facts[k])
        return [s.model_copy(update={"start": s.start + window.start, "end": s.end + window.start}) for s in spans]

    def facts_from_spans(self, text: str, lang: str, spans: Sequence[TaggedSpan]) -> tuple[list[Fact], Counter[str]]:
        """The same grounding as the LLM tier (span in text, about the author, literal values,
        sensitive refusal), with calibrated confidences; facts down to the unsure floor."""
        calibration = self.metas["facts"].calibration_for(lang)
        answer = ModelAnswer(facts=[ModelFact(predicate=s.predicate, object=s.text) for s in spans],
                             sentiment="neutral")
        facts, dropped = ground_facts(
            answer, text, lang, allow_sensitive=self.allow_sensitive,
            confidences=[calibration.apply(s.confidence) for s in spans], min_confidence=self.unsure_from_for(lang),
        )
        for f in facts:
            f.tier = TIER
        return facts, dropped

    def _sentiment(self, logits: list[np.ndarray], weights: list[int]) -> DocumentSentiment:
        temperature = self.metas["sentiment"].calibration.temperature
        probs = np.average(np.stack([softmax(x, temperature) for x in logits]), axis=0, weights=weights)
        best = int(probs.argmax())
        return DocumentSentiment(label=SENTIMENT_LABELS[best], confidence=round(float(probs[best]), 4))


_LOADED: dict[tuple[str, str, bool], EncoderExtractor] = {}
_LOCK = threading.Lock()


def load_tasks(cache: Path, folder: Path) -> tuple[EncoderTasks, Any, dict[str, TaskMeta]]:
    """The base encoder adapted by the task weights in `folder` (peft form, eval mode), its
    tokenizer and the tasks' metadata."""
    from engine.extract.encoder.base import load_base
    from engine.extract.encoder.weights import WeightsError, load_task

    metas, states = {}, {}
    for task in ("facts", "sentiment"):
        metas[task], states[task] = load_task(folder, task)
    shape = metas["facts"].adapter_shape()
    if metas["sentiment"].adapter_shape() != shape:
        raise WeightsError(f"the facts and sentiment weights in {folder} adapt the encoder differently")
    model, tokenizer = load_base(cache, shared=False)  # peft wraps (changes) the model it adapts
    tasks = EncoderTasks(model, ("facts", "sentiment"), shape)
    for task, state in states.items():
        tasks.load_task_state(task, state)
    tasks.eval()
    return tasks, tokenizer, metas


def load_encoder(model_cache: Path | None, *, weights: Path | None = None,
                 allow_sensitive: bool = False) -> EncoderExtractor:
    """The encoder tier with the shipped (or given) task weights, loaded once per process, the
    adapters folded into the weights for inference."""
    from engine.config import Settings
    from engine.extract.encoder.weights import PACKAGED

    cache = Path(model_cache or Settings().model_cache)
    folder = Path(weights or PACKAGED)
    key = (str(cache), str(folder), allow_sensitive)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        tasks, tokenizer, metas = load_tasks(cache, folder)
        _use_usable_cores()
        extractor = EncoderExtractor(FoldedTasks(tasks), tokenizer, metas, allow_sensitive=allow_sensitive,
                                     pad_id=tokenizer.pad_token_id or 1)
        _LOADED[key] = extractor
        return extractor


def _use_usable_cores() -> None:
    """Intra-op threads = the cores this process may run on: torch counts the machine's physical
    cores, which oversubscribes a container or a worker pinned to fewer (2 here)."""
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
