"""Default backend: llama.cpp (llama-cpp-python) running the bundled GGUF on the CPU.

- One ``Llama`` per process (model path + context settings), shared by every extractor: loading
  costs ~1 s and, more importantly, its KV cache holds the evaluated system prompt. llama.cpp
  re-evaluates only the tokens after the longest common prefix with the previous call, so the
  fixed system prompt is paid once (3.2× faster per document, notes/llm-baseline.md).
- No ``LlamaRAMCache``: one fixed prefix does not need it, and its default 2 GiB capacity is not
  enforced against the saved logits (it grew to 24 GB in the baseline run).
- The JSON schema is compiled to a GBNF grammar once per schema, so every answer parses.
- Greedy decoding (temperature 0) for reproducibility.
- Token log-probabilities come from a logits processor that sees the raw logits before the
  grammar mask, without ``logits_all=True`` (which would keep n_ctx × 152k floats ≈ 1.2 GB).
"""

from __future__ import annotations

import codecs
import json
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.extract.guided import (
    GuidedDecoder,
    LlamaSession,
    UnsupportedSchema,
    VocabIndex,
    check_supported,
)
from engine.extract.types import BackendError, Completion, TokenLogprob

_LOAD_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int, int, int], Any] = {}
# Candidates whose log-probabilities are kept at every step, for label confidence.
LABEL_WORDS = ("positive", "negative", "neutral")


def default_threads() -> int:
    """All cores the process may use (2 on the CI/dev machines)."""
    return max(1, len(os.sched_getaffinity(0)))


def load_llama(model_path: str | Path, n_ctx: int = 2048, n_threads: int | None = None, n_batch: int = 512):
    """The process-wide Llama for these settings (loaded on first use)."""
    from llama_cpp import Llama

    threads = n_threads or default_threads()
    key = (str(model_path), n_ctx, threads, n_batch)
    with _LOAD_LOCK:
        if key not in _MODELS:
            _MODELS[key] = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=n_batch,
                seed=0,
                logits_all=False,
                verbose=False,
            )
        return _MODELS[key]


@lru_cache(maxsize=8)
def _grammar(schema_json: str):
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


