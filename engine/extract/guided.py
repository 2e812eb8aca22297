"""Schema-guided JSON decoding for llama.cpp: the model only makes the real decisions.

With a GBNF grammar every character of the answer is generated one forward pass at a time,
including keys and punctuation the schema already fixes (``{"facts": [{"predicate": "``). On
two CPU cores a pass costs ~65 ms, and an answer with one fact is ~60 tokens, ~40 of them
forced. Here the forced text is appended in one batched evaluation and the model is consulted
only where the schema leaves a choice:

- arrays: continue or close (compare the probability mass of tokens starting an item vs ``]``),
- enum strings: greedy over the token trie of the allowed values,
- free strings: greedy tokens until a quote, the length limit or a banned token.

The result is the same JSON a grammar would allow (every answer parses), about 3× fewer model
calls, and a log-probability for each decision, which is what fact confidence is built from.

Supported schema subset: objects whose properties are all required (emitted in schema order),
arrays of those with ``maxItems``, strings with ``enum`` or ``maxLength``. Anything else raises
UnsupportedSchema and the backend falls back to the grammar path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engine.extract.types import TokenLogprob


class UnsupportedSchema(ValueError):
    pass


def check_supported(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if kind == "string":
        return
    if kind == "object":
        props = schema.get("properties", {})
        if set(schema.get("required", [])) != set(props):
            raise UnsupportedSchema("object with optional properties")
        for sub in props.values():
            check_supported(sub)
        return
    if kind == "array":
        check_supported(schema.get("items", {}))
        return
    raise UnsupportedSchema(f"type {kind!r}")


class LMSession(Protocol):
    """What guided decoding needs from a model runtime (llama.cpp, transformers)."""

    def n_vocab(self) -> int: ...
    def tokenize(self, data: bytes) -> list[int]: ...
    def piece(self, token_id: int) -> bytes: ...
    def special_ids(self) -> list[int]: ...
    def start(self, prompt_tokens: list[int]) -> list[int]:
        """Prepare the KV cache for this prompt; returns the prompt tokens still to evaluate."""
        ...
    def eval(self, tokens: list[int]) -> None: ...
    def last_logits(self) -> np.ndarray: ...


class LlamaSession:
    """LMSession over a llama_cpp.Llama, reusing its KV cache across prompts."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama

    @property
    def n_past(self) -> int:
        """Tokens in the KV cache (prompt + evaluated answer)."""
        return self.llama.n_tokens

    def n_vocab(self) -> int:
        return self.llama.n_vocab()

    def tokenize(self, data: bytes) -> list[int]:
        return self.llama.tokenize(data, add_bos=False, special=False)

    def piece(self, token_id: int) -> bytes:
        return self.llama.detokenize([token_id])

    def special_ids(self) -> list[int]:
        return [self.llama.token_eos(), self.llama.token_bos()]

    def start(self, prompt_tokens: list[int]) -> list[int]:
        llama = self.llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, prompt_tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt_tokens) - 1)  # re-evaluate ≥1 token to get logits
        llama.n_tokens = common  # eval() drops the KV entries past this point
        return list(prompt_tokens[common:])

    def eval(self, tokens: list[int]) -> None:
        self.llama.eval(tokens)

    def last_logits(self) -> np.ndarray:
        ptr = self.llama._ctx.get_logits()
        return np.ctypeslib.as_array(ptr, shape=(self.llama.n_vocab(),)).astype(np.float64)


@dataclass
class VocabIndex:
    """Per-model token facts computed once: bytes per id and the id sets decisions need."""

    pieces: list[bytes]
    banned_in_string: np.ndarray  # bool mask: control chars, backslash, special tokens
    starts_with: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, session: LMSession) -> VocabIndex:
        n_vocab = session.n_vocab()
        pieces = [session.piece(i) for i in range(n_vocab)]
        banned = np.zeros(n_vocab, dtype=bool)
        for i, piece in enumerate(pieces):
            if not piece or b"\\" in piece or any(b < 0x20 for b in piece):
                banned[i] = True
        for special in session.special_ids():
            if special is not None and 0 <= special < n_vocab:
                banned[special] = True
        index = cls(pieces=pieces, banned_in_string=banned)
        for ch in "{]},[\"":
            index.starts_with[ch] = np.array(
                [i for i, p in enumerate(pieces) if p.lstrip(b" ").startswith(ch.encode())],
                dtype=np.int64,
            )
        return index


def _logsumexp(values: np.ndarray) -> float:
    if values.size == 0:
        return -math.inf
    peak = float(values.max())
    return peak + math.log(float(np.exp(values - peak).sum()))


