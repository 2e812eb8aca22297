"""Where the encoder is blind: does the cascade gain by adding the LLM's facts on first-person
statements of who the author is that the encoder does not explain
(`cascade.unexplained_self_statement`)? Per predicate, on a split of PersonaExt.

    PYTHONPATH=. .venv/bin/python benchmarks/cascade_blind.py --split dev --llm-rows 30 [--cache F]

The encoder reads the scored rows of the split (the eval's rows and scorer, `engine/eval/extraction.py`)
where a statement cue fires; the rows it leaves unexplained are the ones the cascade escalates (their
share of the split is printed). The LLM reads a seeded sample of `--llm-rows` of them (it is slow).
On those rows, per candidate predicate P: the facts of P the LLM adds to the encoder's
(`cascade.merge`), how many match the gold and how many do not, and P/R/F1 of P for the encoder and
the cascade on the same rows. PersonaExt labels one fact per sentence: an added fact of a relation the
gold does not label is listed as unjudged (read them), one the gold labels otherwise is wrong. A
predicate goes into `cascade.LLM_PREDICATES` when on dev its added facts are right more often than
wrong, judged ones and read ones together; test is printed for the record. `--cache` keeps the
LLM's answers per sentence.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CANDIDATES = ("WORKS_AS", "LIVES_IN", "FROM_PLACE", "AGE_BAND", "GENDER", "WORKS_AT", "LIKES", "OWNS")


def prf(tp_pred: int, predicted: int, found: int, gold: int) -> tuple[float, float, float]:
    p = tp_pred / predicted if predicted else 0.0
    r = found / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def per_predicate(rows, results, predicate: str) -> tuple[float, float, float, int]:
    """P/R/F1 of one predicate: predictions of it, and gold rows that label it."""
    from engine.corpora import RELATION_MAP
    from engine.eval.extraction import fact_matches

    tp = predicted = found = gold = 0
    for row, res in zip(rows, results, strict=True):
        gold_preds = RELATION_MAP[row.relation] or ()
        mine = [f for f in res.facts if f.predicate == predicate]
        hits = [f for f in mine if fact_matches(f.predicate, f.object, gold_preds, row.object)]
        predicted, tp = predicted + len(mine), tp + len(hits)
        if gold_preds and gold_preds[0] == predicate:
            gold, found = gold + 1, found + bool(hits)
    return (*prf(tp, predicted, found, gold), predicted)


def added(rows, before, after, predicate: str) -> list[tuple[str, str, str]]:
    """Facts of `predicate` in `after` but not in `before`, each with the scorer's verdict: right (the
    gold labels it), wrong (the gold labels this predicate with another object) or unjudged (the gold
    labels another relation of the sentence: PersonaExt says nothing about this one)."""
    from engine.corpora import RELATION_MAP
    from engine.eval.extraction import fact_matches

    out = []
    for row, b, a in zip(rows, before, after, strict=True):
        gold = RELATION_MAP[row.relation] or ()
        old = {(f.predicate, f.object) for f in b.facts}
        for f in a.facts:
            if f.predicate != predicate or (f.predicate, f.object) in old:
                continue
            verdict = "right" if fact_matches(f.predicate, f.object, gold, row.object) else \
                "wrong" if predicate in gold else "unjudged"
            where = f"{row.sentence!r} (gold {row.relation} {row.object!r})"
            out.append((verdict, f"{f.predicate} {f.object!r}", where))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--llm-rows", type=int, default=30, help="escalated rows the LLM reads (seeded sample)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cache", type=Path, default=None, help="JSON file of the LLM's answers per sentence")
    args = parser.parse_args()

    from engine.config import Settings
    from engine.corpora import RELATION_MAP, read_personaext
    from engine.extract import make_tier
    from engine.extract.cascade import BLIND_CUES, merge, unexplained_self_statement
    from engine.extract.types import ExtractionResult
    from engine.privacy import get_redactor

    settings = Settings.from_env()
    rows = [r for r in read_personaext(args.data_dir) if r.split == args.split and RELATION_MAP.get(r.relation)]
    redactor = get_redactor()
    cued = [(r, t) for r in rows if BLIND_CUES["en"].search(t := redactor.redact(r.sentence, "en").text)]
    encoder = make_tier("encoder", settings.llm, model_cache=settings.model_cache)
    enc = encoder.extract_batch([t for _, t in cued], ["en"] * len(cued))
    escalated = [(r, t, e) for (r, t), e in zip(cued, enc, strict=True) if unexplained_self_statement(t, "en", e)]
    sample = random.Random(args.seed).sample(escalated, min(args.llm_rows, len(escalated)))  # noqa: S311
    print(f"PersonaExt {args.split}: {len(rows)} scored rows, {len(escalated)} escalated as blind "
          f"({len(escalated) / len(rows):.1%}); the LLM reads {len(sample)} of them")

    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.is_file() else {}
    todo = [t for _, t, _ in sample if t not in cache]
    if todo:
        llm = make_tier("llm", settings.llm, model_cache=settings.model_cache)
        started = time.perf_counter()
        for text in todo:
            cache[text] = llm.extract(text, "en").model_dump(mode="json")
            if args.cache:
                args.cache.write_text(json.dumps(cache, ensure_ascii=False))
        print(f"LLM: {len(todo)} documents in {time.perf_counter() - started:.0f} s")
    sample_rows = [r for r, _, _ in sample]
    encoder_results = [e for _, _, e in sample]
    llm_results = [ExtractionResult.model_validate(cache[t]) for _, t, _ in sample]

    print(f"\n{'predicate':<11} {'added: right / wrong / unjudged':<33} {'encoder P / R / F1':<22} "
          f"{'cascade P / R / F1':<22} verdict")
    chosen, listing = [], []
    for predicate in CANDIDATES:
        cascade = [merge(e, m, (predicate,)) for e, m in zip(encoder_results, llm_results, strict=True)]
        facts = added(sample_rows, encoder_results, cascade, predicate)
        right, wrong, unjudged = (sum(v == k for v, _, _ in facts) for k in ("right", "wrong", "unjudged"))
        ep, er, ef, _ = per_predicate(sample_rows, encoder_results, predicate)
        cp, cr, cf, _ = per_predicate(sample_rows, cascade, predicate)
        better = right > wrong
        chosen += [predicate] if better else []
        listing += facts
        print(f"{predicate:<11} {right:>5} / {wrong:>5} / {unjudged:<18} {ep:.2f} / {er:.2f} / {ef:.2f}     "
              f"{cp:.2f} / {cr:.2f} / {cf:.2f}     {'LLM adds' if better else '-'}")
    print("\nthe added facts (judge the unjudged by reading them):")
    for verdict, fact, row in listing:
        print(f"  {verdict:<9} {fact:<40} {row}")
    print(f"\nthe LLM's added facts are right more often than wrong on {args.split}: {', '.join(chosen) or 'none'}")


if __name__ == "__main__":
    main()
