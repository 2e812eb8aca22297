"""Where the encoder is blind: does the cascade gain by adding the LLM's facts on first-person
statements of who the author is that the encoder does not explain
(`cascade.unexplained_self_statement`)? Per predicate, on a split of PersonaExt.

    PYTHONPATH=. .venv/bin/python benchmarks/cascade_blind.py --split dev [--cache /tmp/blind.json]

For every scored row of the split (the eval's rows and scorer, `engine/eval/extraction.py`) the
encoder runs; the LLM runs only on the rows the blind cue escalates (their share is printed). Then,
per candidate predicate P, P/R/F1 of P over the whole split for the encoder alone and for the
encoder plus the LLM's P facts on the escalated rows (`cascade.merge`). A predicate goes into
`cascade.LLM_PREDICATES` when the second is at least as good on dev and better in recall; test is
printed for the record. PersonaExt labels one fact per sentence, so a true but unlabelled fact counts
as wrong: precision is a lower bound, for both tiers alike. `--cache` keeps the LLM's answers per
sentence (the LLM is slow), so a rerun costs only the encoder.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=None, help="JSON file of the LLM's answers per sentence")
    args = parser.parse_args()

    from engine.config import Settings
    from engine.corpora import RELATION_MAP, read_personaext
    from engine.extract import make_tier
    from engine.extract.cascade import merge, unexplained_self_statement
    from engine.extract.types import ExtractionResult
    from engine.privacy import get_redactor

    settings = Settings.from_env()
    rows = [r for r in read_personaext(args.data_dir) if r.split == args.split and RELATION_MAP.get(r.relation)]
    redactor = get_redactor()
    texts = [redactor.redact(r.sentence, "en").text for r in rows]
    encoder = make_tier("encoder", settings.llm, model_cache=settings.model_cache)
    enc = []
    for k in range(0, len(texts), 64):
        enc += encoder.extract_batch(texts[k : k + 64], ["en"] * len(texts[k : k + 64]))
    blind = [i for i, (t, r) in enumerate(zip(texts, enc, strict=True)) if unexplained_self_statement(t, "en", r)]
    print(f"PersonaExt {args.split}: {len(rows)} scored rows, {len(blind)} escalated as blind "
          f"({len(blind) / len(rows):.1%})")

    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.is_file() else {}
    todo = [i for i in blind if texts[i] not in cache]
    if todo:
        llm = make_tier("llm", settings.llm, model_cache=settings.model_cache)
        started = time.perf_counter()
        for i in todo:
            cache[texts[i]] = llm.extract(texts[i], "en").model_dump(mode="json")
            if args.cache:
                args.cache.write_text(json.dumps(cache, ensure_ascii=False))
        print(f"LLM: {len(todo)} documents in {time.perf_counter() - started:.0f} s")
    llm_results = {i: ExtractionResult.model_validate(cache[texts[i]]) for i in blind}

    print(f"\n{'predicate':<11} {'encoder P / R / F1 (n)':<28} {'+ LLM on blind P / R / F1 (n)':<32} verdict")
    chosen = []
    for predicate in CANDIDATES:
        cascade = [merge(r, llm_results[i], (predicate,)) if i in llm_results else r for i, r in enumerate(enc)]
        ep, er, ef, en = per_predicate(rows, enc, predicate)
        cp, cr, cf, cn = per_predicate(rows, cascade, predicate)
        better = cf >= ef and cr > er
        chosen += [predicate] if better else []
        print(f"{predicate:<11} {ep:.3f} / {er:.3f} / {ef:.3f} ({en:>4})     {cp:.3f} / {cr:.3f} / {cf:.3f} ({cn:>4})"
              f"       {'LLM adds' if better else '-'}")
    print(f"\nbetter with the LLM on {args.split}: {', '.join(chosen) or 'none'}")


if __name__ == "__main__":
    main()
