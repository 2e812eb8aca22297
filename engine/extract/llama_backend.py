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
        parallel_slots: int = 8,
        parallel_ctx: int = 4096,
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
        # complete_many: up to `parallel_slots` documents per forward pass, in a second context of
        # `parallel_ctx` cells on the same weights (llama_parallel.py); 1 turns it off.
        self.parallel_slots, self.parallel_ctx, self.n_batch = parallel_slots, parallel_ctx, n_batch
        self._parallel = None
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
            tokens = self._prompt_tokens(messages)
            self._check_fits(tokens, self.n_ctx)
            return self._guided_answer(session, tokens, schema, started)

    def _check_fits(self, tokens: list[int], n_ctx: int) -> None:
        if len(tokens) + 256 > n_ctx:
            raise BackendError(f"prompt of {len(tokens)} tokens does not fit n_ctx={n_ctx}")

    def _guided_answer(self, session: Any, tokens: list[int], schema: dict[str, Any], started: float) -> Completion:
        """One document's answer through `session` (the shared context or a slot of a group)."""
        decoder = GuidedDecoder(session, self._vocabulary(), continue_bias=self.continue_bias)
        evaluated = decoder.start(tokens)
        decoder.value(schema)
        # The closing text is not evaluated: the next call keeps only the common prefix with
        # its own prompt (inside the system prompt), so those tokens would be dropped unread,
        # and skipping them saves one forward pass per document.
        answer_tokens = session.n_past + len(decoder.pending) - len(tokens)
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

    def complete_many(
        self, requests: list[tuple[list[dict[str, str]], dict[str, Any], int]]
    ) -> list[Completion | BackendError]:
        """Several requests, order preserved. Guided ones are decoded together in groups
        (llama_parallel: one forward pass per step for the whole group); the rest one by one."""
        out: list[Completion | BackendError | None] = [None] * len(requests)
        guided: list[int] = []
        for i, (messages, schema, max_tokens) in enumerate(requests):
            if self.parallel_slots > 1 and self.guided and _supported(schema):
                guided.append(i)
            else:
                out[i] = self._one(messages, schema, max_tokens)
        if len(guided) == 1:
            i = guided[0]
            out[i] = self._one(*requests[i])
        elif guided:
            for i, result in zip(guided, self._complete_parallel([requests[i] for i in guided]), strict=True):
                out[i] = result
        return [r if r is not None else BackendError("no result") for r in out]

    def _one(
        self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int
    ) -> Completion | BackendError:
        try:
            return self.complete(messages, schema, max_tokens=max_tokens)
        except BackendError as exc:
            return exc

    def _complete_parallel(
        self, requests: list[tuple[list[dict[str, str]], dict[str, Any], int]]
    ) -> list[Completion | BackendError]:
        from engine.extract.llama_parallel import common_prefix, plan_groups

        with self._lock:  # the formatter and the vocabulary index are built once, under the lock
            prompts = [self._prompt_tokens(messages) for messages, _schema, _max in requests]
            self._vocabulary()
        context = self._parallel_context()
        out: list[Completion | BackendError | None] = [None] * len(requests)
        fits = []
        for i, tokens in enumerate(prompts):
            try:
                self._check_fits(tokens, self.n_ctx)
                fits.append(i)
            except BackendError as exc:
                out[i] = exc
        if fits:
            shared = min(common_prefix(prompts[fits[0]], prompts[i]) for i in fits)
            groups = plan_groups([len(prompts[i]) - shared for i in fits], shared, context.n_ctx,
                                 context.n_slots, answer_budget=256)
            for group in groups:
                members = [fits[g] for g in group]
                started = time.perf_counter()
                results = context.run(
                    [prompts[i] for i in members],
                    _Answer(self, [prompts[i] for i in members], [requests[i][1] for i in members], started),
                )
                for i, result in zip(members, results, strict=True):
                    out[i] = _as_result(result)
        return [r if r is not None else BackendError("no result") for r in out]

    def _vocabulary(self) -> VocabIndex:
        """The model's token index for guided decoding, built on first use (callers hold the lock)."""
        if self._vocab is None:
            self._vocab = VocabIndex.build(LlamaSession(self.llama))
        return self._vocab

    def _parallel_context(self):  # noqa: ANN202 - a llama_parallel.ParallelContext
        if self._parallel is None:
            from engine.extract.llama_parallel import ParallelContext

            with self._lock:
                if self._parallel is None:
                    self._parallel = ParallelContext(self.llama, n_slots=self.parallel_slots,
                                                     n_ctx=self.parallel_ctx, n_batch=self.n_batch)
        return self._parallel

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
        if self._parallel is not None:
            self._parallel.forget_prefix()


def _supported(schema: dict[str, Any]) -> bool:
    try:
        check_supported(schema)
    except UnsupportedSchema:
        return False
    return True


def _as_result(result: Any) -> Completion | BackendError:
    """A slot's outcome: a completion, a backend error, or a bug re-raised as the single path would."""
    if isinstance(result, BaseException) and not isinstance(result, BackendError):
        raise result
    return result


class _Answer:
    """The per-document decode a group runs in each slot's thread."""

    def __init__(self, backend: LlamaCppBackend, prompts: list[list[int]], schemas: list[dict[str, Any]],
                 started: float) -> None:
        self.backend, self.prompts, self.schemas, self.started = backend, prompts, schemas, started

    def __call__(self, session: Any) -> Completion:
        i = session.index
        return self.backend._guided_answer(session, self.prompts[i], self.schemas[i], self.started)
