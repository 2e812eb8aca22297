"""Spanish silver facts: marking, unmarking and the grounding check that decides what is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.corpora.es_silver import SilverEsError, read_silver_es
from engine.corpora.splits import split_of
from engine.extract.encoder.tagging import Span
from engine.train.examples import FactExample
from engine.train.translate import candidates, checked_row, mark, object_check, unmark


def _example(text: str, *objects: tuple[str, str]) -> FactExample:
    spans = [Span(start=text.index(o), end=text.index(o) + len(o), predicate=p) for p, o in objects]
    return FactExample(text=text, lang="en", split="train", spans=spans)


def test_mark_puts_brackets_around_every_span_in_order() -> None:
    ex = _example("i have two dogs and i work as a nurse .", ("WORKS_AS", "nurse"), ("HAS_PET", "dogs"))
    assert mark(ex.text, ex.spans) == "i have two [[dogs]] and i work as a [[nurse]] ."


def test_unmark_gives_the_plain_sentence_and_offsets_into_it() -> None:
    text, spans = unmark("Tengo dos [[ perros ]] y trabajo como [[enfermera]].")
    assert text == "Tengo dos  perros  y trabajo como enfermera."
    assert [text[s:e] for s, e, _ in spans] == ["perros", "enfermera"]
    assert [w for _, _, w in spans] == ["perros", "enfermera"]


def test_an_unbalanced_mark_yields_no_spans() -> None:
    assert unmark("Tengo dos [[perros y un gato.")[1] == []
    assert unmark("Tengo dos perros]] y un gato.")[1] == []


def test_objects_ground_across_languages_by_qid_or_literal() -> None:
    assert object_check("HAS_PET", "dogs", "en") == object_check("HAS_PET", "perros", "es") == "qid:Q144"
    assert object_check("GENDER", "girl", "en") == object_check("GENDER", "chica", "es") == "literal:female"
    assert object_check("HAS_PET", "gatos", "es") != object_check("HAS_PET", "dogs", "en")
    assert object_check("AGE_BAND", "very old", "en") is None


def test_a_translation_is_kept_only_when_every_object_grounds_like_its_english_one() -> None:
    ex = _example("i have two dogs and i work as a nurse .", ("HAS_PET", "dogs"), ("WORKS_AS", "nurse"))
    # the Spanish order differs from the English one: spans pair by their grounding, not position
    kept = checked_row(ex, "Soy [[enfermera]] y tengo dos [[perros]].")
    assert kept.row is not None and kept.reason == ""
    assert [(s.predicate, s.text, s.en, s.check) for s in kept.row.spans] == [
        ("WORKS_AS", "enfermera", "nurse", "qid:Q186360"), ("HAS_PET", "perros", "dogs", "qid:Q144")]
    assert all(kept.row.es[s.start:s.end] == s.text for s in kept.row.spans)
    assert kept.row.split == split_of(ex.text)  # the English sentence's split, not the Spanish one's

    wrong = checked_row(ex, "Soy [[enfermera]] y tengo dos [[gatos]].")
    assert wrong.row is None and wrong.reason == "grounding"
    lost = checked_row(ex, "Soy enfermera y tengo dos [[perros]].")
    assert lost.row is None and lost.reason == "marks"


def test_candidates_are_per_english_split_and_groundable() -> None:
    pool = [_example(f"i have a {pet} named rex number {i} .", ("HAS_PET", pet))
            for i in range(60) for pet in ("dog", "cat")]
    pool.append(_example("i have a zorblax .", ("HAS_PET", "zorblax")))
    chosen = candidates(pool, {"train": 5, "dev": 2, "test": 2}, seed=3)
    by_split = [split_of(e.text) for e in chosen]
    assert by_split.count("train") == 5 and by_split.count("dev") <= 2 and by_split.count("test") <= 2
    assert all("zorblax" not in e.text for e in chosen)
    assert chosen == candidates(pool, {"train": 5, "dev": 2, "test": 2}, seed=3)


def test_reading_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "silver_es.jsonl"
    assert read_silver_es(path) == []  # never built: no rows, no error
    path.write_text('{"es": "Tengo un perro.", "en": "i have a dog .", "key": "i have a dog .", '
                    '"source": "personaext", "spans": []}\n{"es": 3}\n', encoding="utf-8")
    with pytest.raises(SilverEsError, match="line 2"):
        read_silver_es(path)


def test_the_committed_spanish_rows_are_consistent() -> None:
    rows = read_silver_es()
    assert rows, "engine/corpora/data/silver_es.jsonl is committed"
    for r in rows:
        assert r.spans and all(r.es[s.start:s.end] == s.text for s in r.spans), r.es
        assert all(s.check.startswith(("qid:Q", "literal:")) for s in r.spans), r.es
    assert len({r.key for r in rows}) == len(rows)  # each English sentence translated once
    assert {r.split for r in rows} == {"train", "dev", "test"}
