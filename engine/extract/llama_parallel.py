"""Several documents decoded together by one llama.cpp context: one forward pass per step for all.

On two CPU cores a single-token forward pass of the bundled 1.5B model is bound by reading the
weights, not by arithmetic, so a pass over one token from each of k documents costs little more
than a pass over one (benchmarks/tiers.py measures the cascade with and without). The guided
decoder makes one decision per pass; here each document's decoder runs in its own thread against a
`SlotSession`, and a coordinator gathers one pending evaluation from every unfinished document into
one `llama_decode` call (each document in its own sequence of the KV cache).

- The fixed prompt prefix (system prompt) lives once in sequence 0 and is shared into each
  document's sequence with `llama_memory_seq_cp` (cells shared, not copied or re-evaluated), so
  the prefix-cache saving of the single-document path is kept.
- Every step holds every unfinished document, in input order: which documents share a pass is
  decided by the inputs, not by thread timing.
- The context is separate from the `Llama`'s own (which the single-document path keeps using), on
  the same loaded weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from engine.extract.types import BackendError

R = TypeVar("R")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def plan_groups(
    suffix_tokens: Sequence[int], prefix: int, n_ctx: int, n_slots: int, answer_budget: int
) -> list[list[int]]:
    """Consecutive groups of request indices whose KV cells (the shared prefix once, then each
    request's own tokens and answer budget) fit the context, at most `n_slots` per group."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = prefix
    for i, n in enumerate(suffix_tokens):
        need = n + answer_budget
        if current and (len(current) >= n_slots or used + need > n_ctx):
            groups.append(current)
            current, used = [], prefix
        current.append(i)
        used += need
    if current:
        groups.append(current)
    return groups


@dataclass
class _Member:
    index: int
    seq: int
    n_past: int
    logits: np.ndarray | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Step:
    """The coordinator's view of one group: who waits with which tokens."""

    alive: int
    requests: dict[int, list[int]] = field(default_factory=dict)
    results: dict[int, np.ndarray] = field(default_factory=dict)
    failed: str | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)


class SlotSession:
    """The guided decoder's LMSession for one document of a group (see guided.LMSession)."""

    def __init__(self, context: ParallelContext, member: _Member, step: _Step, pending: list[int]) -> None:
        self._context, self._member, self._step, self._pending = context, member, step, pending

    @property
    def n_past(self) -> int:
        """Tokens in this sequence's KV cache (shared prefix + evaluated suffix)."""
        return self._member.n_past

    @property
    def index(self) -> int:
        """The document's place in its group."""
        return self._member.index

    def n_vocab(self) -> int:
        return self._context.llama.n_vocab()

    def tokenize(self, data: bytes) -> list[int]:
        return self._context.llama.tokenize(data, add_bos=False, special=False)

    def piece(self, token_id: int) -> bytes:
        return self._context.llama.detokenize([token_id])

    def special_ids(self) -> list[int]:
        return [self._context.llama.token_eos(), self._context.llama.token_bos()]

    def start(self, prompt_tokens: list[int]) -> list[int]:
        """The prefix is already shared into this sequence by the coordinator."""
        return list(self._pending)

    def eval(self, tokens: list[int]) -> None:
        step, member = self._step, self._member
        with step.cond:
            step.requests[member.index] = list(tokens)
            step.cond.notify_all()
            while member.index not in step.results and step.failed is None:
                step.cond.wait()
            if step.failed is not None:
                raise BackendError(step.failed)
            member.logits = step.results.pop(member.index)
        member.n_past += len(tokens)

    def last_logits(self) -> np.ndarray:
        if self._member.logits is None:
            raise BackendError("no logits yet: nothing was evaluated")
        return self._member.logits.astype(np.float64)


