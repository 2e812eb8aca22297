"""Batched inference over the encoder's tasks: tokenise with character offsets, run the shared trunk
once per batch, then each task's adapted top layers; texts are cut into windows of whole sentences
so any length fits and offsets stay in the original text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

PREFIX = "query: "  # the e5 models were trained with it
MAX_TOKENS = 128
WINDOW_CHARS = 400
# Padded tokens per forward chunk: big enough for efficient matrix products on 2 cores, small
# enough that short texts are not padded to the longest of 64 (CPU time for 256 short texts in
# one run: no limit 23 s, 2048 18.5 s, 1024 21 s, 512 28 s).
CHUNK_TOKENS = 2048
_SENTENCE_END = re.compile(r"[.!?。！？；;\n]\s*")


class Encoded(NamedTuple):
    ids: list[int]
    offsets: list[tuple[int, int]]  # in the window's text; (0, 0) for special and prefix tokens


class Window(NamedTuple):
    doc: int
    start: int  # character offset of the window in its document
    text: str


def windows(texts: Sequence[str], max_chars: int = WINDOW_CHARS) -> list[Window]:
    """Each text as windows of at most `max_chars`, cut after a sentence end where there is one."""
    out: list[Window] = []
    for doc, text in enumerate(texts):
        start = 0
        while len(text) - start > max_chars:
            part = text[start : start + max_chars]
            ends = [m.end() for m in _SENTENCE_END.finditer(part) if m.end() > max_chars // 3]
            cut = ends[-1] if ends else (part.rfind(" ") + 1 or max_chars)
            out.append(Window(doc, start, part[:cut]))
            start += cut
        out.append(Window(doc, start, text[start:]))
    return out


def encode(tokenizer: Any, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> list[Encoded]:
    """Token ids with offsets into each text (the "query: " prefix is added and masked out)."""
    batch = tokenizer([PREFIX + t for t in texts], truncation=True, max_length=max_tokens,
                      return_offsets_mapping=True, add_special_tokens=True)
    out = []
    for ids, offsets in zip(batch["input_ids"], batch["offset_mapping"], strict=True):
        shifted = [(0, 0) if e <= len(PREFIX) else (max(s - len(PREFIX), 0), e - len(PREFIX)) for s, e in offsets]
        out.append(Encoded(list(ids), shifted))
    return out


def pad(rows: Sequence[Sequence[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


class TaskOutputs(NamedTuple):
    encoded: list[Encoded]
    facts: list[np.ndarray] | None  # per text: [tokens, tags] probabilities
    sentiment: np.ndarray | None  # [texts, labels] logits


def run_tasks(
    model: Any, tokenizer: Any, texts: Sequence[str], tasks: Sequence[str], *, batch_size: int = 64,
    pad_id: int = 1, max_tokens: int = CHUNK_TOKENS,
) -> TaskOutputs:
    """All tasks over short texts (one window each), in chunks of similar length so little is
    padded. `model` is an EncoderTasks or its FoldedTasks."""
    encoded = encode(tokenizer, texts)
    lengths = [len(e.ids) for e in encoded]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    facts: list[np.ndarray | None] = [None] * len(texts)
    sentiment = np.zeros((len(texts), 3), dtype=np.float32) if "sentiment" in tasks else None
    model.eval()
    with torch.inference_mode():
        for chunk in _chunks(order, lengths, batch_size, max_tokens):
            ids, mask = pad([encoded[i].ids for i in chunk], pad_id)
            hidden = model.trunk(ids, mask)
            if "facts" in tasks:
                probs = model.logits(hidden, mask, "facts").softmax(-1).numpy()
                for row, i in enumerate(chunk):
                    facts[i] = probs[row, : lengths[i]]
            if sentiment is not None:
                sentiment[chunk] = model.logits(hidden, mask, "sentiment").numpy()
    return TaskOutputs(encoded, facts if "facts" in tasks else None, sentiment)  # type: ignore[arg-type]


def _chunks(order: list[int], lengths: Sequence[int], size: int, max_tokens: int) -> Iterator[list[int]]:
    """Consecutive runs of `order` (ascending length) of at most `size` rows and `max_tokens`
    padded tokens: one long text no longer pads a whole batch of short ones."""
    chunk: list[int] = []
    for i in order:
        if chunk and (len(chunk) == size or (len(chunk) + 1) * lengths[i] > max_tokens):
            yield chunk
            chunk = []
        chunk.append(i)
    if chunk:
        yield chunk
