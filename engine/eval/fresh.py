"""Fresh linking check: word forms the linker was never tuned on, from sources outside the KB inputs.

How it is built (deterministic, nothing stored):
* Concepts: the held-out half of the persona-vocabulary rows (engine.eval.vocab: everyday-domain QIDs
  with an unambiguous Open Multilingual Wordnet lemma; the same seeded split, so none of these
  concepts was looked at while tuning).
* es / en: the inflected forms an independent lemmatiser's dictionary (simplemma, built from
  Wiktionary-derived lemma lists) maps to the lemma — plurals and the other gender (gato → gatos,
  gata, gatas; cat → cats) — written bare and with a definite article (los gatos, the cats).
* zh: the lemma in Traditional script as written in Taiwan and in Hong Kong (OpenCC s2tw / s2hk;
  the linker folds with t2s), and with a quantity in front (两个律师, 一些咖啡).
* A form that is itself a WordNet lemma of another concept in that language is left out (no single
  gold), as in the vocabulary check.
Rows are scored like the vocabulary check: accuracy (NIL counts as a miss) and wrong-QID rate, per
language and per form kind. Never tune on it: it exists to say whether the rules generalise.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from engine.eval.vocab import WORDNET_FILE, VocabRow, build_rows, score_rows, wordnet_lemmas
from linkers.kb import KnowledgeBase
from linkers.normalise import surface_key

MISSING_LEMMATISER = "the fresh check needs simplemma (pip install simplemma; it is in the dev extra)"
_ZH_QUANTITIES = ("两个", "一些")


@lru_cache(maxsize=2)
def _inflections(lang: str) -> dict[str, list[str]]:
    """Lemma → inflected forms, from simplemma's form → lemma dictionary for the language."""
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    out: dict[str, list[str]] = defaultdict(list)
    for form, lemma in DefaultDictionaryFactory().get_dictionary(lang).items():
        if form != lemma and form.isalpha() and form.islower():
            out[lemma].append(form)
    return out


def noun_forms(lemma: str, forms: list[str], lang: str) -> list[str]:
    """The nominal inflections among a lemma's forms: same stem, a plural or the other gender
    (verb forms such as 'catted' are left out)."""
    stem = lemma[: max(3, len(lemma) - 2)]
    out = []
    for form in forms:
        if not form.startswith(stem) or len(form) > len(lemma) + 3:
            continue
        if lang == "en" and not form.endswith("s"):
            continue
        if lang == "es" and not form.endswith(("s", "a", "o", "triz", "ora")):
            continue
        out.append(form)
    return sorted(set(out))


def _es_article(form: str) -> str:
    plural = form.endswith("s")
    feminine = form.rstrip("s").endswith(("a", "triz"))
    return ("las " if feminine else "los ") if plural else ("la " if feminine else "el ")


def fresh_rows(
    vocab_rows: list[VocabRow], lemmas: dict[str, dict[str, list[str]]]
) -> list[tuple[VocabRow, str]]:
    """(row with the generated mention, form kind) for the held-out concepts; `lemmas` (QID → lang →
    WordNet lemmas) tells which forms belong to another concept too."""
    from opencc_purepy import OpenCC

    to_tw, to_hk = OpenCC("s2tw"), OpenCC("s2hk")
    taken: dict[tuple[str, str], set[str]] = defaultdict(set)
    for qid, by_lang in lemmas.items():
        for lang, names in by_lang.items():
            for name in names:
                taken[(lang, surface_key(name))].add(qid)
    out: list[tuple[VocabRow, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(row: VocabRow, mention: str, kind: str, form: str | None = None) -> None:
        key = (row.lang, mention)
        others = taken.get((row.lang, surface_key(form or mention)), set()) - {row.qid}
        if mention and key not in seen and not others:
            seen.add(key)
            out.append((VocabRow(row.qid, row.lang, mention, row.domain, row.predicate, row.half), kind))

    for row in vocab_rows:
        if row.half != "heldout":
            continue
        if row.lang in ("es", "en") and " " not in row.mention:
            lemma = row.mention.casefold()
            for form in noun_forms(lemma, _inflections(row.lang).get(lemma, []), row.lang):
                add(row, form, "inflected")
                article = _es_article(form) if row.lang == "es" else "the "
                add(row, article + form, "article+inflected", form)
        elif row.lang == "zh":
            for kind, convert in (("traditional-tw", to_tw.convert), ("traditional-hk", to_hk.convert)):
                hant = convert(row.mention)
                if hant != row.mention:
                    add(row, hant, kind)
            for quantity in _ZH_QUANTITIES:
                add(row, quantity + row.mention, "quantity", row.mention)
    return out


def run_fresh_check(kb: KnowledgeBase, wikidata_dir: Path) -> dict[str, object]:
    """Build the fresh rows and score them per language and per form kind; raises ImportError
    (with the install hint) when simplemma is missing."""
    try:
        import simplemma  # noqa: F401
    except ImportError as exc:
        raise ImportError(MISSING_LEMMATISER) from exc
    rows = fresh_rows(build_rows(kb, wikidata_dir), wordnet_lemmas(wikidata_dir / WORDNET_FILE))
    result = score_rows(kb, [r for r, _ in rows])
    by_kind: dict[str, list[VocabRow]] = defaultdict(list)
    for row, kind in rows:
        by_kind[f"{row.lang} {kind}"].append(row)
    result["by_form"] = {k: score_rows(kb, v)["all"] for k, v in sorted(by_kind.items())}
    result["rows"] = len(rows)
    return result
