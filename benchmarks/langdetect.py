"""Language detection: the old hand-written detector against engine.ingest.lang, in one run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/langdetect.py --n 2000 [--data ../shared/data]

Per corpus (a seeded sample of --n texts), accuracy against the corpus language and µs per text
for both detectors, and the new/old ratio of each. The corpora:

- en: sentiment/en_uci_amazon_yelp.jsonl (short review sentences)
- zh: sentiment/zh_waimai_10k.jsonl and zh_online_shopping_10_cats.jsonl.gz (reviews)
- es: sentiment/es_tass2020_train.jsonl (tweets, five Spanish variants)
- en: persona/personaext.jsonl (first-person sentences)
- other: wikidata/dbpedia_ontology_classes.jsonl labels in fr/de/it/pt/nl/ca/ru (≥ 2 words) and
  ja/ko — short, so a hard lower bound on how well each detector keeps non-target languages out.

The new detector is built (models loaded) before timing; its build time is printed on its own.
Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# --- baseline: the hand-written detector as it was in engine/ingest.py (copied verbatim) ---------

_STOPWORDS_RAW: dict[str, set[str]] = {
    "en": set(
        "the and is are was were i you my to of in it that this with for have has not but so "
        "very at be on they we just what your our would could there their been from an or "
        "if about will can all do don't i'm it's".split()
    ),
    "es": set(
        "el la los las que y es un por para con muy pero lo se del al yo está como más "
        "su sus le les ya fue hay todo pues porque cuando también eso esto ni nos este esta "
        "estoy tengo soy qué gracias".split()
    ),
    "fr": set("le les des et est je pas du avec pour dans ce qui très une sur mais vous nous".split()),
    "de": set("der die das und ist ich nicht ein eine mit für auf zu sehr auch wir sie aber".split()),
    "pt": set("não com você eu muito são ela isso também uma obrigado ele mas foi".split()),
    "it": set("il di che è non sono per molto gli della questo anche ma ho".split()),
}


def _distinct(sets: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    counts = Counter(w for words in sets.values() for w in words)
    return {lang: frozenset(w for w in words if counts[w] == 1) for lang, words in sets.items()}


STOPWORDS = _distinct(_STOPWORDS_RAW)
_WORD = re.compile(r"[a-zà-öø-ÿ']+")
_SPANISH_MARKS = re.compile(r"[ñ¿¡]")


def old_detect_language(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "other"
    n = len(letters)
    han = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    kana_hangul = sum(1 for c in letters if "\u3040" <= c <= "\u30ff" or "\uac00" <= c <= "\ud7af")
    if han / n > 0.3 and kana_hangul / n < 0.1:
        return "zh"
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin / n < 0.5:
        return "other"
    words = _WORD.findall(text.lower())
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in STOPWORDS.items()}
    scores["es"] += 2 * len(_SPANISH_MARKS.findall(text.lower()))
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return "en" if text.isascii() else "other"
    return best if best in ("en", "es") else "other"


# --- corpora -------------------------------------------------------------------------------------

OTHER_LANGS_WORDS = ("fr", "de", "it", "pt", "nl", "ca", "ru")
OTHER_LANGS_CJK = ("ja", "ko")


def _jsonl(path: Path, key: str) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [str(json.loads(line)[key]) for line in handle if line.strip()]


def _other_labels(path: Path) -> list[str]:
    out: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            labels = json.loads(line).get("labels", {})
            for lang in OTHER_LANGS_WORDS + OTHER_LANGS_CJK:
                for label in labels.get(lang, []):
                    # One Latin word ("Fußballspieler") says too little to judge anyone by.
                    if lang in OTHER_LANGS_CJK or len(label.split()) >= 2:
                        out.append(label)
    return out


def load_corpora(data: Path) -> list[tuple[str, str, list[str]]]:
    """(name, expected label, texts) per corpus."""
    return [
        ("en  sentiment/en_uci_amazon_yelp", "en", _jsonl(data / "sentiment" / "en_uci_amazon_yelp.jsonl", "text")),
        ("zh  sentiment/zh_waimai_10k", "zh", _jsonl(data / "sentiment" / "zh_waimai_10k.jsonl", "text")),
        (
            "zh  sentiment/zh_online_shopping",
            "zh",
            _jsonl(data / "sentiment" / "zh_online_shopping_10_cats.jsonl.gz", "text"),
        ),
        ("es  sentiment/es_tass2020_train", "es", _jsonl(data / "sentiment" / "es_tass2020_train.jsonl", "text")),
        ("en  persona/personaext", "en", _jsonl(data / "persona" / "personaext.jsonl", "sentence")),
        ("oth dbpedia labels fr..ko", "other", _other_labels(data / "wikidata" / "dbpedia_ontology_classes.jsonl")),
    ]


def measure(detect: Callable[[str], str], texts: list[str], expected: str) -> tuple[float, float]:
    """(accuracy, µs per text) of one detector on one sample."""
    start = time.perf_counter()
    predictions = [detect(text) for text in texts]
    elapsed = time.perf_counter() - start
    accuracy = sum(1 for p in predictions if p == expected) / len(texts)
    return accuracy, elapsed / len(texts) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="texts per corpus (seeded sample; all if fewer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data dir")
    parser.add_argument(
        "--sweep-prior",
        default="",
        help="comma-separated EN_ES_PRIOR values: also print the new detector's accuracy with each (e.g. 1,1.5,2,3)",
    )
    args = parser.parse_args(argv)

    needed = [args.data / "sentiment", args.data / "persona", args.data / "wikidata"]
    missing = [str(p) for p in needed if not p.is_dir()]
    if missing:
        print(f"data missing: {', '.join(missing)} — pass --data DIR (the dir with sentiment/ persona/ wikidata/)")
        return 2

    from engine.ingest import lang as langdetect

    start = time.perf_counter()
    langdetect.detect_language("warm up the model: load it before timing")
    print(f"new detector build (models preloaded): {time.perf_counter() - start:.2f} s")

    rng = random.Random(args.seed)  # noqa: S311 - seeded sampling, not security
    samples = [
        (name, expected, rng.sample(texts, min(args.n, len(texts))))
        for name, expected, texts in load_corpora(args.data)
    ]
    header = (
        f"{'corpus':34s} {'n':>5s} | {'old acc':>8s} {'new acc':>8s} | {'old µs':>7s} {'new µs':>7s} {'new/old':>7s}"
    )
    print(header)
    print("-" * len(header))
    totals = {"old": [0.0, 0.0], "new": [0.0, 0.0]}
    count = 0
    for name, expected, sample in samples:
        old_acc, old_us = measure(old_detect_language, sample, expected)
        new_acc, new_us = measure(langdetect.detect_language, sample, expected)
        print(
            f"{name:34s} {len(sample):5d} | {old_acc:8.2%} {new_acc:8.2%} | "
            f"{old_us:7.1f} {new_us:7.1f} {new_us / old_us:6.1f}x"
        )
        if expected != "other":
            count += len(sample)
            for key, (acc, us) in (("old", (old_acc, old_us)), ("new", (new_acc, new_us))):
                totals[key][0] += acc * len(sample)
                totals[key][1] += us * len(sample)
    old_acc, old_us = totals["old"][0] / count, totals["old"][1] / count
    new_acc, new_us = totals["new"][0] / count, totals["new"][1] / count
    print("-" * len(header))
    print(
        f"{'en/zh/es corpora pooled':34s} {count:5d} | {old_acc:8.2%} {new_acc:8.2%} | "
        f"{old_us:7.1f} {new_us:7.1f} {new_us / old_us:6.1f}x"
    )
    if args.sweep_prior:
        sweep_prior(langdetect, samples, [float(v) for v in args.sweep_prior.split(",")])
    return 0


def sweep_prior(langdetect, samples: list[tuple[str, str, list[str]]], priors: list[float]) -> None:
    """The new detector's accuracy per corpus for each en/es prior (how EN_ES_PRIOR was chosen)."""
    shipped = langdetect.EN_ES_PRIOR
    print(f"\nEN_ES_PRIOR sweep (shipped: {shipped}); accuracy per corpus:")
    print(f"{'prior':>6s} " + " ".join(f"{name.split()[1].split('/')[-1][:14]:>14s}" for name, _, _ in samples))
    try:
        for prior in priors:
            langdetect.EN_ES_PRIOR = prior  # a module constant: patched here only to compare values
            accs = [measure(langdetect.detect_language, sample, expected)[0] for _, expected, sample in samples]
            print(f"{prior:6.2f} " + " ".join(f"{acc:14.2%}" for acc in accs))
    finally:
        langdetect.EN_ES_PRIOR = shipped


if __name__ == "__main__":
    raise SystemExit(main())