class ParallelContext:
    """A llama.cpp context with one sequence per document slot plus the shared prefix (seq 0)."""

    def __init__(self, llama: Any, *, n_slots: int = 8, n_ctx: int = 4096, n_batch: int = 512) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self.llama, self.n_slots, self.n_ctx, self.n_batch = llama, n_slots, n_ctx, n_batch
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_seq_max = n_slots + 1
        params.kv_unified = True  # one buffer: the shared prefix's cells serve every sequence
        self._ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
        self._n_vocab = llama.n_vocab()
        self.prefix: list[int] = []
        self.lock = threading.Lock()
        self._adopt_prefix()

    def _adopt_prefix(self) -> None:
        """Start from what the `Llama`'s own context already evaluated (the system prompt, when the
        single-document path ran first): its KV cells are copied, not recomputed (~1,000 tokens)."""
        import ctypes

        import llama_cpp

        llama = self.llama
        n = int(llama.n_tokens)
        if n <= 0 or n + 256 > self.n_ctx:
            return
        size = llama_cpp.llama_state_seq_get_size(llama._ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        if not llama_cpp.llama_state_seq_get_data(llama._ctx.ctx, buf, size, 0):
            return
        if not llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, size, 0):
            llama_cpp.llama_memory_seq_rm(self._mem, 0, -1, -1)
            return
        # the single path leaves unread cells past n_tokens (the answer's closing text): drop them
        llama_cpp.llama_memory_seq_rm(self._mem, 0, n, -1)
        self.prefix = llama.input_ids[:n].tolist()

    # --- the shared prefix ----------------------------------------------------------------
    def share_prefix(self, prompts: Sequence[Sequence[int]]) -> int:
        """Make sequence 0 hold the longest prefix every prompt shares (re-using what it already
        holds); returns its length. At least one token of each prompt is left to evaluate."""
        import llama_cpp

        shared = min(len(p) - 1 for p in prompts)
        first = prompts[0]
        for p in prompts[1:]:
            shared = min(shared, common_prefix(first, p))
        keep = min(common_prefix(self.prefix, first), shared)
        if keep < len(self.prefix):
            llama_cpp.llama_memory_seq_rm(self._mem, 0, keep, -1)
            self.prefix = self.prefix[:keep]
        if shared > keep:
            self._decode([(0, keep, list(first[keep:shared]), False)])
            self.prefix = list(first[:shared])
        return len(self.prefix)

    def forget_prefix(self) -> None:
        import llama_cpp

        with self.lock:
            llama_cpp.llama_memory_seq_rm(self._mem, 0, -1, -1)
            self.prefix = []

    # --- one batched forward pass ---------------------------------------------------------
    def _decode(self, requests: list[tuple[int, int, list[int], bool]]) -> list[np.ndarray | None]:
        """(seq, first position, tokens, want logits of the last token) → each one's last logits.
        Split into llama batches of at most n_batch tokens; a request may straddle two."""
        import llama_cpp

        out: list[np.ndarray | None] = [None] * len(requests)
        flat = [(r, pos + k, tok, want and k == len(toks) - 1)
                for r, (_seq, pos, toks, want) in enumerate(requests) for k, tok in enumerate(toks)]
        batch = self._batch.batch
        for lo in range(0, len(flat), self.n_batch):
            chunk = flat[lo : lo + self.n_batch]
            batch.n_tokens = len(chunk)
            for i, (r, pos, tok, want) in enumerate(chunk):
                batch.token[i], batch.pos[i] = tok, pos
                batch.seq_id[i][0], batch.n_seq_id[i] = requests[r][0], 1
                batch.logits[i] = want
            status = llama_cpp.llama_decode(self._ctx.ctx, batch)
            if status != 0:
                raise BackendError(f"llama_decode failed with status {status} (context of {self.n_ctx} full?)")
            for i, (r, _pos, _tok, want) in enumerate(chunk):
                if want:
                    row = llama_cpp.llama_get_logits_ith(self._ctx.ctx, i)
                    out[r] = np.ctypeslib.as_array(row, shape=(self._n_vocab,)).copy()
        return out

    # --- a group of documents -------------------------------------------------------------
    def run(self, prompts: Sequence[Sequence[int]], decode: Callable[[SlotSession], R]) -> list[R | BaseException]:
        """Decode every prompt (at most n_slots) together: `decode(session)` runs in a thread per
        prompt; its return value (or the exception it raised) is that prompt's result."""
        import llama_cpp

        if not prompts:
            return []
        if len(prompts) > self.n_slots:
            raise ValueError(f"{len(prompts)} prompts for {self.n_slots} slots")
        with self.lock:
            shared = self.share_prefix(prompts)
            step = _Step(alive=len(prompts))
            members = [_Member(index=i, seq=i + 1, n_past=shared) for i in range(len(prompts))]
            for m in members:
                llama_cpp.llama_memory_seq_rm(self._mem, m.seq, -1, -1)
                llama_cpp.llama_memory_seq_cp(self._mem, 0, m.seq, 0, shared)
            sessions = [SlotSession(self, m, step, list(p[shared:])) for m, p in zip(members, prompts, strict=True)]
            threads = [threading.Thread(target=self._member_main, args=(m, s, step, decode), daemon=True)
                       for m, s in zip(members, sessions, strict=True)]
            try:
                for t in threads:
                    t.start()
                self._coordinate(step, members)
            finally:
                for t in threads:
                    t.join()
                for m in members:
                    llama_cpp.llama_memory_seq_rm(self._mem, m.seq, -1, -1)
        return [m.error if m.error is not None else m.result for m in members]

    @staticmethod
    def _member_main(member: _Member, session: SlotSession, step: _Step, decode: Callable[[SlotSession], Any]) -> None:
        try:
            member.result = decode(session)
        except BaseException as exc:  # noqa: BLE001 - handed back as this document's result
            member.error = exc
        finally:
            with step.cond:
                step.alive -= 1
                step.cond.notify_all()

    def _coordinate(self, step: _Step, members: list[_Member]) -> None:
        """One forward pass whenever every unfinished document waits for one, until all finish."""
        with step.cond:
            while True:
                while step.alive and len(step.requests) < step.alive:
                    step.cond.wait()
                if not step.alive:
                    return
                order = sorted(step.requests)
                batch = [(members[i].seq, members[i].n_past, step.requests[i], True) for i in order]
                step.requests = {}
                try:
                    rows = self._decode(batch)
                except BackendError as exc:
                    step.failed = str(exc)
                    step.cond.notify_all()
                    continue
                for i, row in zip(order, rows, strict=True):
                    assert row is not None
                    step.results[i] = row
                step.cond.notify_all()
