"""`persona eval linking`: entity-linking quality of the shipped KB + linker on real benchmarks.

Per file of ../shared/data/entity_linking/: KB coverage (share of gold QIDs the KB holds),
in-KB accuracy (gold QID in the KB and linked to it), NIL precision/recall (gold <NIL>/<NO_MAPPING>),
plus a multilingual check built from KB labels: the same QID reached from en, zh-Hans, zh-Hant and es,
and with the Wikidata inputs the persona-vocabulary check (engine.eval.vocab) and the fresh check of
word forms the linker was never tuned on (engine.eval.fresh).
Mentions are linked without a predicate (these corpora are news/tweets, not persona facts); the
context is the tweet, or for document corpora the other mentions of the same document.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from engine.eval.fresh import run_fresh_check
from engine.eval.vocab import WORDNET_FILE, run_vocab_eval
from linkers import InvalidMentionError
from linkers.kb import KnowledgeBase, get_kb
from linkers.link import link

NIL_GOLD = {"<NIL>", "<NO_MAPPING>"}
FILES = (
    "tweeki_gold_mentions.jsonl",
    "kore50.mentions.jsonl",
    "spotlight.mentions.jsonl",
    "rss-500.mentions.jsonl",
    "reuters-128.mentions.jsonl",
)
MULTILINGUAL_SAMPLE = 400


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _contexts(rows: list[dict]) -> list[str]:
    """The tweet when there is one, else the other mentions of the same document."""
    by_doc: dict[object, list[str]] = defaultdict(list)
    for r in rows:
        by_doc[r.get("doc_id", r.get("tweet_id"))].append(r["mention"])
    out = []
    for r in rows:
        if r.get("sentence"):
            out.append(r["sentence"])
        else:
            others = [m for m in by_doc[r.get("doc_id", r.get("tweet_id"))] if m != r["mention"]]
            out.append(" ".join(others[:20]))
    return out


def _gold(raw: object) -> str | None:
    qid = str(raw or "")
    if qid in NIL_GOLD or not qid:
        return None
    return qid if qid.startswith("Q") else f"Q{qid}" if qid.isdigit() else None


def eval_file(kb: KnowledgeBase, path: Path) -> dict[str, float | int | str]:
    rows = _rows(path)
    contexts = _contexts(rows)
    n_gold = in_kb = correct_in_kb = correct_all = 0
    pred_nil = gold_nil = both_nil = 0
    started = time.perf_counter()
    for row, ctx in zip(rows, contexts, strict=True):
        gold = _gold(row.get("qid"))
        try:
            ent = link(kb, row["mention"], context=ctx)
            pred = ent.qid
        except InvalidMentionError:
            pred = None
        if gold is None:
            gold_nil += 1
            both_nil += pred is None
        else:
            n_gold += 1
            hit = pred == gold
            correct_all += hit
            if gold in kb.index:
                in_kb += 1
                correct_in_kb += hit
        pred_nil += pred is None
    seconds = time.perf_counter() - started
    return {
        "file": path.name,
        "mentions": len(rows),
        "gold_linked": n_gold,
        "kb_coverage": _ratio(in_kb, n_gold),
        "in_kb_accuracy": _ratio(correct_in_kb, in_kb),
        "accuracy_all_gold": _ratio(correct_all, n_gold),
        "gold_nil": gold_nil,
        "nil_precision": _ratio(both_nil, pred_nil),
        "nil_recall": _ratio(both_nil, gold_nil),
        "mentions_per_s": round(len(rows) / seconds, 1) if seconds else 0.0,
    }


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else float("nan")


def multilingual_check(kb: KnowledgeBase, sample: int = MULTILINGUAL_SAMPLE) -> dict[str, float | int]:
    """Entities with en, zh and es labels whose Traditional spelling differs from the Simplified one:
    does each surface form (en / zh-Hans / zh-Hant / es) link back to the same QID?"""
    from opencc_purepy import OpenCC

    s2t = OpenCC("s2t")
    picked: list[tuple[int, str]] = []
    candidates = [i for i in range(len(kb)) if kb.label_en[i] and kb.label_zh[i] and kb.label_es[i]]
    step = max(1, len(candidates) // (sample * 3))
    for i in candidates[::step]:
        hant = s2t.convert(kb.label_zh[i])
        if hant != kb.label_zh[i]:
            picked.append((i, hant))
        if len(picked) >= sample:
            break
    forms = {"en": 0, "zh-Hans": 0, "zh-Hant": 0, "es": 0}
    all_four = 0
    for i, hant in picked:
        surfaces = {
            "en": (kb.label_en[i], "en"),
            "zh-Hans": (kb.label_zh[i], "zh"),
            "zh-Hant": (hant, "zh"),
            "es": (kb.label_es[i], "es"),
        }
        ok_all = True
        for form, (text, lang) in surfaces.items():
            try:
                ok = link(kb, text, lang=lang).qid == kb.qids[i]
            except InvalidMentionError:
                ok = False
            forms[form] += ok
            ok_all &= ok
        all_four += ok_all
    n = len(picked)
    return {
        "entities": n,
        "all_four_same_qid": _ratio(all_four, n),
        **{f: _ratio(v, n) for f, v in forms.items()},
    }


def run_linking_eval(data_dir: Path, *, wikidata_dir: Path | None = None, vocab_half: str = "heldout") -> dict:
    """Evaluate every benchmark file found in data_dir; raises FileNotFoundError when it is missing.
    With `wikidata_dir` (the shared KB inputs) the persona-vocabulary and fresh checks run too."""
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"entity-linking data not found at {data_dir}; it lives in ../shared/data/entity_linking "
            f"next to the repository (set PERSONA_EL_DATA_DIR or pass --data-dir)"
        )
    kb = get_kb()
    files = [eval_file(kb, data_dir / name) for name in FILES if (data_dir / name).exists()]
    if not files:
        raise FileNotFoundError(f"no entity-linking files ({', '.join(FILES)}) in {data_dir}")
    out = {"files": files, "multilingual": multilingual_check(kb), "kb_entities": len(kb)}
    if wikidata_dir is not None and (wikidata_dir / WORDNET_FILE).exists():
        out["vocabulary"] = run_vocab_eval(kb, wikidata_dir, half=vocab_half)
        try:
            out["fresh"] = run_fresh_check(kb, wikidata_dir)
        except ImportError as exc:
            out["fresh"] = {"skipped": str(exc)}
    return out
