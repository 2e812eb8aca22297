"""Extraction speed on short documents (≤ 300 characters), in four modes.

    .venv/bin/python benchmarks/extraction.py --n 20 --n-cold 8

- guided + prefix cache (the default path): forced JSON text evaluated in batches, the fixed
  system prompt kept in llama.cpp's KV cache between documents;
- guided, no prefix cache: the KV cache is reset before every document (whole prompt evaluated);
- grammar + prefix cache: llama-cpp-python's create_chat_completion with the GBNF grammar,
  one forward pass per answer token (the baseline's serving path);
- grammar, no prefix cache.

Prints per mode: seconds per document (mean and median: the 2 cores are shared, so the median
is the steadier figure), prompt tokens and prompt tokens actually evaluated, answer tokens,
model forward passes, LLM calls per document. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def short_texts(n: int, seed: int) -> list[tuple[str, str]]:
    """A seeded mix of short en/zh/es texts from the eval data (persona + sentiment)."""
    rng = random.Random(seed)  # noqa: S311 - seeded sampling
    pools: dict[str, list[str]] = {"en": [], "zh": [], "es": []}
    with (DATA / "persona" / "personaext.jsonl").open(encoding="utf-8") as handle:
        pools["en"] = [json.loads(line)["sentence"] for line in handle][:5000]
    for lang, name, key in (("zh", "zh_waimai_10k.jsonl", "text"), ("es", "es_tass2020_train.jsonl", "text")):
        with (DATA / "sentiment" / name).open(encoding="utf-8") as handle:
            pools[lang] = [json.loads(line)[key] for line in handle]
    out: list[tuple[str, str]] = []
    langs = ["en", "zh", "es"]
    while len(out) < n:
        lang = langs[len(out) % 3]
        text = rng.choice(pools[lang])
        if len(text) <= 300:
            out.append((lang, text))
    return out


def run_mode(backend, texts: list[tuple[str, str]], *, guided: bool, reuse_prefix: bool) -> dict[str, float]:
    from engine.extract import Extractor

    backend.guided = guided
    extractor = Extractor(backend)
    extractor.extract("warm up", "en")  # the prefix is evaluated once, outside the timing
    rows = []
    for lang, text in texts:
        if not reuse_prefix:
            backend.reset_prefix_cache()
        calls: list = []
        original = backend.complete

        def spy(messages, schema, *, max_tokens, _orig=original, _calls=calls):
            comp = _orig(messages, schema, max_tokens=max_tokens)
            _calls.append(comp)
            return comp

        backend.complete = spy
        started = time.perf_counter()
        result = extractor.extract(text, lang)
        seconds = time.perf_counter() - started
        backend.complete = original
        rows.append(
            {
                "seconds": seconds,
                "llm_calls": result.llm_calls,
                "prompt_tokens": result.prompt_tokens,
                "evaluated": sum((c.prompt_tokens_evaluated or c.prompt_tokens) for c in calls),
                "answer_tokens": result.completion_tokens,
                "passes": sum((c.decode_calls or c.completion_tokens) for c in calls),
            }
        )
    n = len(rows)
    return {
        "docs": n,
        "s_per_doc_mean": round(sum(r["seconds"] for r in rows) / n, 3),
        "s_per_doc_median": round(statistics.median(r["seconds"] for r in rows), 3),
        "llm_calls_per_doc": round(sum(r["llm_calls"] for r in rows) / n, 2),
        "prompt_tokens_per_doc": round(sum(r["prompt_tokens"] for r in rows) / n, 1),
        "prompt_tokens_evaluated_per_doc": round(sum(r["evaluated"] for r in rows) / n, 1),
        "answer_tokens_per_doc": round(sum(r["answer_tokens"] for r in rows) / n, 1),
        "forward_passes_per_answer": round(sum(r["passes"] for r in rows) / n, 1),
    }


def redaction_speed(texts: list[tuple[str, str]]) -> dict[str, float]:
    from engine.privacy import get_redactor

    redactor = get_redactor()
    redactor.redact("warm up", "en")
    started = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for lang, text in texts:
            redactor.redact(text, lang)
    return {"ms_per_doc": round((time.perf_counter() - started) / (rounds * len(texts)) * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="documents per warm-cache mode")
    parser.add_argument("--n-cold", type=int, default=8, help="documents per no-prefix-cache mode")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", default="guided,guided-cold,grammar,grammar-cold")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"benchmark data not found under {DATA} (see ../shared/data/README.md)")

    from engine.extract.llama_backend import LlamaCppBackend

    texts = short_texts(args.n, args.seed)
    backend = LlamaCppBackend()
    results: dict[str, dict[str, float]] = {"redaction": redaction_speed(texts)}
    for mode in args.modes.split(","):
        cold = mode.endswith("-cold")
        sample = texts[: args.n_cold] if cold else texts
        results[mode] = run_mode(backend, sample, guided=mode.startswith("guided"), reuse_prefix=not cold)
        print(mode, json.dumps(results[mode]), flush=True)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
