"""Transformers backend: a local Hugging Face model directory (optional extra ``[hf]``).

Loads with ``local_files_only=True`` (never a hub download), renders the tokenizer's chat
template and decodes with the same schema-guided decoder as the llama.cpp backend, so the JSON
is valid by construction without outlines/lm-format-enforcer. The KV cache of the longest
common prompt prefix (the fixed system prompt) is kept between calls.

On a GPU: ``PERSONA_HF_DEVICE=cuda`` (default: cuda when available, else cpu).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.extract.guided import GuidedDecoder, UnsupportedSchema, VocabIndex, check_supported
from engine.extract.types import BackendError, Completion


class HFSession:
    """LMSession over a causal LM with a DynamicCache cropped to the shared prefix."""

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.ids: list[int] = []
        self.past: Any = None
        self._last: np.ndarray | None = None
        self._n_vocab = int(model.get_output_embeddings().weight.shape[0])

    def n_vocab(self) -> int:
        return self._n_vocab

    def tokenize(self, data: bytes) -> list[int]:
        return self.tokenizer.encode(data.decode("utf-8", errors="replace"), add_special_tokens=False)

    def piece(self, token_id: int) -> bytes:
        if token_id >= len(self.tokenizer):
            return b""  # padded embedding rows with no token
        return self.tokenizer.decode([token_id], skip_special_tokens=False).encode("utf-8")

    def special_ids(self) -> list[int]:
        return [i for i in self.tokenizer.all_special_ids if i is not None]

    def start(self, prompt_tokens: list[int]) -> list[int]:
        common = 0
        for a, b in zip(self.ids, prompt_tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt_tokens) - 1)
        if self.past is not None and common > 0:
            extra = len(self.ids) - common
            if extra > 0:  # negative = tokens to drop (transformers 4.x and 5.x agree on this)
                self.past.crop(-extra)
            self.ids = self.ids[:common]
        else:
            self.past, self.ids = None, []
        return list(prompt_tokens[len(self.ids) :])

    def eval(self, tokens: list[int]) -> None:
        import torch
        from transformers import DynamicCache

        if self.past is None:
            self.past = DynamicCache()
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([tokens], device=self.device),
                past_key_values=self.past,
                use_cache=True,
            )
        self.past = out.past_key_values
        self.ids.extend(tokens)
        self._last = out.logits[0, -1].float().cpu().numpy().astype(np.float64)

    def last_logits(self) -> np.ndarray:
        assert self._last is not None, "eval() before last_logits()"
        return self._last


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir: str | Path, *, device: str | None = None, dtype: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers import __version__ as _tf_version
        except ImportError as exc:  # the [hf] extra is optional
            raise BackendError("the transformers backend needs the [hf] extra: torch and transformers") from exc
        path = Path(model_dir)
        if not path.is_dir():
            raise BackendError(f"model directory not found: {path}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device == "cuda" else torch.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        # transformers ≥ 4.56 calls it `dtype`; older releases only know `torch_dtype`.
        major, minor = (int(x) for x in _tf_version.split(".")[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **{dtype_kw: torch_dtype})
        self.model.to(self.device).eval()
        self.model_id = f"transformers:{path.resolve().name}"
        self._session = HFSession(self.model, self.tokenizer, self.device)
        self._vocab: VocabIndex | None = None
        self._lock = threading.Lock()

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # plain models: a readable transcript ending where the answer starts
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return self.tokenizer.encode(text, add_special_tokens=False)

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int
    ) -> Completion:
        try:
            check_supported(schema)
        except UnsupportedSchema as exc:
            raise BackendError(f"schema not supported by guided decoding: {exc}") from exc
        started = time.perf_counter()
        with self._lock:
            if self._vocab is None:
                self._vocab = VocabIndex.build(self._session)
            tokens = self._prompt_tokens(messages)
            decoder = GuidedDecoder(self._session, self._vocab)
            evaluated = decoder.start(tokens)
            decoder.value(schema)
            decoder.flush()
        return Completion(
            text=decoder.text,
            prompt_tokens=len(tokens),
            completion_tokens=len(self._session.ids) - len(tokens),
            seconds=time.perf_counter() - started,
            logprobs=decoder.out,
            finish_reason="stop",
            prompt_tokens_evaluated=evaluated,
            decode_calls=decoder.calls,
        )
