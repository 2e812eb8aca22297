"""LLM extraction: user text (already redacted) → typed persona facts + document sentiment.

Backends (one interface, ``LLMBackend.complete``):
- ``llama_cpp`` (default): the bundled Qwen2.5-Coder-1.5B GGUF in-process;
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server);
- ``transformers``: a local Hugging Face model directory (optional extra ``[hf]``).
"""

from __future__ import annotations

import os

from engine.extract.cache import ExtractionCache, cache_key
from engine.extract.extractor import Extractor, ExtractorConfig
from engine.extract.types import BackendError, Completion, ExtractionResult, LLMBackend, TokenLogprob

BACKENDS: tuple[str, ...] = ("llama_cpp", "openai", "transformers")


def make_backend(
    name: str | None = None, *, model: str | None = None, base_url: str | None = None
) -> LLMBackend:
    """Backend by name (default PERSONA_LLM_BACKEND or llama_cpp); heavy imports stay lazy."""
    name = (name or os.environ.get("PERSONA_LLM_BACKEND") or "llama_cpp").strip().lower()
    if name in ("llama_cpp", "llama", "llamacpp"):
        from engine.extract.llama_backend import LlamaCppBackend

        return LlamaCppBackend(model or os.environ.get("PERSONA_LLM_MODEL_PATH") or None)
    if name == "openai":
        from engine.extract.openai_backend import OpenAIBackend

        return OpenAIBackend(base_url=base_url, model=model)
    if name in ("transformers", "hf"):
        from engine.extract.hf_backend import TransformersBackend

        model_dir = model or os.environ.get("PERSONA_HF_MODEL_DIR")
        if not model_dir:
            raise BackendError("transformers backend needs a model directory (PERSONA_HF_MODEL_DIR)")
        return TransformersBackend(model_dir)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def make_extractor(
    backend: str | None = None,
    *,
    allow_sensitive: bool = False,
    model: str | None = None,
    base_url: str | None = None,
    config: ExtractorConfig | None = None,
) -> Extractor:
    cfg = config or ExtractorConfig(allow_sensitive=allow_sensitive)
    return Extractor(make_backend(backend, model=model, base_url=base_url), cfg)


__all__ = [
    "BACKENDS",
    "BackendError",
    "Completion",
    "ExtractionCache",
    "ExtractionResult",
    "Extractor",
    "ExtractorConfig",
    "LLMBackend",
    "TokenLogprob",
    "cache_key",
    "make_backend",
    "make_extractor",
]
