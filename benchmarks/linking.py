"""Linker speed: KB load time, resident memory, mentions/s on the exact-alias path and the full path.

    .venv/bin/python benchmarks/linking.py [--n 50000] [--kb linkers/data/kb.bin] [--baseline-rev REV]

Exact path: KB labels as mentions (distinct, so the normalisation cache does not help), no
predicate, no context. Full path: the same labels with predicates and context, 1 in 5 with a
typo (fuzzy fallback) and 1 in 10 unknown (NIL). Single process, single thread.
--baseline-rev REV first runs the same measurement on `linkers/` and `graph_schema/` (and their KB)
as of git revision REV, in a child process on an extracted copy, then prints current / baseline.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def sample_mentions(kb, n: int, surface_key, seed: int = 7) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
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


def measure(code_dir: Path, kb_file: Path | None, n: int) -> dict[str, float | int | str]:
    """Load the KB and time both paths with the `linkers` package found in code_dir."""
    sys.path.insert(0, str(code_dir))
    kb_mod = importlib.import_module("linkers.kb")
    link = importlib.import_module("linkers.link").link
    surface_key = importlib.import_module("linkers.normalise").surface_key
    path = kb_file or code_dir / "linkers" / "data" / "kb.bin"
    before = rss_mb()
    t = time.perf_counter()
    kb = kb_mod.load_kb(path)
    out: dict[str, float | int | str] = {
        "kb": str(path), "kb_mb": round(path.stat().st_size / 1e6, 1), "entities": len(kb),
        "alias_keys": len(kb.alias_keys), "load_s": round(time.perf_counter() - t, 2),
        "rss_kb_mb": round(rss_mb() - before),
    }
    mentions = sample_mentions(kb, n, surface_key)
    surface_key.cache_clear()
    t = time.perf_counter()
    linked = sum(link(kb, m, lang=lang).qid is not None for m, lang in mentions)
    out["exact_per_s"] = round(len(mentions) / (time.perf_counter() - t))
    out["exact_n"], out["exact_linked"] = len(mentions), round(linked / len(mentions), 3)
    rng = random.Random(11)
    full = []
    for j, (m, lang) in enumerate(mentions[: max(1, n // 5)]):
        if j % 10 == 0:
            m = f"Qzx{j} Unknownia"
        elif j % 5 == 0:
            m = typo(m, rng)
        full.append((m, lang, PREDICATES[j % len(PREDICATES)], CONTEXTS[j % len(CONTEXTS)]))
    surface_key.cache_clear()
    t = time.perf_counter()
    for m, lang, pred, ctx in full:
        link(kb, m, lang=lang, predicate=pred, context=ctx)
    out["full_per_s"] = round(len(full) / (time.perf_counter() - t))
    out["full_n"] = len(full)
    out["rss_mb"] = round(rss_mb())
    return out


def report(name: str, r: dict[str, float | int | str]) -> None:
    print(
        f"[{name}] KB {r['kb']} ({r['kb_mb']} MB): {r['entities']:,} entities, {r['alias_keys']:,} alias keys; "
        f"load {r['load_s']}s; RSS +{r['rss_kb_mb']} MB\n"
        f"[{name}] exact path: {r['exact_per_s']:,} mentions/s ({r['exact_n']:,} distinct labels, "
        f"{r['exact_linked']:.1%} linked)\n"
        f"[{name}] full path: {r['full_per_s']:,} mentions/s ({r['full_n']:,} mentions: predicates, context, "
        f"20% typos → fuzzy, 10% unknown → NIL); RSS after runs {r['rss_mb']} MB",
        flush=True,
    )


def baseline(rev: str, n: int) -> dict[str, float | int | str]:
    """The same measurement on linkers/ + graph_schema/ as of `rev`, in a child process."""
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(  # noqa: S603 - fixed git command on our own repository
            ["git", "archive", rev, "linkers", "graph_schema"], cwd=ROOT, check=True, capture_output=True  # noqa: S607
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)  # noqa: S603, S607
        child = subprocess.run(  # noqa: S603
            [sys.executable, __file__, "--n", str(n), "--code-dir", tree, "--json"],
            check=True, capture_output=True, text=True,
        )
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--kb", type=Path, default=None, help="KB file (default: the one shipped with the code)")
    ap.add_argument("--baseline-rev", default=None, help="also measure linkers/ at this git revision first")
    ap.add_argument("--code-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    base = baseline(args.baseline_rev, args.n) if args.baseline_rev else None
    if base:
        report(f"at {args.baseline_rev}", base)
    current = measure(args.code_dir, args.kb, args.n)
    if args.json:
        print(json.dumps(current))
        return
    report("current", current)
    if base:
        for k in ("exact_per_s", "full_per_s", "load_s"):
            print(f"current / {args.baseline_rev} {k}: {float(current[k]) / max(float(base[k]), 1e-9):.2f}")


if __name__ == "__main__":
    main()
