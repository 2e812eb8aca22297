"""Contracts of the extractor: what a backend returns and what the extractor hands on."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from engine.contracts import DocumentSentiment, Fact


class TokenLogprob(BaseModel):
    """One generated token and the log-probability the model gave it before any grammar mask."""

    text: str
    logprob: float
    # Log-probabilities of other candidates at this step (only kept at a few steps).
    top: dict[str, float] = Field(default_factory=dict)


class Completion(BaseModel):
    """One model call's raw output."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    # Per generated token, when the backend can report them (llama.cpp, transformers, most
    # OpenAI-compatible servers); None otherwise.
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    # Prompt tokens actually evaluated (the rest came from the KV cache), when known.
    prompt_tokens_evaluated: int | None = None
    # Forward passes spent on the answer (guided decoding batches forced text), when known.
    decode_calls: int | None = None


class BackendError(RuntimeError):
    """The backend could not produce a completion (server down, timeout, model missing)."""


@runtime_checkable
class LLMBackend(Protocol):
    """A chat model that can be held to a JSON schema."""

    name: str

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int
    ) -> Completion: ...


class ExtractionResult(BaseModel):
    """Facts about the author and the document sentiment from one document."""

    facts: list[Fact] = Field(default_factory=list)
    sentiment: DocumentSentiment = Field(
        default_factory=lambda: DocumentSentiment(label="neutral", confidence=0.0)
    )
    # Reason → count for facts the model proposed that were not kept.
    dropped: dict[str, int] = Field(default_factory=dict)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    # First answer parsed and validated without the repair retry.
    valid_first_try: bool = True
    repaired: bool = False
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    backend: str = ""
    # Facts the extractor proposed but is unsure of (below its threshold, above its noise floor):
    # what a cascade asks the next tier about. Not written to the graph.
    unsure: list[Fact] = Field(default_factory=list)
