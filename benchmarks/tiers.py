"""Short documents per second for each extractor tier, measured in the same run, and the memory of
the process that holds them.

    .venv/bin/python benchmarks/tiers.py --n 512 --n-llm 12

- encoder: batches of 64 through the fine-tuned encoder (facts + sentiment);
- encoder-0: the same through the encoder's earlier inference path (peft adapters applied per
  layer, each batch of 64 padded to its longest text), the baseline of the encoder's speed work;
- cascade: the same documents, the LLM reading only the escalated ones (the share is printed),
  a batch's escalated documents decoded together (one forward pass per step for all of them);
  cascade-1 the same with the LLM reading them one at a time (the earlier path; the answers of both
  are compared document by document); cascade-0 the same over encoder-0 (skip with --no-earlier);
- llm: the LLM tier alone on `--n-llm` of them (the baseline; slow).
Prints docs/s, the ratios, the share the cascade escalated and the process's peak RSS.
Numbers, not assertions. The texts: a seeded mix of short en/zh/es rows from ../shared/data.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.extraction import short_texts  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, run, n: int) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    rate = n / seconds
    print(f"{label:<8} {n:>5} docs in {seconds:7.2f} s = {rate:8.2f} docs/s   (peak RSS {rss_mb():.0f} MB)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--n-llm", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-earlier", action="store_true", help="skip encoder-0 and cascade-0")
    args = parser.parse_args()

    from engine.config import Settings
    from engine.extract import make_tier
    from engine.extract.cascade import CascadeExtractor

    settings = Settings.from_env()
    docs = short_texts(args.n, args.seed)
    langs, texts = [lang for lang, _ in docs], [t for _, t in docs]
    print(f"{len(texts)} short documents (≤ 300 characters), en/zh/es; 2 cores\n")
    encoder = make_tier("encoder", settings.llm, model_cache=settings.model_cache)
    before = None if args.no_earlier else earlier_encoder(settings.model_cache)
    rates: dict[str, float] = {}
    encoders = (("encoder", encoder),) if args.no_earlier else (("encoder", encoder), ("encoder-0", before))
    for label, tier in encoders:
        tier.extract_batch(texts[:8], langs[:8])  # warm-up: load, first allocation
        rates[label] = timed(label, lambda t=tier: [t.extract_batch(texts[k : k + 64], langs[k : k + 64])
                                                    for k in range(0, len(texts), 64)], len(texts))
    enc = rates["encoder"]
    llm = make_tier("llm", settings.llm, model_cache=settings.model_cache)
    llm.extract(texts[0], langs[0])  # warm-up: the prefix cache
    llm.extract_many(texts[:2], langs[:2])  # and the shared prefix of the several-documents context
    base = timed("llm", lambda: [llm.extract(t, lang) for t, lang in zip(texts[: args.n_llm], langs[: args.n_llm],
                                                                           strict=True)], args.n_llm)
    shares: dict[str, float] = {}
    answers: dict[str, list] = {}
    cascades = [("cascade", encoder, llm), ("cascade-1", encoder, OneAtATime(llm))]
    if before is not None:
        cascades.append(("cascade-0", before, llm))
    for label, tier, reader in cascades:
        cascade = CascadeExtractor(tier, lambda r=reader: r, tier.cascade_policy())
        results: list = []
        rates[label] = timed(label, lambda c=cascade, r=results: [
            r.extend(c.extract_batch(texts[k : k + 64], langs[k : k + 64])) for k in range(0, len(texts), 64)
        ], len(texts))
        shares[label] = sum(r.llm_calls > 0 for r in results) / max(len(results), 1)
        answers[label] = results
    cas = rates["cascade"]
    print(f"\ncascade sent {shares['cascade']:.1%} of the documents to the LLM (cascade-1 {shares['cascade-1']:.1%}"
          + (f", cascade-0 {shares['cascade-0']:.1%})" if "cascade-0" in shares else ")"))
    escalated = [i for i, r in enumerate(answers["cascade-1"]) if r.llm_calls]
    pairs = [(answers["cascade"][i], answers["cascade-1"][i]) for i in escalated]
    same = sum(decisions_of(a) == decisions_of(b) for a, b in pairs)
    exact = sum(answer_of(a) == answer_of(b) for a, b in pairs)
    print(f"escalated documents, together vs one at a time: {same}/{len(escalated)} with the same facts and "
          f"sentiment label, {exact}/{len(escalated)} also with the same confidences (3 decimals)")
    print(f"ratios to the LLM tier: encoder {enc / base:.0f}x, cascade {cas / base:.1f}x")
    print(f"cascade together / one at a time, same run: {cas / rates['cascade-1']:.2f}x")
    if "encoder-0" in rates:
        print(f"ratios to the earlier path, same run: encoder {enc / rates['encoder-0']:.2f}x, "
              f"cascade {cas / rates['cascade-0']:.2f}x")


class OneAtATime:
    """The LLM tier without `extract_many`: the cascade asks it about one document at a time."""

    def __init__(self, inner) -> None:  # noqa: ANN001 - an Extractor
        self.inner = inner

    def extract(self, text: str, lang: str = "en"):  # noqa: ANN201 - an ExtractionResult
        return self.inner.extract(text, lang)


def decisions_of(result) -> tuple:  # noqa: ANN001 - an ExtractionResult
    """What a cascade decided for a document: its facts and its sentiment label."""
    return sorted((f.predicate, f.object, f.tier) for f in result.facts), result.sentiment.label


def answer_of(result) -> tuple:  # noqa: ANN001 - an ExtractionResult
    """What a cascade decided for a document: its facts (with rounded confidence) and sentiment label."""
    facts = sorted((f.predicate, f.object, f.tier, round(f.confidence, 3)) for f in result.facts)
    return facts, result.sentiment.label, round(result.sentiment.confidence, 3)


def earlier_encoder(model_cache: Path):  # noqa: ANN201 - an EncoderExtractor
    """The encoder tier as it ran before folding and length chunks: the peft form, batches of 64."""
    from engine.extract.encoder.extractor import EncoderExtractor, load_tasks
    from engine.extract.encoder.weights import PACKAGED

    tasks, tokenizer, metas = load_tasks(model_cache, PACKAGED)
    return EncoderExtractor(tasks, tokenizer, metas, pad_id=tokenizer.pad_token_id or 1, chunk_tokens=sys.maxsize)


if __name__ == "__main__":
    main()
