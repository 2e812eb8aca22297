"""Extraction: user text (already redacted) → typed persona facts + document sentiment.

Tiers (one interface: ``extract(text, lang)`` and ``version``; see README.md):
- ``encoder``: the fine-tuned multilingual encoder (token tagging + sentiment head), batched;
- ``llm``: the LLM extractor below;
- ``cascade`` (default): the encoder on every document, the LLM on the ones it is unsure of.

LLM backends (one interface, ``LLMBackend.complete``):
- ``llama_cpp`` (default): the bundled Qwen2.5-Coder-1.5B GGUF in-process;
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server);
- ``transformers``: a local Hugging Face model directory (optional extra ``[hf]``).
"""

from __future__ import annotations

from pathlib import Path

from engine.config import LLMSettings
from engine.extract.cache import ExtractionCache, cache_key
from engine.extract.extractor import Extractor, ExtractorConfig
from engine.extract.types import BackendError, Completion, ExtractionResult, LLMBackend, TokenLogprob

BACKENDS: tuple[str, ...] = ("llama_cpp", "openai", "transformers")


def make_backend(
    llm: LLMSettings | None = None, *, model: str | None = None, model_cache: Path | None = None
) -> LLMBackend:
    """The backend `llm.backend` names, configured from `llm`; `model` overrides its model
    (a GGUF path, a served model name or a HF directory). Heavy imports stay lazy."""
    llm = llm or LLMSettings()
    name = llm.backend.strip().lower()
    if name in ("llama_cpp", "llama", "llamacpp"):
        from engine.extract.llama_backend import LlamaCppBackend

        return LlamaCppBackend(model or llm.model_path, n_threads=llm.threads, model_cache=model_cache)
    if name == "openai":
        from engine.extract.openai_backend import OpenAIBackend

        return OpenAIBackend(base_url=llm.base_url, model=model or llm.model, api_key=llm.api_key,
                             response_format=llm.response_format)
    if name in ("transformers", "hf"):
        from engine.extract.hf_backend import TransformersBackend

        model_dir = model or llm.hf_model_dir
        if not model_dir:
            raise BackendError("transformers backend needs a model directory (PERSONA_HF_MODEL_DIR)")
        return TransformersBackend(model_dir, device=llm.hf_device)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def make_extractor(
    llm: LLMSettings | None = None,
    *,
    allow_sensitive: bool = False,
    model: str | None = None,
    model_cache: Path | None = None,
    config: ExtractorConfig | None = None,
) -> Extractor:
    llm = llm or LLMSettings()
    cfg = config or ExtractorConfig(
        allow_sensitive=allow_sensitive, alert_rules=str(llm.alert_rules) if llm.alert_rules else None
    )
    return Extractor(make_backend(llm, model=model, model_cache=model_cache), cfg)


TIERS: tuple[str, ...] = ("cascade", "encoder", "llm")


def make_tier(
    tier: str,
    llm: LLMSettings | None = None,
    *,
    allow_sensitive: bool = False,
    model_cache: Path | None = None,
    weights: Path | None = None,
    llm_config: ExtractorConfig | None = None,
):
    """The extractor of a tier. The LLM of a cascade loads on its first escalation only."""
    name = tier.strip().lower()
    if name not in TIERS:
        raise BackendError(f"unknown extractor {tier!r}; choose one of {', '.join(TIERS)}")

    def llm_tier() -> Extractor:
        config = llm_config or ExtractorConfig(allow_sensitive=allow_sensitive)
        return make_extractor(llm, allow_sensitive=allow_sensitive, model_cache=model_cache, config=config)

    if name == "llm":
        return llm_tier()
    from engine.extract.cascade import CascadeExtractor
    from engine.extract.encoder import load_encoder

    encoder = load_encoder(model_cache, weights=weights, allow_sensitive=allow_sensitive)
    if name == "encoder":
        return encoder
    return CascadeExtractor(encoder, llm_tier, encoder.cascade_policy())


__all__ = [
    "TIERS",
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
    "make_tier",
]