class LogprobRecorder:
    """Logits processor recording, per generated token, log P(token) under the raw model.

    At step t llama.cpp passes the ids so far (prompt + tokens 0..t-1) and the logits for token
    t; the token chosen at step t is only known at step t+1, so the previous step's log-softmax
    normaliser and logits are held until then.
    """

    def __init__(self, label_ids: dict[str, int]) -> None:
        self.label_ids = label_ids
        self.steps: list[tuple[int, float, dict[str, float]]] = []
        self._prev_logits: np.ndarray | None = None
        self._prev_lse = 0.0

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self._prev_logits is not None and len(input_ids):
            self._record(int(input_ids[-1]))
        logits = np.asarray(scores, dtype=np.float64)
        peak = float(logits.max())
        self._prev_lse = peak + float(np.log(np.exp(logits - peak).sum()))
        self._prev_logits = logits
        return scores

    def _record(self, chosen: int) -> None:
        assert self._prev_logits is not None
        lp = float(self._prev_logits[chosen]) - self._prev_lse
        top = {w: float(self._prev_logits[i]) - self._prev_lse for w, i in self.label_ids.items()}
        self.steps.append((chosen, lp, top))

    def tokens(self, llama: Any) -> list[TokenLogprob]:
        """Token texts whose concatenation equals the decoded output (UTF-8 split safely)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out: list[TokenLogprob] = []
        eos = llama.token_eos()
        for token_id, lp, top in self.steps:
            if token_id == eos:
                break
            piece = decoder.decode(llama.detokenize([token_id]))
            out.append(TokenLogprob(text=piece, logprob=lp, top=top))
        return out


class LlamaCppBackend:
    """llama.cpp in-process; thread-safe (calls are serialised: one context, one KV cache)."""

    name = "llama_cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        logprobs: bool = True,
        repeat_penalty: float = 1.0,
        guided: bool = True,
        continue_bias: float = 0.0,
        model_cache: Path | None = None,
    ) -> None:
        if model_path is None:
            from engine.extract.model_files import ensure_model

            model_path = ensure_model(model_cache)
        self.model_path = Path(model_path)
        self.model_id = f"llama_cpp:{self.model_path.name}"
        self.n_ctx = n_ctx
        self.logprobs = logprobs
        self.repeat_penalty = repeat_penalty
        self.guided = guided
        self.continue_bias = continue_bias
        self._vocab = None
        self._formatter = None
        try:
            self.llama = load_llama(self.model_path, n_ctx, n_threads, n_batch)
        except (ValueError, OSError) as exc:
            raise BackendError(f"cannot load {self.model_path}: {exc}") from exc
        self._lock = threading.Lock()
        self._label_ids = self._first_token_ids(LABEL_WORDS)

    def _first_token_ids(self, words: tuple[str, ...]) -> dict[str, int]:
        return {w: self.llama.tokenize(w.encode("utf-8"), add_bos=False)[0] for w in words}

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int
    ) -> Completion:
        if self.guided:
            try:
                check_supported(schema)
            except UnsupportedSchema:
                pass
            else:
                return self._complete_guided(messages, schema)
        return self._complete_grammar(messages, schema, max_tokens)

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template from the GGUF metadata, rendered and tokenised like llama.cpp does."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self.llama
            eos = llama.detokenize([llama.token_eos()]).decode("utf-8", errors="ignore")
            bos_id = llama.token_bos()
            bos = llama.detokenize([bos_id]).decode("utf-8", errors="ignore") if bos_id >= 0 else ""
            self._formatter = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos
            )
        prompt = self._formatter(messages=messages).prompt
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _complete_guided(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        with self._lock:
            session = LlamaSession(self.llama)
            if self._vocab is None:
                self._vocab = VocabIndex.build(session)
            tokens = self._prompt_tokens(messages)
            if len(tokens) + 256 > self.n_ctx:
                raise BackendError(f"prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
            decoder = GuidedDecoder(session, self._vocab, continue_bias=self.continue_bias)
            evaluated = decoder.start(tokens)
            decoder.value(schema)
            # The closing text is not evaluated: the next call keeps only the common prefix with
            # its own prompt (inside the system prompt), so those tokens would be dropped unread,
            # and skipping them saves one forward pass per document.
            answer_tokens = self.llama.n_tokens + len(decoder.pending) - len(tokens)
        return Completion(
            text=decoder.text,
            prompt_tokens=len(tokens),
            completion_tokens=answer_tokens,
            seconds=time.perf_counter() - started,
            logprobs=decoder.out if self.logprobs else None,
            finish_reason="stop",
            prompt_tokens_evaluated=evaluated,
            decode_calls=decoder.calls,
        )

    def _complete_grammar(
        self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int
    ) -> Completion:
        grammar = _grammar(json.dumps(schema, sort_keys=False))
        recorder = LogprobRecorder(self._label_ids) if self.logprobs else None
        started = time.perf_counter()
        with self._lock:
            try:
                response = self.llama.create_chat_completion(
                    messages=messages,
                    grammar=grammar,
                    temperature=0.0,
                    max_tokens=max_tokens,
                    repeat_penalty=self.repeat_penalty,
                    logits_processor=[recorder] if recorder else None,
                )
            except ValueError as exc:  # e.g. prompt longer than the context
                raise BackendError(str(exc)) from exc
            tokens = recorder.tokens(self.llama) if recorder else None
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - started,
            logprobs=tokens,
            finish_reason=choice.get("finish_reason"),
        )

    def reset_prefix_cache(self) -> None:
        """Forget the evaluated prefix (benchmarks: measure the cost without KV reuse)."""
        with self._lock:
            self.llama.reset()
