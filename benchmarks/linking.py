"""Linker speed: KB load time, resident memory, mentions/s on the exact-alias path and the full path.

    .venv/bin/python benchmarks/linking.py [--n 50000] [--kb linkers/data/kb.bin]

Exact path: KB labels as mentions (distinct, so the normalisation cache does not help), no
predicate, no context. Full path: the same labels with predicates and context, 1 in 5 with a
typo (fuzzy fallback) and 1 in 10 unknown (NIL). Single process, single thread.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from linkers.kb import kb_path, load_kb  # noqa: E402
from linkers.link import link  # noqa: E402
from linkers.normalise import surface_key  # noqa: E402

PREDICATES = ["LIKES", "OWNS", "LIVES_IN", "WORKS_AS", None]
CONTEXTS = ["I love eating it with friends", "bought a new phone yesterday", "我住在这里很多年了", None]


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_mentions(kb, n: int, seed: int = 7) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    out: dict[str, str] = {}
    idx = list(range(len(kb)))
    rng.shuffle(idx)
    for i in idx:
        for lang, col in (("en", kb.label_en), ("zh", kb.label_zh), ("es", kb.label_es)):
            if col[i] and col[i] not in out and surface_key(col[i]):
                out[col[i]] = lang
        if len(out) >= n:
            break
    return list(out.items())[:n]


def typo(text: str, rng: random.Random) -> str:
    if len(text) < 5:
        return text
    k = rng.randrange(1, len(text) - 1)
    return text[:k] + text[k + 1 :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--kb", type=Path, default=kb_path())
    args = ap.parse_args()

    before = rss_mb()
    t = time.perf_counter()
    kb = load_kb(args.kb)
    load_s = time.perf_counter() - t
    print(
        f"KB {args.kb} ({args.kb.stat().st_size / 1e6:.1f} MB): {len(kb):,} entities, "
        f"{len(kb.alias_keys):,} alias keys; load {load_s:.2f}s; RSS +{rss_mb() - before:.0f} MB "
        f"(total {rss_mb():.0f} MB)"
    )

    mentions = sample_mentions(kb, args.n)
    surface_key.cache_clear()
    t = time.perf_counter()
    linked = sum(link(kb, m, lang=lang).qid is not None for m, lang in mentions)
    exact_s = time.perf_counter() - t
    print(
        f"exact path: {len(mentions) / exact_s:,.0f} mentions/s ({len(mentions):,} distinct labels, "
        f"{linked / len(mentions):.1%} linked)"
    )

    rng = random.Random(11)
    full = []
    for j, (m, lang) in enumerate(mentions[: max(1, args.n // 5)]):
        if j % 10 == 0:
            m = f"Qzx{j} Unknownia"
        elif j % 5 == 0:
            m = typo(m, rng)
        full.append((m, lang, PREDICATES[j % len(PREDICATES)], CONTEXTS[j % len(CONTEXTS)]))
    surface_key.cache_clear()
    t = time.perf_counter()
    for m, lang, pred, ctx in full:
        link(kb, m, lang=lang, predicate=pred, context=ctx)
    full_s = time.perf_counter() - t
    print(
        f"full path: {len(full) / full_s:,.0f} mentions/s ({len(full):,} mentions: predicates, context, "
        f"20% typos → fuzzy, 10% unknown → NIL)"
    )
    print(f"RSS after runs: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
