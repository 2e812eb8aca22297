"""Does the encoder tier still extract the same facts? Dump its results on a fixed sample of the test
splits with one version of the code, compare them with another.

    PYTHONPATH=. .venv/bin/python benchmarks/encoder_equality.py --dump before.json   # on the old code
    PYTHONPATH=. .venv/bin/python benchmarks/encoder_equality.py --compare before.json

The sample: every scored row of PersonaExt's test split (en) and a seeded `--per-lang` rows of each
sentiment test split (zh, en, es), raw text (redaction is not the encoder's business), in batches of
64 as the tiers benchmark sends them. Per document: kept and unsure facts (predicate, object,
evidence, sentiment, confidence), drop counts, sentiment label and confidence, alerts. Compared
exactly, except confidences, which may move by float rounding up to `--tol`. Prints the differences
and a summary; exit code 1 when anything differs. PYTHONPATH decides which engine is measured.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

BATCH = 64


def sample(data_dir: Path, per_lang: int, seed: int) -> list[tuple[str, str, str]]:
    """(id, lang, text) rows: PersonaExt test sentences, then seeded sentiment test rows per language."""
    from engine.corpora import RELATION_MAP, read_personaext, read_sentiment

    rows = [(f"personaext:{k}", "en", r.sentence) for k, r in enumerate(
        r for r in read_personaext(data_dir) if r.split == "test" and RELATION_MAP.get(r.relation))]
    rng = random.Random(seed)  # noqa: S311 - seeded sampling
    for lang in ("zh", "en", "es"):
        texts = [r.text for r in read_sentiment(data_dir, lang) if r.split == "test"]
        picked = rng.sample(range(len(texts)), min(per_lang, len(texts)))
        rows += [(f"sentiment-{lang}:{k}", lang, texts[k]) for k in sorted(picked)]
    return rows


def fact_row(fact: Any) -> dict[str, Any]:
    return {"predicate": fact.predicate, "object": fact.object, "evidence": fact.evidence,
            "sentiment": fact.sentiment, "confidence": fact.confidence}


def dump(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    from engine.config import Settings
    from engine.extract import make_tier

    settings = Settings.from_env()
    encoder = make_tier("encoder", settings.llm, model_cache=settings.model_cache)
    out: dict[str, Any] = {}
    for k in range(0, len(rows), BATCH):
        chunk = rows[k : k + BATCH]
        results = encoder.extract_batch([t for _, _, t in chunk], [lang for _, lang, _ in chunk])
        for (key, _, _), res in zip(chunk, results, strict=True):
            out[key] = {"facts": [fact_row(f) for f in res.facts], "unsure": [fact_row(f) for f in res.unsure],
                        "dropped": res.dropped, "label": res.sentiment.label,
                        "confidence": res.sentiment.confidence, "alerts": res.sentiment.alerts}
    return out


def differences(before: dict[str, Any], after: dict[str, Any], tol: float) -> tuple[list[str], float]:
    """Lines describing every difference beyond `tol`, and the largest confidence change seen."""
    lines: list[str] = []
    worst = 0.0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            lines.append(f"{key}: only in {'after' if a is None else 'before'}")
            continue
        for field in ("dropped", "label", "alerts"):
            if a[field] != b[field]:
                lines.append(f"{key}: {field} {a[field]} -> {b[field]}")
        worst = max(worst, abs(a["confidence"] - b["confidence"]))
        for group in ("facts", "unsure"):
            strip = [[{k: v for k, v in f.items() if k != "confidence"} for f in doc[group]] for doc in (a, b)]
            if strip[0] != strip[1]:
                lines.append(f"{key}: {group} {strip[0]} -> {strip[1]}")
                continue
            for fa, fb in zip(a[group], b[group], strict=True):
                worst = max(worst, abs(fa["confidence"] - fb["confidence"]))
    if worst > tol:
        lines.append(f"a confidence moved by {worst:.6f} (> {tol})")
    return lines, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", type=Path, help="write this version's results here")
    parser.add_argument("--compare", type=Path, help="compare this version's results with this dump")
    parser.add_argument("--per-lang", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()
    if not (args.dump or args.compare):
        parser.error("give --dump FILE or --compare FILE")

    from engine.config import Settings

    rows = sample(Settings.from_env().data.root, args.per_lang, args.seed)
    results = dump(rows)
    n_facts = sum(len(r["facts"]) for r in results.values())
    print(f"{len(results)} documents (PersonaExt test + sentiment test zh/en/es), {n_facts} facts kept")
    if args.dump:
        args.dump.write_text(json.dumps(results, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        print(f"written to {args.dump}")
    if args.compare:
        before = json.loads(args.compare.read_text(encoding="utf-8"))
        lines, worst = differences(before, results, args.tol)
        for line in lines[:50]:
            print(line)
        same = sum(before.get(k) is not None and not any(line.startswith(f"{k}:") for line in lines) for k in results)
        print(f"\n{same} of {len(results)} documents identical; largest confidence change {worst:.2e} "
              f"(tolerance {args.tol}); {len(lines)} difference(s)")
        sys.exit(1 if lines else 0)


if __name__ == "__main__":
    main()