class GuidedDecoder:
    """Decode one answer for a prompt already tokenised; the caller holds the model lock."""

    def __init__(self, session: LMSession, vocab: VocabIndex, *, continue_bias: float = 0.0) -> None:
        self.session = session
        self.vocab = vocab
        # Added to log P(continue) − log P(close) at array decisions; < 0 favours fewer items.
        self.continue_bias = continue_bias
        self.n_vocab = session.n_vocab()
        self.pending: list[int] = []
        self.out: list[TokenLogprob] = []
        self.generated = 0
        self.calls = 0
        self._decision_lp: float | None = None

    # --- model access -------------------------------------------------------------------
    def start(self, prompt_tokens: list[int]) -> int:
        """Reuse the KV cache for the longest common prefix; returns tokens actually evaluated."""
        self.pending = self.session.start(prompt_tokens)
        return len(self.pending)

    def _logits(self) -> np.ndarray:
        if self.pending:
            self.session.eval(self.pending)
            self.pending = []
            self.calls += 1
        return self.session.last_logits()

    def flush(self) -> None:
        """Evaluate the closing text too, so the session's cache matches what was emitted."""
        if self.pending:
            self.session.eval(self.pending)
            self.pending = []
            self.calls += 1

    def _tokenize(self, text: str) -> list[int]:
        return self.session.tokenize(text.encode("utf-8"))

    # --- output -------------------------------------------------------------------------
    def _force(self, text: str) -> None:
        if not text:
            return
        self.pending.extend(self._tokenize(text))
        lp = self._decision_lp if self._decision_lp is not None else 0.0
        self._decision_lp = None
        self.out.append(TokenLogprob(text=text, logprob=lp))

    def _emit_token(self, token_id: int, text: str, logprob: float, top: dict[str, float] | None = None) -> None:
        self.pending.append(token_id)
        self.generated += 1
        self.out.append(TokenLogprob(text=text, logprob=logprob, top=top or {}))

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.out)

    # --- schema walk --------------------------------------------------------------------
    def value(self, schema: dict[str, Any]) -> None:
        kind = schema.get("type")
        if kind == "object":
            self._object(schema)
        elif kind == "array":
            self._array(schema)
        elif kind == "string" and "enum" in schema:
            self._force('"')
            self._enum([str(v) for v in schema["enum"]])
            self._force('"')
        elif kind == "string":
            self._force('"')
            self._free_string(schema.get("maxLength", 200), schema.get("minLength", 0))
            self._force('"')
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def _object(self, schema: dict[str, Any]) -> None:
        props = schema.get("properties", {})
        self._force("{")
        for i, (key, sub) in enumerate(props.items()):
            self._force((", " if i else "") + json.dumps(key) + ": ")
            self.value(sub)
        self._force("}")

    def _array(self, schema: dict[str, Any]) -> None:
        item = schema.get("items", {})
        opener = {"object": "{", "array": "[", "string": '"'}.get(item.get("type", ""), "{")
        self._force("[")
        n = 0
        while n < schema.get("maxItems", 16):
            logits = self._logits()
            total = _logsumexp(logits)
            cont_ids = self.vocab.starts_with[opener if n == 0 else ","]
            lp_cont = _logsumexp(logits[cont_ids]) - total
            lp_close = _logsumexp(logits[self.vocab.starts_with["]"]]) - total
            if lp_cont + self.continue_bias <= lp_close:
                break
            if n:
                self._force(", ")
            self._decision_lp = lp_cont
            self.value(item)
            n += 1
        self._force("]")

    def _enum(self, values: list[str]) -> None:
        seqs = {v: self._tokenize(v) for v in values}
        alive = dict(seqs)
        step = 0
        while len(alive) > 1:
            logits = self._logits()
            total = _logsumexp(logits)
            allowed = sorted({s[step] for s in alive.values() if len(s) > step})
            if not allowed:
                break
            chosen = max(allowed, key=lambda t: logits[t])
            top = {}
            if step == 0:  # the first step is the decision between values: keep all of them
                top = {v: float(logits[s[0]] - total) for v, s in alive.items() if s}
            piece = self.vocab.pieces[chosen].decode("utf-8", errors="replace")
            self._emit_token(chosen, piece, float(logits[chosen] - total), top)
            alive = {v: s for v, s in alive.items() if len(s) > step and s[step] == chosen}
            step += 1
        value = next(iter(alive)) if alive else values[0]
        rest = seqs[value][step:]
        if rest:  # the remaining tokens are implied by the choice: append them unscored
            self.pending.extend(rest)
            text = b"".join(self.vocab.pieces[t] for t in rest).decode("utf-8", errors="replace")
            self.out.append(TokenLogprob(text=text, logprob=0.0))

    def _free_string(self, max_chars: int, min_chars: int) -> None:
        raw = b""
        banned = self.vocab.banned_in_string
        quote_ids = self.vocab.starts_with['"']
        while True:
            logits = self._logits()
            total = _logsumexp(logits)
            masked = np.where(banned, -np.inf, logits)
            if len(raw.decode("utf-8", errors="ignore")) < max(min_chars, 1):
                masked[quote_ids] = -np.inf  # a required string cannot be empty
            chosen = int(np.argmax(masked))
            piece = self.vocab.pieces[chosen]
            if not np.isfinite(masked[chosen]):
                break
            if b'"' in piece:
                head = piece.split(b'"', 1)[0]
                if head:  # e.g. token 'n"': keep the characters before the quote
                    self._force_bytes(raw, head)
                break
            if len((raw + piece).decode("utf-8", errors="ignore")) > max_chars:
                break
            before = raw.decode("utf-8", errors="ignore")
            raw += piece
            text_piece = raw.decode("utf-8", errors="ignore")[len(before):]
            self._emit_token(chosen, text_piece, float(logits[chosen] - total))
            if self.generated > 4096:
                break

    def _force_bytes(self, raw: bytes, head: bytes) -> None:
        before = raw.decode("utf-8", errors="ignore")
        after = (raw + head).decode("utf-8", errors="ignore")
        self.pending.extend(self.session.tokenize(head))
        self.out.append(TokenLogprob(text=after[len(before):], logprob=0.0))
